"""CPU time of processes, read straight from /proc (no psutil): a process and everything it
started, or a database server found by name."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
DATABASE_SERVERS = ("mariadbd", "mysqld")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:  # gone meanwhile, or not ours to read
        return None
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (0 when it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12), in clock ticks.
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def _parents() -> dict[int, int]:
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
    return parents


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (the local stack: its front process and its workers)."""
    parents = _parents()
    tree, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree += children
        frontier += children
    return tree


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by `root` and its live descendants. Take it before and after:
    a worker that lives through both counts exactly (workers here live as long as the stack)."""
    return sum(cpu_seconds(pid) for pid in process_tree(root))


def database_server_pid() -> int | None:
    """The local MariaDB/MySQL server's process, if one runs on this machine."""
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if name in DATABASE_SERVERS:
            return int(entry.name)
    return None
