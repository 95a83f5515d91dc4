"""Handler work per 1:1 message in CPU instructions: bench/handler_cpu.py's send and ack,
counted by valgrind's callgrind instead of timed.

CPU milliseconds follow the machine as much as the code: the same commit measured 2.5 ms per
message one day and 5.6-6.2 ms on another machine of this kind the next. Instructions follow only
the code (callgrind gives the same count twice, whatever else the machine is doing), so a
change that adds work shows here on any day. They are not time: the kernel's share (sockets)
is not counted, and instructions differ in cost (session 14 cut 8% of them and 2% of the CPU
time, measured side by side), so judge time by handler_cpu.py, run beside the code compared.

The measured process runs under callgrind with instrumentation off (about five times slower
than native, not fifty) until the warm-up is done; a few lines of C, compiled here with the
machine's gcc against valgrind's own header, switch counting on around each measured send
(or ack) and dump the counts. Nothing of this is on the Lambda path.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.handler_cpu import warmed_up_chat
from bench.quick import sized
from bench.report import emit

MESSAGES = sized(400, 20)
WARM_UP = sized(100, 5)
TIMEOUT_S = sized(1_200, 170)
VALGRIND_HEADER = Path("/usr/include/valgrind/callgrind.h")
# Callgrind's client requests are inline assembly: a function each, called through ctypes.
CONTROL_SOURCE = """
#include <valgrind/callgrind.h>
void instrument(void) { CALLGRIND_START_INSTRUMENTATION; }
void toggle_counting(void) { CALLGRIND_TOGGLE_COLLECT; }
void dump(void) { CALLGRIND_DUMP_STATS; }
"""


def compile_control(directory: Path) -> Path:
    source, library = directory / "control.c", directory / "control.so"
    source.write_text(CONTROL_SOURCE)
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(library), str(source)],
                   check=True)
    return library


def measured(library: str, messages: int) -> None:
    """In the process callgrind runs: warm up uncounted, then count the sends of `messages`
    send + ack (dump 1), then the acks of as many more (dump 2)."""
    control = ctypes.CDLL(library)
    with warmed_up_chat(WARM_UP) as (chat, _):
        control.instrument()  # counting stays off but for the spans `counted` toggles

        def counted(action: Callable[[], None]) -> None:
            control.toggle_counting()
            action()
            control.toggle_counting()

        for _ in range(messages):
            counted(chat.send)
            chat.ack()
        control.dump()
        for _ in range(messages):
            chat.send()
            counted(chat.ack)
        control.dump()


def instructions_counted(directory: Path, dump: int) -> int:
    """The instruction count of the `dump`-th dump (`<out>.<pid>.<dump>`): its `totals:` line
    (its `summary:` line only counts from where the program started)."""
    (path,) = directory.glob(f"callgrind.out.*.{dump}")
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def main() -> None:
    missing = [tool for tool in ("valgrind", "gcc") if shutil.which(tool) is None]
    if missing or not VALGRIND_HEADER.exists():
        raise SystemExit(f"needs valgrind, its header ({VALGRIND_HEADER}) and gcc; missing: "
                         f"{', '.join(missing) or VALGRIND_HEADER}")
    with tempfile.TemporaryDirectory(prefix="ephemera-callgrind-") as temporary:
        directory = Path(temporary)
        library = compile_control(directory)
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
             f"--callgrind-out-file={directory}/callgrind.out.%p",
             sys.executable, "-m", "bench.handler_instructions", "--measure", str(library),
             str(MESSAGES)],
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, capture_output=True,
            text=True, timeout=TIMEOUT_S)
        if run.returncode != 0:
            raise SystemExit(f"the measured run failed:\n{run.stderr[-4000:]}")
        send, ack = (instructions_counted(directory, dump) / MESSAGES for dump in (1, 2))
    version = re.sub(r"^valgrind-", "", subprocess.run(
        ["valgrind", "--version"], capture_output=True, text=True).stdout.strip())
    emit("handler instructions per 1:1 message (send + ack, $default invoked as Lambda "
         "invokes it, MariaDB, pushes to a live local management endpoint; callgrind)",
         [{"messages": MESSAGES, "million_per_message": round((send + ack) / 1e6, 3),
           "send_million": round(send / 1e6, 3), "ack_million": round(ack / 1e6, 3),
           "valgrind": version}])

if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        measured(sys.argv[2], int(sys.argv[3]))
    else:
        main()
