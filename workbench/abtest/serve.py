"""Anonymous served audio: fresh copies per trial and slot, and who fetched them how often.

Blindness: the audio a browser receives is a fresh copy per trial and slot, under a
random file name, loudness-matched to the plan's target, 16-bit WAV at
:data:`SERVED_SR` Hz, with fresh TPDF dither so even the same clip (a control trial, a
repeat) never has the same bytes or name twice.

The server delivers copies itself (``GET /wb/clip/<name>``, see
:mod:`workbench.ui.blind_files`) and counts each delivery in :class:`ServedFiles`, so
the vote of a trial whose clips were never fetched can be refused, and the counts go
into the vote row (``fetched_a``/``fetched_b``).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import audio

Pathlike = str | Path
Seconds = float
#: served audio: sample rate (Hz) and subtype of every file handed to a browser
SERVED_SR = 24000
SERVED_SUBTYPE = "PCM_16"
#: served copies older than this are deleted by :func:`sweep_served` (an abandoned tab leaves them)
SERVED_MAX_AGE_S: Seconds = 3600.0
#: how often rater sessions sweep the served folder
SWEEP_EVERY_S: Seconds = 300.0
#: URL path (relative to the app's root) a served copy is fetched from: ``wb/clip/<name>``
CLIP_ROUTE = "wb/clip"
_NAME = re.compile(r"^[0-9a-f]{32}\.wav$")


class _LevelledCache:
    """Loudness-matched clips: the gain that brings each clip to a target is measured once.

    Keyed by (path, mtime, size, target); holds one float per clip (LRU of ``size``
    entries), so a test with hundreds of clips costs a file read per serve, not a
    loudness measurement.
    """

    def __init__(self, size: int = 4096):
        self.size = size
        self._gains: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, target_lufs: float) -> np.ndarray:
        """The clip at :data:`SERVED_SR` Hz, scaled to ``target_lufs`` (peak-limited at -1 dBFS)."""
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size, target_lufs)
        y, sr = audio.load(path)
        if sr != SERVED_SR:
            y = audio.resample(y, orig_sr=sr, target_sr=SERVED_SR)
        with self._lock:
            gain = self._gains.get(key)
            if gain is not None:
                self._gains.move_to_end(key)
        if gain is None:
            peak = float(np.max(np.abs(y)))
            levelled = audio.normalize_loudness(y, SERVED_SR, target_lufs=target_lufs)
            gain = float(np.max(np.abs(levelled))) / peak
            with self._lock:
                self._gains[key] = gain
                while len(self._gains) > self.size:
                    self._gains.popitem(last=False)
            return levelled
        return y * np.float32(gain)


_levelled = _LevelledCache()


def serve_clip(clip_path: Pathlike, served_dir: Pathlike, *, target_lufs: float = -23.0) -> Path:
    """Write an anonymous copy of a clip for a browser and return its path.

    The copy is loudness-normalised to ``target_lufs`` (LUFS), 16-bit WAV at
    :data:`SERVED_SR` Hz mono, under a random name, with fresh TPDF dither (about
    -96 dBFS, inaudible) so two copies of one clip never have the same bytes.
    """
    y = _levelled.get(Path(clip_path), target_lufs)
    rng = np.random.default_rng()
    lsb = 1.0 / 32768.0
    dither = (rng.random(y.shape[0], dtype=np.float32) - rng.random(y.shape[0], dtype=np.float32)) * lsb
    out = Path(served_dir) / f"{secrets.token_hex(16)}.wav"
    audio.write(out, y + dither, SERVED_SR, subtype=SERVED_SUBTYPE, durable=False)  # throwaway copy
    return out


def sweep_served(served_dir: Pathlike, max_age_s: Seconds = SERVED_MAX_AGE_S) -> int:
    """Delete served copies older than ``max_age_s`` seconds; returns how many."""
    folder = Path(served_dir)
    if not folder.is_dir():
        return 0
    cutoff = time.time() - max_age_s
    n = 0
    for p in folder.iterdir():
        try:
            if p.is_file() and p.stat().st_mtime < cutoff:
                p.unlink()
                n += 1
        except OSError:
            pass
    return n


_last_sweep: dict[str, float] = {}
_sweep_lock = threading.Lock()


def maybe_sweep(served_dir: Pathlike) -> None:
    """Run :func:`sweep_served` on ``served_dir`` at most every :data:`SWEEP_EVERY_S` seconds."""
    key = str(served_dir)
    now = time.monotonic()
    with _sweep_lock:
        if now - _last_sweep.get(key, -SWEEP_EVERY_S) < SWEEP_EVERY_S:
            return
        _last_sweep[key] = now
    sweep_served(served_dir)


@dataclass
class _Copy:
    path: Path
    owner: str  # the rater the copy was made for
    fetches: int = 0


class ServedFiles:
    """The served copies of one app: each one's owner and how many times it was delivered.

    Copies live in ``folder`` under random names; :meth:`deliver` is what the clip route
    calls for every request, :meth:`fetches` what a vote reads.
    """

    def __init__(self, folder: Pathlike):
        self.folder = Path(folder)
        self._copies: dict[str, _Copy] = {}
        self._lock = threading.Lock()

    def add(self, clip_path: Pathlike, owner: str, *, target_lufs: float) -> str:
        """Make a fresh anonymous copy of ``clip_path`` for ``owner``; returns its name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        maybe_sweep(self.folder)
        path = serve_clip(clip_path, self.folder, target_lufs=target_lufs)
        with self._lock:
            self._copies[path.name] = _Copy(path=path, owner=owner)
        return path.name

    def path(self, name: str) -> Path:
        return self.folder / name

    def deliver(self, name: str, user: str | None) -> Path | None:
        """Count one delivery of ``name`` and return its file; None when unknown, gone or not ``user``'s.

        ``user`` is the logged-in caller (None without login: any caller may fetch).
        """
        if not isinstance(name, str) or not _NAME.match(name):
            return None
        with self._lock:
            copy = self._copies.get(name)
            if copy is None or (user is not None and user != copy.owner) or not copy.path.exists():
                return None
            copy.fetches += 1
            return copy.path

    def fetches(self, name: str) -> int:
        """How many times ``name`` was delivered (0 for an unknown name)."""
        with self._lock:
            copy = self._copies.get(name)
            return copy.fetches if copy is not None else 0

    def drop(self, names) -> None:
        """Forget copies and delete their files (a trial was answered or left)."""
        with self._lock:
            gone = [self._copies.pop(n, None) for n in names]
        for c in gone:
            if c is not None:
                c.path.unlink(missing_ok=True)


def clip_url(name: str) -> str:
    """The URL (relative to the app's root) a browser fetches served copy ``name`` from."""
    return f"{CLIP_ROUTE}/{name}"
