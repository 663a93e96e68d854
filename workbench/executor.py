"""Executors: where a :class:`~workbench.renderplan.RenderPlan` is turned into a clip.

The renderer plans, checks the cache and writes it; an executor only runs
:func:`workbench.pipeline.produce` somewhere and hands back the FLAC bytes and
provenance:

- :class:`LocalExecutor` (the default): in this process, in the caller's thread;
  nothing to install or start.
- :class:`workbench.cluster.RayExecutor`: on the worker slots of a Ray cluster
  (``settings.cluster`` or ``--cluster``), interactive work ahead of batches.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .pipeline import Produced, produce
from .renderplan import RenderPlan
from .synth.base import SynthesisBackend

if TYPE_CHECKING:
    from .cluster import RayExecutor

#: priority of a render someone is waiting for (Compare, enhancement diff, a regenerate)
INTERACTIVE = 0
#: priority of batch work (batch render, opening a blind test)
BATCH = 1


class Executor(Protocol):
    """Runs plans. ``parallel`` executors take a whole batch at once (see :meth:`Renderer.render_many`)."""

    parallel: bool

    def submit(self, plan: RenderPlan, *, priority: int = INTERACTIVE, batch: object | None = None) -> Future:
        """Start ``plan``; the future holds a :class:`~workbench.pipeline.Produced` or a WorkbenchError."""
        ...

    def cancel(self, batch: object) -> int:
        """Drop the queued plans of ``batch`` (their futures fail); returns how many. Running ones finish."""
        ...

    def close(self) -> None:
        """Release workers and connections."""
        ...

    def describe(self) -> str:
        """Where plans run, for a log line (e.g. "local (in this process)")."""
        ...


class LocalExecutor:
    """Runs each plan at once in the calling thread, with this process's backends."""

    parallel = False

    def __init__(self, backends: Mapping[str, SynthesisBackend], *, step_cache_dir: Path | None = None):
        self.backends = backends
        self.step_cache_dir = step_cache_dir  # post-processing steps cached by content (None: none)

    def submit(self, plan: RenderPlan, *, priority: int = INTERACTIVE, batch: object | None = None) -> Future:
        fut: Future[Produced] = Future()
        try:
            fut.set_result(produce(plan, self.backends, step_cache_dir=self.step_cache_dir))
        except Exception as e:  # handed to whoever reads the future, like any other executor
            fut.set_exception(e)
        return fut

    def cancel(self, batch: object) -> int:
        return 0  # nothing is ever queued

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "local (in this process)"


#: cluster executors by (address, fp16, max_loaded_models): renderers in one process share
#: one set of workers (a second set would wait for the slots the first one holds)
_SHARED: dict[tuple, RayExecutor] = {}
_SHARED_GUARD = threading.Lock()


def make_executor(cluster: str | None, *, fp16: bool = False, max_loaded_models: int = 1) -> Executor | None:
    """The executor for ``cluster``: ``ray://HOST:PORT``, ``HOST:PORT`` or ``auto`` ->
    this process's :class:`workbench.cluster.RayExecutor` for it (connects on first use);
    None or ``local`` -> None (render here).
    """
    if not cluster or cluster == "local":
        return None
    from .cluster import RayExecutor  # imports ray: only when a cluster is configured

    key = (cluster, fp16, max_loaded_models)
    with _SHARED_GUARD:
        ex = _SHARED.get(key)
        if ex is None or ex.closed:
            ex = _SHARED[key] = RayExecutor(cluster, fp16=fp16, max_loaded_models=max_loaded_models)
        return ex
