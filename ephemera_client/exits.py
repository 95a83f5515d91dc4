"""The `ephemera` command's exit codes: each says what failed, so a script can tell a refusal
from an outage from an expired sign-in."""

from __future__ import annotations

from ephemera_client.errors import ApiError, ClientError, MessageTooLarge, SignedOut, Unreachable

OK = 0
FAILED = 1  # a check of `smoke` failed, or losses under `load`
USAGE = 2  # bad flags or arguments (argparse's own code)
SIGNED_OUT = 3  # no session, or the server refused to refresh it: `ephemera login`
REFUSED = 4  # the server refused the request (4xx or an error frame): the message says why
UNREACHABLE = 5  # no answer from the server
RATE_LIMITED = 6  # the server said to wait (`rate_limited`)
SERVER_ERROR = 7  # the server failed (5xx, `internal`)
INTERRUPTED = 130  # Ctrl-C


def exit_code_of(error: ClientError) -> int:
    if isinstance(error, SignedOut):
        return SIGNED_OUT
    if isinstance(error, Unreachable):
        return UNREACHABLE
    if isinstance(error, MessageTooLarge):
        return REFUSED
    if isinstance(error, ApiError):
        if error.code == "rate_limited":
            return RATE_LIMITED
        if error.code == "internal" or error.status >= 500:
            return SERVER_ERROR
        return REFUSED
    return FAILED
