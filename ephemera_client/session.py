"""Where a signed-in client keeps its tokens and cursors: in memory, or in a file of its own
(mode 0600) under the user's config directory, one per profile.

Refresh tokens rotate, and presenting a rotated one revokes the device: two processes of one
profile (`ephemera tail` in one terminal, `ephemera send` in another) must never refresh with
the same token. So a refresh happens under the store's lock (an advisory file lock across
processes), after reading the newest tokens: whoever refreshed first, the others adopt."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

PROFILE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class Credentials:
    """One device's sign-in, as `POST /auth/verify` and `/auth/refresh` return it."""

    url: str
    user_id: str
    phone: str
    device_id: str
    access_token: str
    refresh_token: str
    access_expires_at: float  # wall-clock seconds
    cursors: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Credentials:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


class SessionStore(Protocol):
    def load(self) -> Credentials | None: ...

    def save(self, credentials: Credentials | None) -> None: ...

    def locked(self) -> contextlib.AbstractContextManager[None]: ...


class MemorySession:
    """A session that ends with the process (scripts, tests, `smoke`)."""

    def __init__(self, credentials: Credentials | None = None) -> None:
        self._credentials = credentials

    def load(self) -> Credentials | None:
        return self._credentials

    def save(self, credentials: Credentials | None) -> None:
        self._credentials = credentials

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        yield  # one process: the client's own asyncio lock is enough


def config_dir() -> Path:
    """`EPHEMERA_CONFIG_DIR`, else `$XDG_CONFIG_HOME/ephemera`, else `~/.config/ephemera`."""
    if os.environ.get("EPHEMERA_CONFIG_DIR"):
        return Path(os.environ["EPHEMERA_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "ephemera"


class FileSession:
    """A profile's session on disk: `<config dir>/<profile>.json`, readable by its owner only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_profile(cls, profile: str = "default") -> FileSession:
        if not PROFILE_NAME.match(profile):
            raise ValueError("a profile name is 1 to 64 of A-Z, a-z, 0-9, _, . and -")
        return cls(config_dir() / f"{profile}.json")

    def load(self) -> Credentials | None:
        try:
            return Credentials.from_json(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            return None  # a damaged file is no session: sign in again

    def save(self, credentials: Credentials | None) -> None:
        if credentials is None:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Written whole, then renamed: a reader never sees half a file. mkstemp makes it 0600.
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".session-")
        with os.fdopen(handle, "w") as file:
            json.dump(asdict(credentials), file)
        os.replace(temporary, self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(".lock")
        with open(lock_path, "a") as lock:
            os.chmod(lock_path, 0o600)
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def merged_cursors(saved: dict[str, int], held: dict[str, int]) -> dict[str, int]:
    """Cursors never move back: another process of the profile may hold newer ones."""
    merged = dict(saved)
    for conversation_id, seq in held.items():
        merged[conversation_id] = max(seq, merged.get(conversation_id, 0))
    return merged
