"""Audio I/O: the one place that reads and writes audio files.

Arrays are mono ``float32`` in [-1, 1], shape ``(n_samples,)``, always paired with an
explicit sample rate ``sr`` in Hz. Loudness follows ITU-R BS.1770-4 (pyloudnorm).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError
from .fsutil import atomic_open

Pathlike = str | Path
Seconds = float
Decibels = float

#: longest input accepted anywhere (s); longer files are refused, not truncated
MAX_SECONDS: Seconds = 15 * 60
#: largest audio file accepted (bytes)
MAX_FILE_BYTES = 200 * 1024 * 1024
#: shortest reference recording accepted by `check` (s): XTTS conditions on several seconds
MIN_REFERENCE_SECONDS: Seconds = 1.0
#: shortest clip accepted by `check` (s); anything shorter is a stub, not speech
MIN_CLIP_SECONDS: Seconds = 0.1
#: a signal whose peak is below this is "silent" (about -90 dBFS)
SILENCE_PEAK = 10 ** (-90 / 20)
READ_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
#: libsndfile's note when a WAV's data chunk is shorter than its header says
_WAV_DATA_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: data sizes a streaming writer leaves when it cannot seek back (not a cut file)
_WAV_STREAMED_SIZES = (0, 0x7FFFFFFF, 0xFFFFFFFF)


def _cut_short(info) -> tuple[float, float] | None:
    """``(promised_s, present_s)`` when a WAV file ends before its header says, else None."""
    m = _WAV_DATA_SHORT.search(getattr(info, "extra_info", "") or "")
    if m is None or info.frames <= 0 or info.samplerate <= 0:
        return None
    declared, present = int(m.group(1)), int(m.group(2))
    if declared <= present or declared in _WAV_STREAMED_SIZES:
        return None
    bytes_per_frame = present / info.frames
    return declared / bytes_per_frame / info.samplerate, info.frames / info.samplerate


def _check_array(y: np.ndarray, sr: int, name: str, max_seconds: Seconds) -> None:
    if y.size == 0:
        raise AudioError(f"{name}: no audio samples (empty file); record or export the clip again")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{name}: contains NaN or infinite samples; the file is corrupt")
    if float(np.max(np.abs(y))) < SILENCE_PEAK:
        raise AudioError(f"{name}: all silent (peak below -90 dBFS); check the recording")
    if y.size / sr > max_seconds:
        raise AudioError(
            f"{name}: {y.size / sr:.1f} s is longer than the {max_seconds:.0f} s limit; trim the clip first"
        )


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average channels. ``y``: ``(n,)`` or ``(n, channels)`` -> ``(n,)`` float32."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=1)
    elif y.ndim != 1:
        raise AudioError(f"expected a 1-D or 2-D (samples, channels) array, got shape {y.shape}")
    return np.ascontiguousarray(y, dtype=np.float32)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """High-quality resampling (soxr VHQ). ``y``: ``(n,)`` float32 -> ``(m,)`` float32."""
    if orig_sr == target_sr:
        return np.asarray(y, dtype=np.float32)
    if orig_sr <= 0 or target_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    import soxr

    return soxr.resample(np.asarray(y, dtype=np.float32), orig_sr, target_sr, quality="VHQ").astype(np.float32)


def load(path: Pathlike, *, sr: int | None = None, max_seconds: Seconds = MAX_SECONDS) -> tuple[np.ndarray, int]:
    """Read wav/flac/mp3/ogg as mono float32, optionally resampled to ``sr`` Hz.

    Returns ``(y, sr)``. Raises :class:`AudioError` naming the file for unreadable,
    empty, cut short (a WAV whose data ends before its header says), silent, NaN/inf,
    oversized or over-long input.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    if path.suffix.lower() not in READ_EXTENSIONS:
        raise AudioError(f"{name}: unsupported extension {path.suffix!r}; use one of {', '.join(READ_EXTENSIONS)}")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"{name}: zero-length file; record or export the clip again")
    if size > MAX_FILE_BYTES:
        raise AudioError(f"{name}: {size / 2**20:.1f} MiB is larger than the {MAX_FILE_BYTES / 2**20:.0f} MiB limit")
    try:
        info = sf.info(str(path))
        cut = _cut_short(info)
        if cut is not None:
            raise AudioError(
                f"{name}: the file is cut short: its header promises {cut[0]:.2f} s of audio, "
                f"it holds {cut[1]:.2f} s; copy or export it again"
            )
        if info.frames / max(info.samplerate, 1) > max_seconds:
            raise AudioError(
                f"{name}: {info.frames / info.samplerate:.1f} s is longer than the {max_seconds:.0f} s limit; "
                "trim the clip first"
            )
        y, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as e:  # libsndfile raises LibsndfileError / RuntimeError for non-audio
        raise AudioError(f"{name}: not a readable audio file ({type(e).__name__}: {e})") from None
    y = to_mono(y)
    _check_array(y, file_sr, name, max_seconds)
    if sr is not None and sr != file_sr:
        y = resample(y, orig_sr=file_sr, target_sr=sr)
        file_sr = sr
    return y, int(file_sr)


def check_file(
    path: Pathlike, *, min_seconds: Seconds = MIN_CLIP_SECONDS, max_seconds: Seconds = MAX_SECONDS
) -> Seconds:
    """Read ``path`` fully, as :func:`load` would, and return its duration in seconds.

    Raises :class:`AudioError` for everything :func:`load` refuses (missing, empty, not
    audio, cut short, NaN/inf, silent, over-long) and for audio shorter than ``min_seconds``.
    """
    y, sr = load(path, max_seconds=max_seconds)
    seconds = len(y) / sr
    if seconds < min_seconds:
        raise AudioError(
            f"{Path(path).name}: only {seconds:.3f} s of audio ({len(y)} samples); "
            f"at least {min_seconds:g} s is needed: record or export it again"
        )
    return seconds


def validate(y: np.ndarray, sr: int, *, name: str = "audio", max_seconds: Seconds = MAX_SECONDS) -> np.ndarray:
    """Check an in-memory signal like :func:`load` checks files; returns mono float32."""
    y = to_mono(y)
    _check_array(y, sr, name, max_seconds)
    return y


def write(path: Pathlike, y: np.ndarray, sr: int, *, subtype: str | None = None, durable: bool = True) -> Path:
    """Write mono audio atomically (temp file + rename). Format from the extension (.flac/.wav).

    FLAC is written as 24-bit PCM by default, WAV as 32-bit float. Samples are clipped
    to [-1, 1] for integer formats. ``durable=False`` skips the fsync (throwaway copies).
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".flac", ".wav"):
        raise AudioError(f"{path.name}: can only write .flac or .wav")
    y = to_mono(y)
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{path.name}: refusing to write NaN or infinite samples")
    fmt = "FLAC" if ext == ".flac" else "WAV"
    subtype = subtype or ("PCM_24" if fmt == "FLAC" else "FLOAT")
    if subtype.startswith("PCM"):
        y = np.clip(y, -1.0, 1.0)
    with atomic_open(path, durable=durable) as f:
        sf.write(f, y, sr, format=fmt, subtype=subtype)
    return path


def encode_flac(y: np.ndarray, sr: int, *, name: str = "audio") -> bytes:
    """The bytes of a 24-bit FLAC of mono ``y`` at ``sr`` Hz (what :func:`write` puts in a .flac).

    For clips made on another machine and written to disk elsewhere.
    """
    y = to_mono(y)
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{name}: refusing to write NaN or infinite samples")
    buf = io.BytesIO()
    sf.write(buf, np.clip(y, -1.0, 1.0), sr, format="FLAC", subtype="PCM_24")
    return buf.getvalue()


def duration(y: np.ndarray, sr: int) -> Seconds:
    """Length of ``y`` in seconds."""
    return len(y) / float(sr)


def loudness(y: np.ndarray, sr: int) -> Decibels:
    """Integrated loudness in LUFS (ITU-R BS.1770-4, gated). Clips under 0.4 s are padded."""
    import pyloudnorm

    y = to_mono(y).astype(np.float64)
    block = 0.4
    if len(y) < int(block * sr) + 1:
        y = np.pad(y, (0, int(block * sr) + 1 - len(y)))
    value = pyloudnorm.Meter(sr, block_size=block).integrated_loudness(y)
    return float(value) if np.isfinite(value) else float("-inf")


def peak_dbfs(y: np.ndarray) -> Decibels:
    """Sample peak in dBFS."""
    p = float(np.max(np.abs(y))) if len(y) else 0.0
    return 20 * np.log10(p) if p > 0 else float("-inf")


def normalize_loudness(
    y: np.ndarray, sr: int, *, target_lufs: Decibels = -23.0, peak_ceiling_dbfs: Decibels = -1.0
) -> np.ndarray:
    """Scale ``y`` to ``target_lufs`` integrated loudness.

    If that would push the sample peak above ``peak_ceiling_dbfs``, the gain is reduced
    so the peak sits at the ceiling (no clipping; the clip is then quieter than target).
    """
    current = loudness(y, sr)
    if not np.isfinite(current):
        raise AudioError("cannot normalise loudness of a silent signal")
    gain_db = target_lufs - current
    peak = peak_dbfs(y)
    if peak + gain_db > peak_ceiling_dbfs:
        gain_db = peak_ceiling_dbfs - peak
    return (to_mono(y) * np.float32(10 ** (gain_db / 20))).astype(np.float32)


def sine(freq: float, *, sr: int = 24000, seconds: Seconds = 1.0, amplitude: float = 0.5) -> np.ndarray:
    """A test tone: ``amplitude * sin(2 pi f t)``, float32 ``(round(seconds * sr),)``."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
