"""Compute devices: resolve ``auto`` and serialise model work per device.

Every model call (XTTS load, conditioning, synthesis, resemble-enhance) runs while
holding :func:`device_lock` for its device, so the app never runs two models into
the same GPU at once, whichever tab or batch asked.
"""

from __future__ import annotations

import threading

from ..errors import ModelUnavailable

_LOCKS: dict[str, threading.RLock] = {}
_GUARD = threading.Lock()


def cuda_available() -> bool:
    """True when torch sees a CUDA GPU."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(device: str | None) -> str:
    """``auto``/None -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda``/``cuda:N`` checked.

    Raises
    ------
    ModelUnavailable
        ``cuda`` was asked for but torch sees no GPU, or the name is unknown.
    """
    device = (device or "auto").strip().lower()
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not cuda_available():
            raise ModelUnavailable(
                f"device {device!r} was requested but torch sees no CUDA GPU here; "
                "use --device cpu (or settings.device: auto in the catalog)"
            )
        return device
    raise ModelUnavailable(f"unknown device {device!r}; use auto, cpu or cuda")


def device_lock(device: str) -> threading.RLock:
    """The one lock for ``device`` (re-entrant: a render may load, condition and synthesize)."""
    key = "cuda:0" if device == "cuda" else device
    with _GUARD:
        return _LOCKS.setdefault(key, threading.RLock())
