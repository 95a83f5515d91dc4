"""Recording stand-ins for the adapters, for service tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.crypto import Keys

# The derived keys of a fixed test secret (phone keys, body hashes) for services under test.
TEST_KEYS = Keys.from_secret("test-secret-" + "k" * 40)


class RecordingSms:
    """Keeps what would have been texted, so a test can read the code like a person would."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.purposes: list[str] = []  # what each code in `sent` was for

    def send_code(self, phone: str, code: str, purpose: str = "login") -> None:
        self.sent.append((phone, code))
        self.purposes.append(purpose)

    def last_code(self, phone: str) -> str:
        return next(code for to, code in reversed(self.sent) if to == phone)


class Deferred:
    """A fake push in flight: `finish` does the push."""

    def __init__(self, push: Callable[[], bool]) -> None:
        self._push = push

    def finish(self) -> bool:
        return self._push()


class RecordingPush:
    """Records frames and disconnects; ids in `gone` answer as API Gateway does for dead ones."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, dict[str, Any]]] = []
        self.disconnected: list[str] = []
        self.gone: set[str] = set()

    def start(self, connection_id: str, frame: dict[str, Any]) -> Deferred:
        """As the adapter's: the outcome (`send`'s, which subclasses may change) comes from
        `finish()`."""
        return Deferred(lambda: self.send(connection_id, frame))

    def send(self, connection_id: str, frame: dict[str, Any]) -> bool:
        if connection_id in self.gone:
            return False
        self.frames.append((connection_id, frame))
        return True

    def disconnect(self, connection_id: str) -> bool:
        if connection_id in self.gone:
            return False
        self.disconnected.append(connection_id)
        return True


class RecordingQueue:
    """Keeps the bodies a fan-out enqueues; with `refusing`, fails every send as SQS could."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.refusing = False

    def send(self, bodies: list[str]) -> None:
        if self.refusing:
            raise ConnectionError("the queue is unreachable")
        self.bodies += bodies

    def take(self) -> list[str]:
        """Everything enqueued so far, which is then no longer kept (as a worker takes it)."""
        taken, self.bodies = self.bodies, []
        return taken
