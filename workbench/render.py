"""Render clips through a content-addressed cache.

A :class:`RenderRequest` (checkpoint, reference, sentence, enhancement, take) maps to a
content key: a hash of the audio source (model files or pre-rendered clip), the
reference audio, the text, every setting, the seed and :data:`PIPELINE_VERSION`. The
result is a FLAC in the cache plus a JSON sidecar with provenance; a second request for
the same key is a file read.

Sources, in order: the checkpoint's XTTS model files, its ``clips_dir`` (rendered
elsewhere), its bundled ``demo_dir``. Enhancement and loudness normalisation are
applied on top of whichever source produced the audio.

Takes: take ``n`` of a request uses seed ``inference.seed + n - 1``; :meth:`Renderer.regenerate`
renders the lowest take not yet in the cache, so new takes land beside the old ones.
Batches: :func:`expand_matrix` builds a checkpoints x references x sentences x presets x
takes matrix, :meth:`Renderer.render_many` renders it (failures reported per item) and
:func:`export_clips` copies the results under readable names with a manifest CSV.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar, cast

import numpy as np

from . import audio
from .catalog import (
    Catalog,
    EnhancePreset,
    checkpoint_availability,
    preset_availability,
    reference_audio_path,
)
from .demo_enhance import STAND_IN_VERSION, runs_as_stand_in
from .errors import ModelUnavailable, RenderError, WorkbenchError
from .executor import BATCH, INTERACTIVE, Executor, LocalExecutor, make_executor
from .fsutil import atomic_open, write_json_atomic
from .hashing import model_files_hash, sha256_file
from .pipeline import CLIP_SR, Produced
from .renderplan import RenderPlan, RenderRequest, content_key, json_default
from .synth import ClipFolderBackend, SynthesisBackend, default_backends

_T = TypeVar("_T")
log = logging.getLogger(__name__)

#: bump when the rendering pipeline changes in a way that changes output samples
PIPELINE_VERSION = "2"

#: most takes one request can have
MAX_TAKES = 1000

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Clip:
    """A rendered clip in the cache and where it came from."""

    path: Path  # FLAC, CLIP_SR Hz mono
    key: str  # content key (hex)
    request: RenderRequest
    source: str  # model | base_model | clips | demo
    provenance: dict = field(default_factory=dict, compare=False)  # sidecar content
    from_cache: bool = field(default=False, compare=False)  # True when served from the cache

    @property
    def is_demo(self) -> bool:
        return self.source == "demo"

    @property
    def duration(self) -> float:
        return float(self.provenance.get("duration_s", 0.0))

    def load(self) -> tuple[np.ndarray, int]:
        """``(y, sr)``: the clip's samples (mono float32) and rate."""
        return audio.load(self.path)


__all__ = [
    "CLIP_SR",
    "PIPELINE_VERSION",
    "Clip",
    "RenderPlan",
    "RenderRequest",
    "Renderer",
    "expand_matrix",
    "export_clips",
    "render_batch",
    "model_files_hash",
]


def preset_identity(preset: EnhancePreset, *, seed: int) -> dict:
    """What a preset adds to a clip's content key (see :func:`workbench.enhance.preset_identity`)."""
    from .enhance import preset_identity as identity  # keeps torch out of importing render

    return identity(preset, seed=seed)


class Renderer:
    """Renders :class:`RenderRequest` s to cached :class:`Clip` s. Thread-safe.

    Parameters
    ----------
    catalog : the catalog requests refer to
    cache_dir : where clips live (default: ``catalog.settings.cache_dir``)
    device : ``auto`` | ``cpu`` | ``cuda`` for model backends
    backends : synthesis backends by name (default: :func:`workbench.synth.default_backends`:
        ``xtts`` with this cache and device, and ``clips``)
    executor : where model plans run (default: from ``cluster``)
    cluster : ``ray://HOST:PORT`` | ``HOST:PORT`` | ``auto`` to render on a Ray cluster,
        ``local`` for this process (default: ``catalog.settings.cluster``, else local)

    Pre-rendered clips (``clips`` backend) are always read here, where their files are.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        cache_dir: Path | None = None,
        device: str | None = None,
        backends: Mapping[str, SynthesisBackend] | None = None,
        executor: Executor | None = None,
        cluster: str | None = None,
    ):
        self.catalog = catalog
        self.cache_dir = Path(cache_dir or catalog.settings.cache_dir)
        self.device = device or catalog.settings.device
        self._key_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        settings = catalog.settings
        self.backends: dict[str, SynthesisBackend] = dict(
            backends
            if backends is not None
            else default_backends(cache_dir=self.cache_dir, device=self.device, fp16=settings.fp16)
        )
        self._local = LocalExecutor(self.backends, step_cache_dir=self.cache_dir / "steps")
        if executor is None:
            executor = make_executor(
                settings.cluster if cluster is None else cluster,
                fp16=settings.fp16,
                max_loaded_models=settings.max_loaded_models,
            )
        self.executor: Executor = executor or self._local
        self.stats = {"hits": 0, "renders": 0}  # served from the cache / rendered fresh

    # ------------------------------------------------------------------ resolution

    def _text(self, req: RenderRequest) -> tuple[str, str]:
        if req.text is not None:
            text = req.text.strip()
            if not text:
                raise RenderError("custom text is empty; type a sentence or pick one from the catalog")
            if len(text) > 2000:
                raise RenderError(f"custom text has {len(text)} characters; the limit is 2000")
            return text, self.catalog.checkpoint(req.checkpoint).inference.language
        if req.sentence is None:
            raise RenderError("pick a sentence or type custom text")
        s = self.catalog.sentence(req.sentence)
        return s.text, s.language

    def plan(self, req: RenderRequest) -> RenderPlan:
        """Resolve ``req``: everything that determines the output samples, plus its content key.

        Raises :class:`RenderError` / :class:`CatalogError` for unknown ids or missing
        sources, before any heavy work.
        """
        ck = self.catalog.checkpoint(req.checkpoint)
        ref = self.catalog.reference(req.reference)
        preset = self.catalog.enhancement(req.enhancement)
        if not isinstance(req.take, int) or req.take < 1 or req.take > MAX_TAKES:
            raise RenderError(f"take must be between 1 and {MAX_TAKES}, got {req.take}")
        text, language = self._text(req)
        avail = checkpoint_availability(ck)
        if not avail.ok:
            raise ModelUnavailable(f"checkpoint {ck.name} cannot render: {avail.reason}")
        preset_avail = preset_availability(preset)
        # demo clips get a labelled stand-in for presets whose weights are missing (demo_enhance.py)
        stand_in = runs_as_stand_in(self.catalog, preset, avail.source)
        if not preset_avail.ok and not stand_in:
            raise ModelUnavailable(f"preset {preset.name!r} is unavailable: {preset_avail.reason}")
        seed = ck.inference.seed + req.take - 1
        # the key hashes exactly these fields; their names and values must stay stable,
        # or every cached clip renders again (bump PIPELINE_VERSION on purpose instead)
        identity: dict = {
            "pipeline": PIPELINE_VERSION,
            "checkpoint": ck.name,
            "source": avail.source,
            "reference": ref.id,
            "text": text,
            "language": language,
            "take": req.take,
            "seed": seed,
        }
        if stand_in:
            identity["preset"] = preset.model_dump(mode="json", exclude={"weights_dir", "steps"})
            identity["stand_in"] = STAND_IN_VERSION
        else:
            identity.update(preset_identity(preset, seed=seed))
        source_file = ref_path = None
        if avail.source in ("clips", "demo"):
            backend = ClipFolderBackend.name
            source_file = ClipFolderBackend.clip_file(ck, avail.source, req.reference, req.sentence)
            identity["source_hash"] = sha256_file(source_file)
        else:
            backend = ck.backend
            identity["model_hash"] = model_files_hash(ck.model_dir) if ck.model_dir else f"coqui:{ck.base_model}"
            identity["inference"] = ck.inference.model_dump(mode="json")
            ref_path = reference_audio_path(ref)
            identity["reference_hash"] = sha256_file(ref_path) if ref_path else f"builtin:{ref.builtin_speaker}"
        return RenderPlan(
            request=req,
            key=content_key(identity),
            backend=backend,
            source=avail.source,
            checkpoint=ck,
            reference=ref,
            preset=preset,
            text=text,
            language=language,
            seed=seed,
            device=self.device,
            identity=identity,
            source_file=source_file,
            reference_file=ref_path,
        )

    # ------------------------------------------------------------------ cache

    def _paths(self, key: str) -> tuple[Path, Path]:
        d = self.cache_dir / "clips" / key[:2]
        return d / f"{key}.flac", d / f"{key}.json"

    def cached(self, req: RenderRequest) -> Clip | None:
        """The cached clip for ``req`` if present and intact, else None."""
        return self._read_cached(self.plan(req))

    def _read_cached(self, plan: RenderPlan) -> Clip | None:
        flac, meta = self._paths(plan.key)
        if not (flac.is_file() and meta.is_file()):
            return None
        try:
            prov = json.loads(meta.read_text(encoding="utf-8"))
            if prov.get("audio_sha256") != sha256_file(flac):
                raise ValueError("checksum mismatch")
        except (OSError, ValueError) as e:
            log.warning("cache entry %s is corrupt (%s); rendering again", plan.key[:12], e)
            flac.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return None
        return Clip(path=flac, key=plan.key, request=plan.request, source=plan.source, provenance=prov, from_cache=True)

    def store(self, plan: RenderPlan, produced: Produced) -> Clip:
        """Write a finished clip into the cache (FLAC first, then the sidecar that vouches for it)."""
        if produced.provenance.get("key") != plan.key:
            raise RenderError(f"{plan.label}: a clip for another key came back; not cached")
        flac, meta = self._paths(plan.key)
        with atomic_open(flac) as f:
            f.write(produced.flac)
        prov = {**produced.provenance, "audio_sha256": sha256_file(flac)}
        write_json_atomic(meta, prov, indent=1, sort_keys=True, default=json_default)
        return Clip(path=flac, key=plan.key, request=plan.request, source=plan.source, provenance=prov)

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._key_locks.setdefault(key, threading.Lock())

    # ------------------------------------------------------------------ rendering

    def render(self, req: RenderRequest, *, priority: int = INTERACTIVE) -> Clip:
        """Render ``req`` (or return it from the cache). Same key at once: work done once.

        ``priority``: :data:`~workbench.executor.INTERACTIVE` (someone is waiting) or
        :data:`~workbench.executor.BATCH`; a cluster serves interactive work first.
        """
        plan = self.plan(req)
        with self._lock_for(plan.key):
            hit = self._read_cached(plan)
            if hit is not None:
                self._count("hits")
                return hit
            clip = self.store(plan, self._submit(plan, priority).result())
            self._count("renders")
            return clip

    def _submit(self, plan: RenderPlan, priority: int, batch: object | None = None):
        """Hand ``plan`` to its executor: pre-rendered clips here, model plans to ``self.executor``."""
        if plan.backend == ClipFolderBackend.name:
            return self._local.submit(plan)
        return self.executor.submit(plan, priority=priority, batch=batch)

    def close(self) -> None:
        """Release the executor's workers (a cluster's actors); the renderer keeps working locally."""
        self.executor.close()
        self.executor = self._local

    def _count(self, what: str) -> None:
        with self._locks_guard:
            self.stats[what] += 1

    # ------------------------------------------------------------------ takes

    def has_take(self, req: RenderRequest, take: int) -> bool:
        """True when take ``take`` of ``req`` is in the cache."""
        flac, meta = self._paths(self.plan(req.with_take(take)).key)
        return flac.is_file() and meta.is_file()

    def next_take(self, req: RenderRequest) -> int:
        """The lowest take number of ``req`` (ignoring ``req.take``) not yet in the cache."""
        for take in range(1, MAX_TAKES + 1):
            if not self.has_take(req, take):
                return take
        raise RenderError(f"{req.label()}: all {MAX_TAKES} takes are rendered already")

    def takes(self, req: RenderRequest) -> list[Clip]:
        """Every cached take of ``req``, in take order (stops at the first gap)."""
        out = []
        for take in range(1, MAX_TAKES + 1):
            clip = self._read_cached(self.plan(req.with_take(take)))
            if clip is None:
                break
            out.append(clip)
        return out

    def regenerate(self, req: RenderRequest) -> Clip:
        """Render a new take of ``req`` with a new seed, beside the takes already cached.

        Raises :class:`RenderError` for pre-rendered sources (demo or clips), whose audio
        does not change with the seed.
        """
        plan = self.plan(req)
        if plan.source not in ("model", "base_model"):
            raise RenderError(
                f"{req.checkpoint} plays pre-rendered {plan.source} clips, so a new take would sound the same; "
                "put the checkpoint's XTTS files in its model_dir to render new takes"
            )
        return self.render(req.with_take(self.next_take(req)))

    def render_many(
        self,
        reqs: Iterable[RenderRequest],
        *,
        progress: Progress | None = None,
        on_result: Callable[[RenderRequest, Clip | WorkbenchError], None] | None = None,
        priority: int = BATCH,
        cancel: threading.Event | None = None,
    ) -> list[Clip | WorkbenchError]:
        """Render each request; a failure is returned in its slot, not raised.

        ``progress(fraction, label)`` is called before each item (on a cluster: as items
        finish) and with 1.0 at the end; ``on_result(req, clip_or_error)`` after each item
        (on a cluster: in the order they finish). An unexpected exception in one item
        becomes a :class:`RenderError` for that item; the batch goes on. Setting
        ``cancel`` stops the batch: items not started fail with "cancelled", the ones
        being rendered finish (one clip per worker).
        """
        reqs = list(reqs)
        if self.executor.parallel:
            return self._render_parallel(reqs, progress, on_result, priority, cancel)
        out: list[Clip | WorkbenchError] = []
        for i, req in enumerate(reqs):
            if progress:
                progress(i / max(len(reqs), 1), req.label())
            result: Clip | WorkbenchError
            if cancel is not None and cancel.is_set():
                result = RenderError(f"{req.label()}: cancelled before it was rendered")
            else:
                result = self._guarded(req, partial(self.render, req, priority=priority))
            out.append(result)
            if on_result:
                on_result(req, result)
        if progress:
            progress(1.0, "done")
        return out

    @staticmethod
    def _guarded(req: RenderRequest, fn: Callable[[], _T]) -> _T | WorkbenchError:
        """``fn()``, or the error that stopped it (unexpected ones become a RenderError naming the item)."""
        try:
            return fn()
        except WorkbenchError as e:
            log.info("render failed: %s: %s", req.label(), e)
            return e
        except Exception as e:  # a bug or a library failure in one item must not stop the batch
            log.exception("render failed unexpectedly: %s", req.label())
            return RenderError(f"{req.label()}: unexpected {type(e).__name__}: {e}")

    def _render_parallel(self, reqs, progress, on_result, priority, cancel) -> list[Clip | WorkbenchError]:
        """render_many on a parallel executor: plan and check the cache here, submit the rest at once."""
        out: list[Clip | WorkbenchError | None] = [None] * len(reqs)
        finished = 0

        def settle(indices: list[int], result: Clip | WorkbenchError) -> None:
            nonlocal finished
            for i in indices:
                out[i] = result
                finished += 1
                if on_result:
                    on_result(reqs[i], result)
                if progress:
                    progress(finished / max(len(reqs), 1), reqs[i].label())

        # identifies this batch's plans in the executor's queue; an executor that sees the
        # event set hands out none of them any more (cancel within one clip per worker)
        batch = cancel if cancel is not None else threading.Event()
        waiting: dict = {}  # future -> (plan, indices)
        by_key: dict[str, list[int]] = {}
        for i, req in enumerate(reqs):
            plan = self._guarded(req, partial(self.plan, req))
            if isinstance(plan, WorkbenchError):
                settle([i], plan)
                continue
            hit = self._guarded(req, partial(self._read_cached, plan))
            if hit is not None:
                if isinstance(hit, Clip):
                    self._count("hits")
                settle([i], hit)
            elif plan.key in by_key:  # the same clip twice in one batch: render it once
                by_key[plan.key].append(i)
            else:
                by_key[plan.key] = [i]
                waiting[self._submit(plan, priority, batch)] = (plan, by_key[plan.key])
        pending = set(waiting)
        while pending:
            if cancel is not None and cancel.is_set():
                self.executor.cancel(batch)
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in done:
                plan, indices = waiting[fut]
                req = plan.request

                def finish(f=fut, p=plan) -> Clip:
                    clip = self.store(p, f.result())
                    self._count("renders")
                    return clip

                settle(indices, self._guarded(req, finish))
        if progress:
            progress(1.0, "done")
        return cast(list[Clip | WorkbenchError], out)  # every index was settled above


# ---------------------------------------------------------------------------- batches


def _pick(kind: str, wanted: str | Sequence[str] | None, available: Sequence[str]) -> list[str]:
    if wanted is None or wanted == "all" or (not isinstance(wanted, str) and list(wanted) == ["all"]):
        return list(available)
    names = [w.strip() for w in (wanted.split(",") if isinstance(wanted, str) else wanted) if w.strip()]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise RenderError(
            f"unknown {kind} {', '.join(map(repr, unknown))}; available: {', '.join(available) or '(none)'} (or all)"
        )
    if not names:
        raise RenderError(f"no {kind} given; name some ({', '.join(available)}) or use all")
    return list(dict.fromkeys(names))


def expand_matrix(
    catalog: Catalog,
    *,
    checkpoints: str | Sequence[str] | None = "all",
    references: str | Sequence[str] | None = "all",
    sentences: str | Sequence[str] | None = "all",
    enhancements: str | Sequence[str] | None = "none",
    takes: int = 1,
) -> list[RenderRequest]:
    """Every (checkpoint, reference, sentence, preset, take) combination, in catalog order.

    Each selector is ``"all"``, a comma-separated string or a list of ids. Unknown ids
    raise :class:`RenderError` listing the valid ones.
    """
    if not isinstance(takes, int) or not 1 <= takes <= MAX_TAKES:
        raise RenderError(f"takes must be between 1 and {MAX_TAKES}, got {takes}")
    cks = _pick("checkpoint", checkpoints, list(catalog.checkpoints))
    refs = _pick("reference", references, list(catalog.references))
    sents = _pick("sentence", sentences, list(catalog.sentences))
    presets = _pick("enhancement preset", enhancements, list(catalog.enhancements))
    return [
        RenderRequest(checkpoint=c, reference=r, sentence=s, enhancement=p, take=t)
        for c in cks
        for r in refs
        for s in sents
        for p in presets
        for t in range(1, takes + 1)
    ]


#: columns of the manifest CSV written by :func:`export_clips`
MANIFEST_COLUMNS = [
    "checkpoint",
    "reference",
    "sentence",
    "enhancement",
    "take",
    "status",
    "source",
    "file",
    "from_cache",
    "duration_s",
    "seed",
    "loudness_out_lufs",
    "model_hash",
    "key",
    "error",
]


def clip_filename(req: RenderRequest) -> str:
    """Readable relative path of a clip: ``<checkpoint>/<reference>/<sentence>.<preset>.take<n>.flac``."""
    what = req.sentence or "custom-" + hashlib.sha256((req.text or "").encode()).hexdigest()[:8]
    return f"{req.checkpoint}/{req.reference}/{what}.{req.enhancement}.take{req.take}.flac"


def manifest_row(req: RenderRequest, result: Clip | WorkbenchError, file: str = "") -> dict:
    """One manifest row (see :data:`MANIFEST_COLUMNS`) for a request and its clip or error."""
    row: dict[str, object] = dict.fromkeys(MANIFEST_COLUMNS, "")
    row.update(
        checkpoint=req.checkpoint,
        reference=req.reference,
        sentence=req.sentence or "",
        enhancement=req.enhancement,
        take=req.take,
    )
    if isinstance(result, Clip):
        prov = result.provenance
        row.update(
            status="ok",
            source=result.source,
            file=file,
            from_cache=result.from_cache,
            duration_s=prov.get("duration_s", ""),
            seed=prov.get("seed", ""),
            loudness_out_lufs=prov.get("loudness_out_lufs", ""),
            model_hash=prov.get("model_hash", prov.get("source_hash", "")),
            key=result.key,
        )
    else:
        row.update(status="failed", error=f"{type(result).__name__}: {result}")
    return row


def export_clips(
    reqs: Sequence[RenderRequest], results: Sequence[Clip | WorkbenchError], out_dir: Path
) -> tuple[Path, list[dict]]:
    """Copy rendered clips under ``out_dir`` with readable names and write ``manifest.csv``.

    Returns the manifest's path and its rows (one per request, failures included).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for req, result in zip(reqs, results, strict=True):
        rel = ""
        if isinstance(result, Clip):
            rel = clip_filename(req)
            dest = out_dir / rel
            with atomic_open(dest) as f, open(result.path, "rb") as src:
                shutil.copyfileobj(src, f)
        rows.append(manifest_row(req, result, rel))
    manifest = out_dir / "manifest.csv"
    with atomic_open(manifest, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return manifest, rows


def render_batch(
    renderer: Renderer,
    reqs: Sequence[RenderRequest],
    out_dir: Path | str,
    *,
    progress: Progress | None = None,
    on_result: Callable[[RenderRequest, Clip | WorkbenchError], None] | None = None,
) -> tuple[Path, list[dict]]:
    """Render ``reqs`` (resumable: cached items are file reads) and export them to ``out_dir``.

    Returns the manifest CSV's path and its rows; failures are rows with status ``failed``.
    """
    results = renderer.render_many(reqs, progress=progress, on_result=on_result)
    return export_clips(reqs, results, Path(out_dir))
