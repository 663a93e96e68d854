"""Post-synthesis steps: resemble-enhance (denoise / enhance) and loudness normalisation.

Each step is a plain function on ``(y, sr)``; :func:`apply_preset` runs a preset's steps
in order and reports what it did for the clip's provenance.
"""

from __future__ import annotations

import numpy as np

from . import audio
from .catalog import EnhancePreset, preset_availability
from .errors import ModelUnavailable


def loudness_step(y: np.ndarray, sr: int, *, target_lufs: float | None) -> tuple[np.ndarray, dict]:
    """Normalise to ``target_lufs`` (None: untouched). Returns the audio and what was measured."""
    before = audio.loudness(y, sr)
    if target_lufs is None:
        return y, {"loudness_in_lufs": round(before, 2)}
    out = audio.normalize_loudness(y, sr, target_lufs=target_lufs)
    return out, {"loudness_in_lufs": round(before, 2), "loudness_out_lufs": round(audio.loudness(out, sr), 2)}


def enhancer_step(y: np.ndarray, sr: int, preset: EnhancePreset, *, device: str = "auto") -> tuple[np.ndarray, int]:
    """Run resemble-enhance's denoiser and/or enhancer. Returns ``(y, sr)`` at the enhancer's rate."""
    avail = preset_availability(preset)
    if not avail.ok:
        raise ModelUnavailable(f"preset {preset.name!r} is unavailable: {avail.reason}")
    raise ModelUnavailable(f"preset {preset.name!r}: resemble-enhance support is not installed in this build")


def apply_preset(y: np.ndarray, sr: int, preset: EnhancePreset, *, device: str = "auto") -> tuple[np.ndarray, dict]:
    """Apply ``preset`` (enhancer steps, then loudness) to ``y`` at ``sr``; output stays at ``sr``."""
    info: dict = {"enhancement": preset.name}
    if preset.uses_enhancer:
        y2, sr2 = enhancer_step(y, sr, preset, device=device)
        y = audio.resample(y2, orig_sr=sr2, target_sr=sr) if sr2 != sr else y2
    y, loud = loudness_step(y, sr, target_lufs=preset.target_lufs)
    info.update(loud)
    return y, info
