"""One clip from one plan: synthesis backend -> enhancement -> loudness -> FLAC bytes + provenance.

:func:`produce` is what every executor runs, in the app's process or in a cluster
worker; it touches no cache and writes no file, so its result can travel back to
whoever keeps the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import audio
from .errors import RenderError
from .renderplan import RenderPlan
from .synth.base import SynthesisBackend

#: sample rate of every clip in the cache (XTTS's native rate), Hz
CLIP_SR = 24000


@dataclass(frozen=True)
class Produced:
    """A finished clip: its FLAC bytes (``CLIP_SR`` Hz mono, 24-bit) and its provenance."""

    flac: bytes
    provenance: dict


def produce(
    plan: RenderPlan,
    backends: Mapping[str, SynthesisBackend],
    *,
    node: str | None = None,
    step_cache_dir: Path | None = None,
) -> Produced:
    """Render ``plan`` with ``backends[plan.backend]``, then its enhancement preset and loudness.

    ``node`` names the machine in the provenance (default: this host's name).
    ``step_cache_dir`` keeps each post-processing step's output by content
    (:class:`~workbench.enhance.StepCache`; None: every step runs).
    Raises :class:`~workbench.errors.WorkbenchError` subclasses naming what to fix.
    """
    from .enhance import StepCache, apply_preset  # torch and resemble-enhance load only when a preset needs them

    backend = backends.get(plan.backend)
    if backend is None:
        raise RenderError(f"{plan.label}: no {plan.backend!r} backend here; known: {', '.join(backends) or '(none)'}")
    t0 = time.perf_counter()
    y, sr, extra = backend.synthesize(plan)
    t1 = time.perf_counter()
    extra = dict(extra)
    y = audio.validate(y, sr, name=plan.label)
    if sr != CLIP_SR:
        y = audio.resample(y, orig_sr=sr, target_sr=CLIP_SR)
    if plan.identity.get("stand_in"):  # demo clips, preset without weights: the labelled stand-in
        from .demo_enhance import apply_stand_in

        y, enh_info = apply_stand_in(y, CLIP_SR, plan.preset, seed=plan.seed)
    else:
        cache = StepCache(step_cache_dir) if step_cache_dir is not None else None
        y, enh_info = apply_preset(y, CLIP_SR, plan.preset, device=plan.device, seed=plan.seed, cache=cache)
    t2 = time.perf_counter()
    flac = audio.encode_flac(y, CLIP_SR, name=plan.label)
    synth_timings = extra.pop("synth_timings_s", {})
    prov = {
        **plan.identity,
        "key": plan.key,
        **extra,
        **enh_info,
        "request": plan.request.to_dict(),
        "node": node or socket.gethostname(),
        "sample_rate": CLIP_SR,
        "duration_s": round(len(y) / CLIP_SR, 4),
        "timings_s": {"synthesis": round(t1 - t0, 4), "enhance": round(t2 - t1, 4), **synth_timings},
        "versions": versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "audio_sha256": hashlib.sha256(flac).hexdigest(),
    }
    return Produced(flac=flac, provenance=prov)


def versions() -> dict:
    """Versions of the libraries that shape a clip's samples, and the workbench's own."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("numpy", "soundfile", "pyloudnorm", "torch", "coqui-tts", "resemble-enhance"):
        with contextlib.suppress(PackageNotFoundError):  # not installed: not part of the clip
            out[pkg] = version(pkg)
    from . import __version__

    out["workbench"] = __version__
    return out
