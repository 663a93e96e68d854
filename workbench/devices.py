"""Compute devices: resolve ``auto`` and serialise model work per device.

Every model call (XTTS load, conditioning, synthesis, resemble-enhance) runs while
holding :func:`device_lock` for its device, so the app never runs two models into
the same GPU at once, whichever tab or batch asked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import ModelUnavailable

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


@contextmanager
def seeded(device: str, seed: int) -> Iterator[None]:
    """Run the block with torch seeded to ``seed``, leaving the global RNG state as it was.

    Forks the CPU generator and, on ``cuda``/``cuda:N``, that device's generator, so a
    seeded render is deterministic without disturbing anyone else's random numbers.
    """
    import torch

    cuda_devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        yield
