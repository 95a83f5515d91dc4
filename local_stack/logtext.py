"""Text a client chose, made fit for one log line: printable, on one line, and short."""

from __future__ import annotations

# A close frame's reason is at most 123 bytes; nothing a client sends needs more in a log.
MAX_LOGGED_CHARS = 123


def printable(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """`text` with every non-printable character escaped (a newline as `\\n`, ESC as `\\x1b`,
    U+2028 as `\\u2028`) and cut to `limit` characters: a client can neither start a log line
    of its own nor send escape sequences to the terminal that shows the log."""
    escaped = "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text[:limit + 1]
    )
    return escaped if len(escaped) <= limit else escaped[:limit - 3] + "..."
