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
    file_mode: int = 0o644,
    durable: bool = True,
) -> Iterator:
    """Open a temporary file beside ``path``; on clean exit fsync it and rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    ``durable=False`` skips the fsync, for throwaway files that only need atomicity.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
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


def write_json_atomic(path: str | Path, data, **json_kwargs) -> None:
    """Write ``data`` as JSON to ``path`` atomically (``json_kwargs`` go to ``json.dump``)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, **json_kwargs)
