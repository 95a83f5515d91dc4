"""The local stack holds as many sockets as the machine lets one process: it lifts its soft
limit on open files (each socket is one) to the hard limit as it starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# In a process of its own: the limit it changes is the whole process's.
LOW_LIMIT_THEN_RAISE = """
import resource
from local_stack.port import raise_open_file_limit
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
print(raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)
"""


def test_the_stack_lifts_its_open_file_limit_to_the_hard_limit():
    finished = subprocess.run([sys.executable, "-c", LOW_LIMIT_THEN_RAISE], cwd=ROOT,
                              capture_output=True, text=True, check=True)
    returned, soft_now, hard = (int(word) for word in finished.stdout.split())
    assert soft_now == hard
    assert returned == soft_now
