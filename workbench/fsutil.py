"""Atomic file writes and file locks: the one way the workbench replaces or locks a file.

A reader never sees a half-written file: data goes to a temporary file in the same
folder, is flushed and fsynced, then renamed over the destination, and the folder is
fsynced so the rename itself survives a power loss. :func:`file_lock` is the one
exclusive lock shared by the vote store and the plan store: a re-entrant thread lock per
lock file in this process plus ``fcntl.flock`` across processes.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@contextmanager
def atomic_open(
    path: str | Path,
    mode: str = "wb",
    *,
    encoding: str | None = None,
    newline: str | None = None,
    file_mode: int | None = None,
    durable: bool = True,
) -> Iterator:
    """Open a temporary file beside ``path``; on clean exit fsync it and rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    ``durable=False`` skips the fsync, for throwaway files that only need atomicity.
    ``file_mode`` defaults to what ``open()`` would give (0666 less the umask: 0644
    normally, 0600 once the app has made new files private).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        if file_mode is None:
            file_mode = 0o666 & ~_umask()
        os.chmod(tmp, file_mode)  # mkstemp makes 0600
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or a new file in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class _Lock:
    """One lock file's lock in this process: a re-entrant thread lock and the flock depth."""

    thread: threading.RLock = field(default_factory=threading.RLock)
    depth: int = 0  # nesting in the thread holding ``thread`` (the flock is taken once)


_locks: dict[str, _Lock] = {}
_locks_guard = threading.Lock()


@contextmanager
def file_lock(lock_path: str | Path, *, mode: int = 0o644) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` for this thread and across processes.

    Re-entrant in one thread (``flock`` is taken once, by the outermost holder); every
    caller in this process that names the same file shares one lock. The lock file is
    created with ``mode`` (less the umask). When it cannot be created (a read-only or full folder), an
    existing one is locked through a read-only descriptor, so readers still serialise
    with writers; whatever then writes fails on its own file with its own message.

    Raises
    ------
    OSError
        when the lock file neither exists nor can be created.
    """
    key = os.path.abspath(lock_path)
    with _locks_guard:
        lock = _locks.setdefault(key, _Lock())
    with lock.thread:
        if lock.depth:
            lock.depth += 1
            try:
                yield
            finally:
                lock.depth -= 1
            return
        try:
            Path(key).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key, os.O_RDWR | os.O_CREAT, mode)
        except OSError:
            fd = os.open(key, os.O_RDONLY)  # raises when there is no lock file at all
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            lock.depth = 1
            yield
        finally:
            lock.depth = 0
            os.close(fd)  # closing releases the flock


def _umask() -> int:
    """The process umask, read without changing it (Linux /proc), else 022."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def write_json_atomic(path: str | Path, data, **json_kwargs) -> None:
    """Write ``data`` as JSON to ``path`` atomically (``json_kwargs`` go to ``json.dump``)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, **json_kwargs)
