"""One install step of `make`, as one line: `  web client build ... 1.4 s`.

    python3 tools/step.py "web client build" npm run --prefix web build

The label shows as the step starts (so a long step never looks hung) and its time when it ends.
What the command prints is kept back: shown only when it fails, and then the step fails with
the command's exit status. Standard library only: it runs before the venv exists.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time


def run_step(label: str, command: list[str]) -> int:
    """Run `command`, print the step's one line, return the command's exit status."""
    print(f"  {label} ...", end="", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryFile() as output:
        try:
            status = subprocess.call(command, stdin=subprocess.DEVNULL, stdout=output,
                                     stderr=subprocess.STDOUT)
        except OSError as error:  # no such command
            output.write(f"{command[0]}: {error.strerror}\n".encode())
            status = 127
        except KeyboardInterrupt:  # Ctrl-C reached the command too
            print(" interrupted", flush=True)
            return 130
        if status < 0:  # killed by a signal, as a shell reports it
            status = 128 - status
        elapsed = f"{time.monotonic() - started:.1f} s"
        if status == 0:
            print(f" {elapsed}", flush=True)
            return 0
        print(f" failed after {elapsed} (exit status {status}); its output:", flush=True)
        output.seek(0)
        sys.stdout.buffer.write(output.read())
        sys.stdout.flush()
    return status


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: python3 tools/step.py LABEL COMMAND [ARGUMENT ...]")
    sys.exit(run_step(sys.argv[1], sys.argv[2:]))


if __name__ == "__main__":
    main()
