"""Rendering on a Ray cluster: one worker per GPU (or CPU slot), interactive work first.

:class:`RayExecutor` connects to a cluster (``settings.cluster`` or ``--cluster``:
``ray://HOST:PORT`` through Ray Client, ``HOST:PORT`` when this machine is a node of the
cluster, or ``auto`` for the cluster started on this machine) and starts one
:class:`RenderWorker` actor per GPU of every node, or per CPU that Ray advertises on a
node without GPUs. Each worker is its own process with its own model LRU and
conditioning cache.

Scheduling happens here, in the head (the app or the CLI): each worker gets one plan
at a time, interactive plans (Compare, enhancement diff, regenerate) before batch
plans, and a plan goes to a worker that has its checkpoint loaded when one is free.
So an interactive render waits at most for the clip each worker is on, and a cancelled
batch stops within one clip per worker. For :data:`INTERACTIVE_HOLD_S` after an
interactive request, batches leave one worker free (with two or more), so the next
click of someone comparing does not wait at all.

Faults: a worker that dies (process killed, node lost) has its plan retried on another
worker (up to :data:`MAX_ATTEMPTS` times) and is replaced when its node is still alive.
A node whose model files are missing or differ from the head's (content hash) fails
that plan with a :class:`~workbench.errors.ModelUnavailable` naming the node; the rest
of the batch goes on. The finished clip (FLAC bytes) and its provenance come back to
the head, which writes the content-addressed cache; no shared file system is needed.

Each node needs the same Python requirements and the model folders at the same paths
(or ``WORKBENCH_PATH_MAP=/head/prefix=/node/prefix`` in the environment of its
``ray start``); the workbench code itself is shipped from the head. Reference
recordings are sent with the plan.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from .errors import ModelUnavailable, RenderError, WorkbenchError
from .executor import BATCH, INTERACTIVE
from .renderplan import RenderPlan

log = logging.getLogger(__name__)

#: Ray namespace of the workbench's actors (workers and status boards)
NAMESPACE = "workbench"
#: names of the status boards heads publish their queues on start with this
BOARD_PREFIX = "workbench-status:"
#: a plan whose worker died is tried on at most this many workers in all
MAX_ATTEMPTS = 3
#: tries to open a Ray Client session when the head reports that it could not start one
CLIENT_ATTEMPTS = 3
#: seconds before the second try (then twice that, ...)
CLIENT_RETRY_S = 2.0
#: seconds between two status publications of a head
PUBLISH_EVERY_S = 0.5
#: for this long after an interactive request, batches leave one worker free (when there
#: are two or more), so a reviewer's next Compare click does not wait behind the batch
INTERACTIVE_HOLD_S = 15.0


class ClusterError(RenderError):
    """The Ray cluster cannot be reached or has no workers; says how to fix it."""


# ---------------------------------------------------------------------------- connection


def connect(address: str) -> None:
    """Connect this process to the Ray cluster at ``address`` (once; later calls are no-ops).

    ``address``: ``ray://HOST:PORT`` (Ray Client, from any machine), ``HOST:PORT`` (this
    machine runs a node of the cluster) or ``auto`` (the cluster started on this machine).
    Token authentication: the token Ray reads (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``
    or ``~/.ray/auth_token``) must be the cluster's.
    """
    import ray

    if ray.is_initialized():
        return
    address = address.strip()
    kwargs: dict[str, Any] = {}
    if not (address == "auto" or address.startswith("ray://")):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ClusterError(f"cluster address {address!r} is not ray://HOST:PORT, HOST:PORT or auto")
        if host.startswith("127."):  # a loopback node: Ray would swap 127.0.0.1 for the network address
            kwargs["_node_ip_address"] = host
    package = str(Path(__file__).resolve().parent)
    attempts = CLIENT_ATTEMPTS if address.startswith("ray://") else 1
    for attempt in range(1, attempts + 1):
        try:
            ray.init(
                address=address,
                namespace=NAMESPACE,
                logging_level=logging.WARNING,
                log_to_driver=False,
                runtime_env={"py_modules": [package], "excludes": ["__pycache__"]},
                **kwargs,
            )
            return
        except ConnectionAbortedError as e:  # Ray Client: the head's server for this client did not come up
            if attempt == attempts:
                raise ClusterError(
                    f"the Ray cluster at {address!r} accepted the connection but could not start a server for "
                    f"this client ({attempts} tries; {_gist(e)}); see ray_client_server_*.err in the head's "
                    "Ray logs (/tmp/ray/session_latest/logs), and check that the head is not out of memory or CPU"
                ) from None
            with contextlib.suppress(Exception):
                ray.shutdown()
            log.warning("Ray cluster at %s: client server did not start (%s); trying again", address, _gist(e))
            time.sleep(CLIENT_RETRY_S * attempt)
        except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError, ... for an unreachable cluster
            raise ClusterError(
                f"cannot connect to the Ray cluster at {address!r} ({_gist(e)}); "
                "start it with `ray start --head` on the GPU server, check the address and port, and that this "
                "machine uses the cluster's auth token (see README, Rendering on GPU servers)"
            ) from None


def _gist(e: BaseException) -> str:
    """An exception in one line: its type, its first line and, for a relayed traceback, the last line."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = " ... ".join(dict.fromkeys(lines[:1] + lines[-1:]))  # the server's own error is the last line
    return f"{type(e).__name__}: {text[:400]}"


# ---------------------------------------------------------------------------- workers


def _path_map() -> list[tuple[str, str]]:
    """``WORKBENCH_PATH_MAP=/head/a=/node/a:/head/b=/node/b`` as pairs (prefix on the head, here)."""
    pairs = []
    for item in filter(None, os.environ.get("WORKBENCH_PATH_MAP", "").split(":")):
        head, sep, here = item.partition("=")
        if sep:
            pairs.append((head.rstrip("/"), here.rstrip("/")))
    return pairs


def _local_path(path: Path | None, pairs: list[tuple[str, str]]) -> Path | None:
    if path is None:
        return None
    s = str(path)
    for head, here in pairs:
        if s == head or s.startswith(head + "/"):
            return Path(here + s[len(head) :])
    return path


class RenderWorker:
    """One worker slot (a Ray actor): its own backends, model LRU and conditioning cache.

    ``device`` is ``cuda`` for a GPU slot (Ray shows the actor only its GPU) or ``cpu``;
    ``threads`` limits torch's CPU threads (None: torch's default).
    """

    def __init__(self, device: str, fp16: bool, max_loaded_models: int, threads: int | None):
        import ray

        from .devices import resolve_device
        from .synth import default_backends, limit_loaded_models

        # below the app's priority: where a node also serves the app, pages and votes come first
        os.nice(int(os.environ.get("WORKBENCH_WORKER_NICE", "10")))
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.node_ip = ray.util.get_node_ip_address()
        self.node = f"{socket.gethostname()} ({self.node_ip})"
        self.cache = Path(os.environ.get("WORKBENCH_WORKER_CACHE", "~/.cache/workbench-worker")).expanduser()
        limit_loaded_models(max_loaded_models)  # this worker's process: its own budget
        self.backends = default_backends(cache_dir=self.cache, device=self.device, fp16=fp16)

    def info(self) -> dict:
        """Where this worker runs: node name and address, process id, device."""
        return {"node": self.node, "node_ip": self.node_ip, "pid": os.getpid(), "device": self.device}

    def render(self, plan: RenderPlan, reference: bytes | None):
        """Produce ``plan`` here; ``reference`` is the reference recording's bytes (None for built-ins).

        Errors name this node, so a failure on one server can be told from the others.
        """
        from .pipeline import produce

        try:
            local = self._localize(plan, reference)
            return produce(local, self.backends, node=self.node, step_cache_dir=self.cache / "steps")
        except WorkbenchError as e:
            if str(e).startswith("node "):
                raise
            msg = f"node {self.node}: {e}"
            try:
                named = type(e)(msg)
            except TypeError:  # an error type with other constructor arguments
                named = RenderError(msg)
            raise named from None

    def _localize(self, plan: RenderPlan, reference: bytes | None) -> RenderPlan:
        """The plan with this node's paths, after checking its files are the head's."""
        from .catalog import model_dir_problem
        from .fsutil import atomic_open
        from .hashing import model_files_hash

        pairs = _path_map()
        ck = plan.checkpoint
        changes: dict[str, Any] = {}
        if plan.backend == "xtts" and ck.model_dir is not None:
            here = _local_path(ck.model_dir, pairs)
            assert here is not None  # model_dir is set, so its local path is too
            problem = model_dir_problem(here)
            if problem:
                raise ModelUnavailable(
                    f"node {self.node}: checkpoint {ck.name}: {problem} (copy the head's checkpoint folder "
                    "to the same path on this node, or set WORKBENCH_PATH_MAP there)"
                )
            h = model_files_hash(here)
            if h != plan.model_hash:
                raise ModelUnavailable(
                    f"node {self.node}: checkpoint {ck.name}: the model files in {here} differ from the head's "
                    f"(sha256 {h[:12]} here, {str(plan.model_hash)[:12]} on the head); copy the head's "
                    "checkpoint folder to this node"
                )
            if here != ck.model_dir:
                changes["checkpoint"] = ck.model_copy(update={"model_dir": here})
        weights = getattr(plan.preset, "weights_dir", None)
        if weights is not None:
            here = _local_path(weights, pairs)
            if here is None or not here.is_dir():
                raise ModelUnavailable(
                    f"node {self.node}: preset {plan.preset.name!r}: enhancer weights folder {here} missing; "
                    "copy it from the head to the same path on this node"
                )
            changes["preset"] = plan.preset.model_copy(update={"weights_dir": here})
        if getattr(plan.preset, "steps", None) and "stand_in" not in plan.identity:
            changes["preset"] = self._localize_chain(plan, pairs)
        elif "enhancer_hash" in plan.identity and "preset" in changes:
            self._check_files(plan, "enhancer weights", changes["preset"], {"weights": plan.identity["enhancer_hash"]})
        if plan.reference_file is not None and reference is not None:
            digest = hashlib.sha256(reference).hexdigest()
            local = self.cache / "references" / f"{digest}{Path(plan.reference_file).suffix}"
            if not local.is_file():
                with atomic_open(local) as f:
                    f.write(reference)
            changes["reference_file"] = local
        return dataclasses.replace(plan, **changes) if changes else plan

    def _localize_chain(self, plan: RenderPlan, pairs: list[tuple[str, str]]):
        """The plan's chain with this node's paths, after checking each step's files are the head's.

        The head's cache key holds a content hash of every file a step reads (enhancer
        weights, a command's ``files``); a node whose copies differ would store other audio
        under that key, so it refuses the item, naming the step.
        """
        from .catalog import CommandStep, ResembleEnhanceStep

        preset = plan.preset
        steps = []
        for step in preset.steps or ():
            if isinstance(step, ResembleEnhanceStep) and step.weights_dir is not None:
                step = step.model_copy(update={"weights_dir": _local_path(step.weights_dir, pairs)})
            elif isinstance(step, CommandStep):
                argv = tuple(str(_local_path(Path(a), pairs)) if a.startswith("/") else a for a in step.argv)
                files = tuple(_local_path(f, pairs) for f in step.files)
                step = step.model_copy(update={"argv": argv, "files": files, "cwd": _local_path(step.cwd, pairs)})
            steps.append(step)
        head_chain = plan.identity["preset"]["chain"]
        for i, (step, head) in enumerate(zip(steps, head_chain, strict=True), start=1):
            expected = {k: head[k] for k in ("weights", "files") if k in head}
            label = step.label if isinstance(step, CommandStep) else step.type
            self._check_files(plan, f"step {i} ({label})", step, expected)
        return preset.model_copy(update={"steps": tuple(steps)})

    def _check_files(self, plan: RenderPlan, what: str, step, expected: dict) -> None:
        """Refuse the item when the content hashes of ``step``'s files here are not ``expected`` (the head's)."""
        from .enhance import step_fingerprint, weights_hash

        if not expected:
            return
        try:
            if "files" in expected:
                here = {"files": step_fingerprint(step, seed=plan.seed)["files"]}
            else:
                here = {"weights": weights_hash(step.weights_dir)}
        except (OSError, WorkbenchError) as e:
            raise ModelUnavailable(
                f"node {self.node}: preset {plan.preset.name!r}, {what}: cannot read its files here ({e}); copy "
                "them from the head to the same path on this node, or set WORKBENCH_PATH_MAP"
            ) from None
        if here != expected:
            raise ModelUnavailable(
                f"node {self.node}: preset {plan.preset.name!r}, {what}: its files differ from the head's (content "
                "hash); copy them from the head to this node so both render the same audio"
            )


class StatusBoard:
    """A small actor a head publishes its queue and workers on, for ``cluster status``."""

    def __init__(self):
        self.state: dict = {}

    def set(self, state: dict) -> None:
        self.state = state

    def get(self) -> dict:
        return self.state


# ---------------------------------------------------------------------------- scheduling


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    plan: RenderPlan = field(compare=False)
    future: Future = field(compare=False)
    batch: object = field(default=None, compare=False)
    attempts: int = field(default=0, compare=False)


@dataclass
class _Slot:
    actor: Any
    node_id: str
    node: str  # node name for messages
    device: str
    loaded: OrderedDict = field(default_factory=OrderedDict)  # model hash -> checkpoint name, LRU order
    info: Any = None  # ObjectRef of the worker's info() (its first call, so answered first)
    started: bool = False  # info() has answered: the process is up
    job: _Job | None = None
    ref: Any = None  # ObjectRef of the running render
    done: int = 0
    failed: int = 0


class RayExecutor:
    """Runs plans on a Ray cluster's worker slots (see the module docstring). Thread-safe.

    Parameters
    ----------
    address : ``ray://HOST:PORT``, ``HOST:PORT`` or ``auto``
    fp16 : float16 autocast on GPU workers
    max_loaded_models : each worker's model LRU size
    cpu_threads : torch threads per CPU worker (1: one core per slot)
    """

    parallel = True

    def __init__(self, address: str, *, fp16: bool = False, max_loaded_models: int = 1, cpu_threads: int = 1):
        import ray

        connect(address)
        self.address = address
        self._ray = ray
        self._options = {"fp16": fp16, "max_loaded_models": max_loaded_models}
        self._cpu_threads = cpu_threads
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._seq = itertools.count()
        self._slots: list[_Slot] = []
        self._spawned: dict[str, int] = {}  # node id -> workers started there (replacements included)
        self._refs: dict[str, Any] = {}  # reference file -> ray ObjectRef of its bytes
        self._closed = False
        self._last_interactive = float("-inf")  # time.monotonic() of the last interactive request
        self._dirty = True
        self._published = 0.0
        self._worker_cls = ray.remote(RenderWorker)
        self._board = (
            ray.remote(StatusBoard)
            .options(name=f"{BOARD_PREFIX}{socket.gethostname()}:{os.getpid()}:{id(self):x}", num_cpus=0)
            .remote()
        )
        self._spawn()
        if not self._slots:
            raise ClusterError(
                f"the Ray cluster at {address!r} has no node with a GPU or CPU to render on; "
                "start nodes with `ray start --address=HEAD:PORT` (see README, Rendering on GPU servers)"
            )
        self._thread = threading.Thread(target=self._loop, name="ray-dispatch", daemon=True)
        self._thread.start()

    # -------------------------------------------------------------- workers

    def _spawn(self) -> None:
        """Start workers up to one per GPU (or CPU slot) on every live node; replacements too."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        for node in self._ray.nodes():
            if not node.get("Alive"):
                continue
            node_id, res = node["NodeID"], node.get("Resources", {})
            gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 0))
            want = gpus or cpus
            have = sum(s.node_id == node_id for s in self._slots)
            # a node that keeps losing workers gets no new ones after 3 rounds of replacements
            budget = 3 * want - self._spawned.get(node_id, 0)
            for _ in range(min(want - have, max(budget, 0))):
                device = "cuda" if gpus else "cpu"
                actor = self._worker_cls.options(
                    num_gpus=1 if gpus else 0,
                    num_cpus=0 if gpus else 1,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                    max_restarts=0,
                ).remote(
                    device,
                    self._options["fp16"],
                    self._options["max_loaded_models"],
                    None if gpus else self._cpu_threads,
                )
                name = f"{node.get('NodeManagerHostname', '?')} ({node.get('NodeManagerAddress', '?')})"
                self._slots.append(
                    _Slot(actor=actor, node_id=node_id, node=name, device=device, info=actor.info.remote())  # type: ignore[attr-defined]
                )
                self._spawned[node_id] = self._spawned.get(node_id, 0) + 1

    def workers(self) -> list[dict]:
        """Each live worker's node, device, process id, loaded checkpoints and the clip it is on (label or None).

        Waits for workers that are still starting.
        """
        with self._cond:
            slots = [(s, s.info, list(s.loaded.values()), s.job.plan.label if s.job else None) for s in self._slots]
        infos = self._ray.get([info for _, info, _, _ in slots])
        return [{**i, "loaded": loaded, "busy": busy} for (_, _, loaded, busy), i in zip(slots, infos, strict=True)]

    # -------------------------------------------------------------- submitting

    def submit(self, plan: RenderPlan, *, priority: int = INTERACTIVE, batch: object | None = None) -> Future:
        fut: Future = Future()
        with self._cond:
            if self._closed:
                raise ClusterError("the cluster executor was closed")
            heapq.heappush(self._queue, _Job(priority, next(self._seq), plan, fut, batch))
            if priority == INTERACTIVE:
                self._last_interactive = time.monotonic()
            self._dirty = True
            self._cond.notify_all()
        return fut

    def cancel(self, batch: object) -> int:
        with self._cond:
            dropped = [j for j in self._queue if j.batch is batch]
            self._queue = [j for j in self._queue if j.batch is not batch]
            heapq.heapify(self._queue)
            self._dirty = True
        for j in dropped:
            j.future.set_exception(RenderError(f"{j.plan.label}: cancelled before it was rendered"))
        return len(dropped)

    def queued(self) -> dict[str, int]:
        """Plans waiting for a worker, by priority."""
        with self._cond:
            return {
                "interactive": sum(j.priority == INTERACTIVE for j in self._queue),
                "batch": sum(j.priority == BATCH for j in self._queue),
                "running": sum(s.job is not None for s in self._slots),
            }

    def close(self) -> None:
        with self._cond:
            self._closed = True
            jobs, self._queue = self._queue, []
            self._cond.notify_all()
        self._thread.join(timeout=10)
        with self._cond:
            jobs += [s.job for s in self._slots if s.job is not None and not s.job.future.done()]
        for j in jobs:
            j.future.set_exception(ClusterError(f"{j.plan.label}: the cluster executor was closed"))
        for s in self._slots:
            self._ray.kill(s.actor)
        self._ray.kill(self._board)  # type: ignore[arg-type]  # an actor handle, whatever ray's stubs say

    @property
    def closed(self) -> bool:
        return self._closed

    def describe(self) -> str:
        return f"Ray cluster at {self.address} ({len(self._slots)} workers)"

    # -------------------------------------------------------------- dispatch loop

    def _reference(self, plan: RenderPlan):
        """ObjectRef of the reference recording's bytes (put into the cluster once per file version)."""
        if plan.reference_file is None:
            return None
        key = f"{plan.reference_file}:{plan.identity.get('reference_hash')}"
        if key not in self._refs:
            self._refs[key] = self._ray.put(Path(plan.reference_file).read_bytes())
        return self._refs[key]

    def _pick_slot(self, job: _Job, idle: list[_Slot]) -> _Slot:
        h = job.plan.model_hash
        for s in idle:  # a worker that has the checkpoint loaded
            if h is not None and h in s.loaded:
                return s
        for s in idle:  # else one with room in its LRU, so nobody's model is evicted
            if len(s.loaded) < self._options["max_loaded_models"]:
                return s
        return min(idle, key=lambda s: s.done)

    def _started(self, slot: _Slot) -> bool:
        """True once the worker's process answered (a replacement on a lost node never does)."""
        if not slot.started:
            ready, _ = self._ray.wait([slot.info], timeout=0)
            slot.started = bool(ready)
        return slot.started

    def _assign(self) -> None:
        """Give each idle worker the most urgent queued plan (call with the lock held)."""
        later: list[_Job] = []  # retried plans that wait for a worker known to be alive
        while self._queue:
            idle = [s for s in self._slots if s.job is None]
            if not idle:
                break
            job = heapq.heappop(self._queue)
            if isinstance(job.batch, threading.Event) and job.batch.is_set():  # its batch was cancelled
                job.future.set_exception(RenderError(f"{job.plan.label}: cancelled before it was rendered"))
                continue
            if (
                job.priority == BATCH
                and len(idle) == 1
                and len(self._slots) > 1
                and time.monotonic() - self._last_interactive < INTERACTIVE_HOLD_S
            ):  # someone is comparing now: keep the last free worker for them
                later.append(job)
                break
            if job.attempts:  # its worker died: not onto a worker that may be on the same lost node
                idle = [s for s in idle if self._started(s)]
                if not idle:
                    later.append(job)
                    continue
            slot = self._pick_slot(job, idle)
            try:
                ref = slot.actor.render.remote(job.plan, self._reference(job.plan))
            except OSError as e:  # the reference file vanished on the head
                job.future.set_exception(RenderError(f"{job.plan.label}: cannot read the reference ({e})"))
                continue
            slot.job, slot.ref = job, ref
            self._dirty = True
        for job in later:
            heapq.heappush(self._queue, job)

    def _loop(self) -> None:
        while not self._closed:
            try:
                self._step()
            except Exception:  # the dispatcher must outlive a failed Ray call, or every render would hang
                log.exception("cluster dispatcher: unexpected error; going on")
                time.sleep(0.5)

    def _step(self) -> None:
        """One round: hand out queued plans, wait briefly for one to finish, collect it."""
        with self._cond:
            if self._closed:
                return
            self._assign()
            if not self._slots and self._queue:
                self._fail_all(ClusterError(f"no live workers left in the Ray cluster at {self.address!r}"))
            running = {s.ref: s for s in self._slots if s.ref is not None}
            if not running:
                self._publish(force=True)  # the last finish may have been throttled: show idle now
                self._cond.wait(timeout=PUBLISH_EVERY_S)
                return
        done, _ = self._ray.wait(list(running), num_returns=1, timeout=0.1)
        for ref in done:
            self._finish(running[ref], ref)
        with self._cond:
            self._publish()

    def _finish(self, slot: _Slot, ref) -> None:
        from ray.exceptions import RayError, RayTaskError

        job = slot.job
        assert job is not None  # only a busy slot has a ref to finish
        try:
            produced = self._ray.get(ref)
        except RayTaskError as e:  # the plan failed inside the worker: that item's error
            cause = e.cause if isinstance(e.cause, BaseException) else e
            err = (
                cause
                if isinstance(cause, WorkbenchError)
                else RenderError(f"{job.plan.label}: node {slot.node}: {type(cause).__name__}: {cause}")
            )
            with self._cond:
                slot.job = slot.ref = None
                slot.failed += 1
            job.future.set_exception(err)
        except RayError as e:  # the worker (or its node) is gone: try the plan elsewhere
            log.warning(
                "worker on %s died during %s (%s); retrying elsewhere", slot.node, job.plan.label, type(e).__name__
            )
            with self._cond:
                self._slots.remove(slot)
                job.attempts += 1
                if job.attempts >= MAX_ATTEMPTS:
                    job.future.set_exception(
                        RenderError(
                            f"{job.plan.label}: {job.attempts} workers died rendering it (the last on node "
                            f"{slot.node}); see the Ray logs there (/tmp/ray/session_latest/logs)"
                        )
                    )
                else:
                    heapq.heappush(self._queue, job)
                self._spawn()
                self._dirty = True
        except Exception as e:  # e.g. a result that cannot be unpickled here: that item's error
            with self._cond:
                slot.job = slot.ref = None
                slot.failed += 1
            job.future.set_exception(RenderError(f"{job.plan.label}: node {slot.node}: {type(e).__name__}: {e}"))
        else:
            with self._cond:
                slot.job = slot.ref = None
                slot.done += 1
                h = produced.provenance.get("model_files_hash")
                if h:
                    slot.loaded[h] = job.plan.checkpoint.name
                    slot.loaded.move_to_end(h)
                    while len(slot.loaded) > self._options["max_loaded_models"]:
                        slot.loaded.popitem(last=False)
            job.future.set_result(produced)

    def _fail_all(self, err: WorkbenchError) -> None:
        jobs, self._queue = self._queue, []
        for j in jobs:
            j.future.set_exception(err)

    def _publish(self, force: bool = False) -> None:
        """Post the queue and workers to this head's status board (if changed; at most every PUBLISH_EVERY_S)."""
        now = time.monotonic()
        if not self._dirty or (now - self._published < PUBLISH_EVERY_S and not force):
            return
        self._dirty, self._published = False, now
        state = {
            "head": f"{socket.gethostname()} pid {os.getpid()}",
            "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "queued": {
                "interactive": sum(j.priority == INTERACTIVE for j in self._queue),
                "batch": sum(j.priority == BATCH for j in self._queue),
            },
            "workers": [
                {
                    "node": s.node,
                    "device": s.device,
                    "busy": s.job.plan.label if s.job else None,
                    "loaded": list(s.loaded.values()),
                    "done": s.done,
                    "failed": s.failed,
                }
                for s in self._slots
            ],
        }
        self._board.set.remote(state)  # type: ignore[attr-defined]  # ray adds .remote to actor methods


# ---------------------------------------------------------------------------- status


def cluster_status(address: str) -> dict:
    """Nodes (address, alive, CPUs, GPUs) and what each connected head reports (queues, workers)."""
    import ray

    connect(address)
    nodes = [
        {
            "node": f"{n.get('NodeManagerHostname', '?')} ({n.get('NodeManagerAddress', '?')})",
            "alive": bool(n.get("Alive")),
            "cpus": int(n.get("Resources", {}).get("CPU", 0)),
            "gpus": int(n.get("Resources", {}).get("GPU", 0)),
        }
        for n in ray.nodes()
    ]
    heads: list[dict] = []
    for a in ray.util.list_named_actors(all_namespaces=True):
        if a.get("namespace") == NAMESPACE and a.get("name", "").startswith(BOARD_PREFIX):
            try:
                board = ray.get_actor(a["name"], namespace=NAMESPACE)
                state = cast("dict | None", ray.get(board.get.remote(), timeout=10))  # a StatusBoard.get()
            except Exception:  # a head that just exited
                continue
            if state:
                heads.append(state)
    return {"address": address, "nodes": nodes, "heads": heads}


def format_status(status: dict) -> str:
    """``cluster_status`` as the text ``python -m workbench cluster status`` prints."""
    lines = [f"Ray cluster at {status['address']}", "", "nodes:"]
    for n in status["nodes"]:
        state = "alive" if n["alive"] else "DEAD"
        lines.append(f"  {n['node']:<40} {state:<6} {n['gpus']} GPU  {n['cpus']} CPU")
    if not status["heads"]:
        lines += ["", "no workbench is rendering on this cluster now (no app or render command connected)"]
    for h in status["heads"]:
        q = h["queued"]
        lines += [
            "",
            f"workbench {h['head']} (as of {h['updated_utc']}): "
            f"{q['interactive']} interactive and {q['batch']} batch clips queued",
        ]
        for w in h["workers"]:
            loaded = ", ".join(w["loaded"]) or "nothing loaded"
            busy = f"rendering {w['busy']}" if w["busy"] else "idle"
            lines.append(f"  {w['node']:<40} {w['device']:<5} {busy}; {loaded}; {w['done']} done, {w['failed']} failed")
    return "\n".join(lines)
