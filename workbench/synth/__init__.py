"""Synthesis backends: one file per backend behind :class:`SynthesisBackend`.

- :mod:`.base`: the interface (``synthesize(plan) -> Synthesis``)
- :mod:`.xtts`: Coqui XTTS v2 checkpoints (model LRU, conditioning cache, seeds)
- :mod:`.clips`: pre-rendered clips (a checkpoint's ``clips_dir`` or bundled demo clips)

A backend reads only the :class:`~workbench.renderplan.RenderPlan` it is given and
never imports :mod:`workbench.render`. Importing this package is cheap: torch and
Coqui TTS load on first synthesis.
"""

from __future__ import annotations

from pathlib import Path

from .base import Synthesis, SynthesisBackend
from .clips import ClipFolderBackend
from .xtts import XttsBackend, limit_loaded_models

__all__ = [
    "ClipFolderBackend",
    "Synthesis",
    "SynthesisBackend",
    "XttsBackend",
    "default_backends",
    "limit_loaded_models",
]


def default_backends(*, cache_dir: Path, device: str = "auto", fp16: bool = False) -> dict[str, SynthesisBackend]:
    """The standard backends by name: ``xtts`` (model files) and ``clips`` (pre-rendered).

    ``cache_dir`` holds XTTS's conditioning latents; ``device`` is ``auto`` | ``cpu`` |
    ``cuda``. XTTS models go in the process's LRU, sized by :func:`limit_loaded_models`.
    """
    return {
        XttsBackend.name: XttsBackend(cache_dir=cache_dir, device=device, fp16=fp16),
        ClipFolderBackend.name: ClipFolderBackend(),
    }
