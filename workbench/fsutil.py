"""Atomic file writes: the one way the workbench replaces a file on disk.

A reader never sees a half-written file: data goes to a temporary file in the same
folder, is flushed and fsynced, then renamed over the destination.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
