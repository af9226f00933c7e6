"""Single-instance lock of the daemon: one driver per lock file (paper, or the shared live lock).

The lock is an exclusive, non-blocking `flock` taken through `filelock`. The kernel drops a
flock when its holder dies, so a lock file left by a crashed process (kill -9) is reclaimed by
simply acquiring it; the stale PID inside is overwritten. While held, the file contains the
holder's PID, which a refused second daemon names in its error.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import filelock

log = logging.getLogger(__name__)


class DaemonLockError(RuntimeError):
    """Another daemon holds the lock (or the lock file cannot be used); start-up must stop."""

    def __init__(self, message: str, holder_pid: int | None = None) -> None:
        super().__init__(message)
        self.holder_pid = holder_pid


def read_holder_pid(path: Path) -> int | None:
    """Return the PID written in a lock file, or None when absent or unreadable."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


class DaemonLock:
    """Hold the daemon lock at `path` for the life of this object (or until `release`)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = filelock.FileLock(str(path), timeout=0, mode=0o600)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> None:
        """Take the lock and write our PID; raise DaemonLockError naming the holder if taken."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        stale_pid = read_holder_pid(self._path)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            holder = read_holder_pid(self._path)
            named = f"pid {holder}" if holder is not None else "an unknown process"
            raise DaemonLockError(
                f"another ai-quant daemon is already running (lock {self._path} held by {named})", holder
            ) from None
        except OSError as exc:
            raise DaemonLockError(f"cannot acquire daemon lock {self._path}: {exc}") from exc
        if stale_pid is not None and stale_pid != os.getpid():
            log.warning("reclaimed stale daemon lock path=%s previous_pid=%d", self._path, stale_pid)
        # Overwrite in place (no unlink/rename: the flock is on this inode).
        with open(self._path, "r+", encoding="ascii") as handle:
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            os.fsync(handle.fileno())

    def release(self) -> None:
        """Clear our PID and drop the lock (the file stays; unlinking a lock file breaks exclusion)."""
        if not self._lock.is_locked:
            return
        try:
            with open(self._path, "r+", encoding="ascii") as handle:
                handle.truncate(0)
        except OSError as exc:
            log.warning("could not clear daemon lock file path=%s error=%s", self._path, exc)
        self._lock.release(force=True)

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
