"""Content hashes of files, memoised by (path, inode, size, mtime) so repeated keys cost a stat."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

_MEMO: dict[tuple[str, int, int, int], str] = {}
_GUARD = threading.Lock()
_MEMO_LIMIT = 4096


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file's bytes. Re-read only when its inode, size or mtime changes."""
    path = Path(path)
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    with _GUARD:
        hit = _MEMO.get(memo_key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _GUARD:
        if len(_MEMO) >= _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[memo_key] = digest
    return digest


#: files of an XTTS v2 checkpoint folder that change what it says
XTTS_HASHED_FILES = ("config.json", "model.pth", "vocab.json", "speakers_xtts.pth")


def model_files_hash(model_dir: Path) -> str:
    """sha256 over an XTTS folder's files that affect synthesis (names + contents)."""
    h = hashlib.sha256()
    for name in XTTS_HASHED_FILES:
        p = Path(model_dir) / name
        if p.is_file():
            h.update(name.encode())
            h.update(sha256_file(p).encode())
    return h.hexdigest()
