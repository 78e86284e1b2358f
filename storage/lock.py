"""One writer at a time: an advisory lock file next to the database.

Every command that writes (ingest, sync, reindex, post, the digest's sync, migrations) holds
``<db>.lock`` for as long as it writes.  A second writer waits for it; the file names the
holder (pid and command) so the waiting one can say who it waits for.  Readers never take
it: SQLite's WAL lets them read while a writer writes.

The lock is an ``flock`` on the open file, so it is released by the kernel when its holder
dies (kill -9 included): a stale lock file is never a problem.  It is re-entrant within one
process (the Slack app's sync job and a migration on open may nest).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds the write lock, as written in the lock file (pid 0: unknown)."""

    pid: int
    command: str


class LockError(Exception):
    """The lock file cannot be created or opened (read-only directory, permissions)."""


_held: dict[str, tuple[int, int]] = {}  # lock path → (fd, depth), for this process
_guard = threading.RLock()


def lock_path(db_path: str | Path) -> Path:
    """``<db>.lock`` next to the real file: symlinks resolved, so every way of naming the
    database (a relative path, SQLite's own full path) finds the same lock."""
    return Path(os.path.realpath(Path(db_path).expanduser()) + ".lock")


def read_holder(path: Path) -> LockHolder:
    """The holder named in the lock file (best effort: the file may be mid-write)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").split()
        return LockHolder(int(text[0]), " ".join(text[1:]) or "kvmarm")
    except (OSError, ValueError, IndexError):
        return LockHolder(0, "kvmarm")


@contextmanager
def write_lock(
    db_path: str | Path,
    command: str,
    *,
    on_wait: Callable[[LockHolder], None] | None = None,
) -> Iterator[None]:
    """Hold the database's write lock inside the block, waiting for another holder first.

    ``on_wait`` is called once, with the holder, when the lock is busy.  ``":memory:"``
    needs no lock.
    """
    if str(db_path) == ":memory:":
        yield
        return
    path = lock_path(db_path)
    key = str(path)
    with _guard:  # one thread of this process at a time takes or nests the lock
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
        else:
            fd = _acquire(path, command, on_wait)
            _held[key] = (fd, 1)
        try:
            yield
        finally:
            fd, depth = _held[key]
            if depth > 1:
                _held[key] = (fd, depth - 1)
            else:
                del _held[key]
                _release(fd)


def _acquire(path: Path, command: str, on_wait: Callable[[LockHolder], None] | None) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LockError(f"cannot create the lock file {path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(read_holder(path))
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _release(fd: int) -> None:
    with suppress(OSError):
        os.ftruncate(fd, 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
