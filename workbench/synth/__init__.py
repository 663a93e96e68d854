"""Synthesis backends. One file per backend behind :func:`synthesize_for`.

- :mod:`.xtts`: Coqui XTTS v2 checkpoints (model LRU, conditioning cache, seeds)
- :mod:`.devices`: device resolution and the one-model-call-per-device lock
- :mod:`.hashing`: content hashes of model and audio files

Importing this package is cheap: torch and Coqui TTS load on first synthesis.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from ..errors import RenderError

if TYPE_CHECKING:
    from ..render import Renderer, RenderRequest
    from .xtts import XttsBackend

_GUARD = threading.Lock()


def xtts_backend(renderer: Renderer) -> XttsBackend:
    """The renderer's XTTS backend (created on first use, then shared by its threads)."""
    with _GUARD:
        backend = renderer.backends.get("xtts")
        if backend is None:
            from .xtts import XttsBackend

            settings = renderer.catalog.settings
            backend = XttsBackend(
                cache_dir=renderer.cache_dir,
                device=renderer.device,
                fp16=settings.fp16,
                max_loaded_models=settings.max_loaded_models,
            )
            renderer.backends["xtts"] = backend
        return backend


def synthesize_for(renderer: Renderer, req: RenderRequest, plan: dict) -> tuple[np.ndarray, int, dict]:
    """Synthesize ``req`` with the model backend its checkpoint names.

    Returns ``(y, sr, provenance)``: mono float32 samples, their rate in Hz, and what
    the backend did (model hash, device, seed, conditioning, timings).
    """
    ck = renderer.catalog.checkpoint(req.checkpoint)
    if ck.backend != "xtts":
        raise RenderError(f"{ck.name}: backend {ck.backend!r} has no model synthesis; give it clips_dir instead")
    ref = renderer.catalog.reference(req.reference)
    return xtts_backend(renderer).synthesize(ck, ref, plan["text"], language=plan["language"], seed=plan["seed"])
