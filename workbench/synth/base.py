"""The one interface every synthesis backend implements."""

from __future__ import annotations

from typing import ClassVar, NamedTuple, Protocol, runtime_checkable

import numpy as np

from ..renderplan import RenderPlan


class Synthesis(NamedTuple):
    """Raw audio from a backend, before enhancement and loudness normalisation."""

    y: np.ndarray  # mono float32, shape (n_samples,)
    sr: int  # sample rate of ``y`` in Hz
    info: dict  # provenance: what the backend did (model hash, device, seed, timings in s, ...)


@runtime_checkable
class SynthesisBackend(Protocol):
    """Turns a :class:`~workbench.renderplan.RenderPlan` into raw audio.

    A backend reads only the plan (never the renderer), so the same backend object
    runs in the app's process or inside a cluster worker.
    """

    name: ClassVar[str]  # the value of RenderPlan.backend this backend serves

    def synthesize(self, plan: RenderPlan) -> Synthesis:
        """Raw audio for ``plan``; raises a :class:`~workbench.errors.WorkbenchError` naming what to fix."""
        ...
