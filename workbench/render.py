"""Render clips through a content-addressed cache.

A :class:`RenderRequest` (checkpoint, reference, sentence, enhancement, take) maps to a
content key: a hash of the audio source (model files or pre-rendered clip), the
reference audio, the text, every setting, the seed and :data:`PIPELINE_VERSION`. The
result is a FLAC in the cache plus a JSON sidecar with provenance; a second request for
the same key is a file read.

Sources, in order: the checkpoint's XTTS model files, its ``clips_dir`` (rendered
elsewhere), its bundled ``demo_dir``. Enhancement and loudness normalisation are
applied on top of whichever source produced the audio.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import audio
from .catalog import (
    Catalog,
    Checkpoint,
    checkpoint_availability,
    reference_audio_path,
)
from .errors import AudioError, RenderError, WorkbenchError

log = logging.getLogger(__name__)

#: bump when the rendering pipeline changes in a way that changes output samples
PIPELINE_VERSION = "1"
#: sample rate of every clip in the cache (XTTS's native rate)
CLIP_SR = 24000

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class RenderRequest:
    """What to render. ``text`` overrides the sentence's text (custom text)."""

    checkpoint: str
    reference: str
    sentence: str | None = None  # sentence id from the catalog
    enhancement: str = "none"  # enhancement preset name
    take: int = 1  # take n uses seed + n - 1
    text: str | None = None  # custom text instead of a catalog sentence

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RenderRequest:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def label(self) -> str:
        what = self.sentence or "custom text"
        extra = "" if self.enhancement == "none" else f" +{self.enhancement}"
        take = "" if self.take == 1 else f" take {self.take}"
        return f"{self.checkpoint} · {self.reference} · {what}{extra}{take}"


@dataclass(frozen=True)
class Clip:
    """A rendered clip in the cache and where it came from."""

    path: Path  # FLAC, CLIP_SR Hz mono
    key: str  # content key (hex)
    request: RenderRequest
    source: str  # model | base_model | clips | demo
    provenance: dict = field(default_factory=dict, compare=False)  # sidecar content

    @property
    def is_demo(self) -> bool:
        return self.source == "demo"

    @property
    def duration(self) -> float:
        return float(self.provenance.get("duration_s", 0.0))

    def load(self) -> tuple[np.ndarray, int]:
        """``(y, sr)``: the clip's samples (mono float32) and rate."""
        return audio.load(self.path)


def _sha256_file(path: Path, _cache: dict = {}) -> str:  # noqa: B006 - deliberate memo
    st = path.stat()
    memo_key = (str(path), st.st_size, st.st_mtime_ns)
    if memo_key not in _cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _cache[memo_key] = h.hexdigest()
    return _cache[memo_key]


def model_files_hash(model_dir: Path) -> str:
    """sha256 over an XTTS folder's files that affect synthesis (names + contents)."""
    h = hashlib.sha256()
    for name in ("config.json", "model.pth", "vocab.json", "speakers_xtts.pth"):
        p = model_dir / name
        if p.is_file():
            h.update(name.encode())
            h.update(_sha256_file(p).encode())
    return h.hexdigest()


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


class Renderer:
    """Renders :class:`RenderRequest` s to cached :class:`Clip` s. Thread-safe.

    Parameters
    ----------
    catalog : the catalog requests refer to
    cache_dir : where clips live (default: ``catalog.settings.cache_dir``)
    device : ``auto`` | ``cpu`` | ``cuda`` for model backends
    """

    def __init__(self, catalog: Catalog, *, cache_dir: Path | None = None, device: str | None = None):
        self.catalog = catalog
        self.cache_dir = Path(cache_dir or catalog.settings.cache_dir)
        self.device = device or catalog.settings.device
        self._key_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

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

    def _clip_file(self, ck: Checkpoint, req: RenderRequest, source: str) -> Path:
        folder = ck.clips_dir if source == "clips" else ck.demo_dir
        if req.sentence is None:
            raise RenderError(
                f"{req.checkpoint} has no model files, only pre-rendered clips, so it cannot say custom text; "
                f"put an XTTS checkpoint in {ck.model_dir}"
            )
        for ext in audio.READ_EXTENSIONS:
            p = folder / req.reference / f"{req.sentence}{ext}"
            if p.is_file():
                return p
        raise RenderError(
            f"{req.checkpoint}: no clip for reference {req.reference!r} and sentence {req.sentence!r} "
            f"in {folder} (expected {folder / req.reference / (req.sentence + '.flac')})"
        )

    def plan(self, req: RenderRequest) -> dict:
        """Everything that determines the output samples, plus its content key.

        Raises :class:`RenderError` / :class:`CatalogError` for unknown ids or missing
        sources, before any heavy work.
        """
        ck = self.catalog.checkpoint(req.checkpoint)
        ref = self.catalog.reference(req.reference)
        preset = self.catalog.enhancement(req.enhancement)
        if req.take < 1 or req.take > 1000:
            raise RenderError(f"take must be between 1 and 1000, got {req.take}")
        text, language = self._text(req)
        avail = checkpoint_availability(ck)
        if not avail.ok:
            raise RenderError(f"checkpoint {ck.name} cannot render: {avail.reason}")
        plan: dict = {
            "pipeline": PIPELINE_VERSION,
            "checkpoint": ck.name,
            "source": avail.source,
            "reference": ref.id,
            "text": text,
            "language": language,
            "take": req.take,
            "preset": preset.model_dump(mode="json", exclude={"weights_dir"}),
        }
        if avail.source in ("clips", "demo"):
            src = self._clip_file(ck, req, avail.source)
            plan["source_file"] = str(src)
            plan["source_hash"] = _sha256_file(src)
        else:
            plan["model_hash"] = model_files_hash(ck.model_dir) if ck.model_dir else ck.base_model
            plan["inference"] = ck.inference.model_dump(mode="json")
            plan["seed"] = ck.inference.seed + req.take - 1
            ref_path = reference_audio_path(ref)
            plan["reference_hash"] = _sha256_file(ref_path) if ref_path else f"builtin:{ref.builtin_speaker}"
        keyed = {k: v for k, v in plan.items() if k != "source_file"}
        plan["key"] = hashlib.sha256(json.dumps(keyed, sort_keys=True, default=_json_default).encode()).hexdigest()
        return plan

    # ------------------------------------------------------------------ cache

    def _paths(self, key: str) -> tuple[Path, Path]:
        d = self.cache_dir / "clips" / key[:2]
        return d / f"{key}.flac", d / f"{key}.json"

    def cached(self, req: RenderRequest) -> Clip | None:
        """The cached clip for ``req`` if present and intact, else None."""
        plan = self.plan(req)
        return self._read_cached(req, plan)

    def _read_cached(self, req: RenderRequest, plan: dict) -> Clip | None:
        flac, meta = self._paths(plan["key"])
        if not (flac.is_file() and meta.is_file()):
            return None
        try:
            prov = json.loads(meta.read_text(encoding="utf-8"))
            if prov.get("audio_sha256") != _sha256_file(flac):
                raise ValueError("checksum mismatch")
        except (OSError, ValueError) as e:
            log.warning("cache entry %s is corrupt (%s); rendering again", plan["key"][:12], e)
            flac.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return None
        return Clip(path=flac, key=plan["key"], request=req, source=plan["source"], provenance=prov)

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._key_locks.setdefault(key, threading.Lock())

    # ------------------------------------------------------------------ rendering

    def render(self, req: RenderRequest) -> Clip:
        """Render ``req`` (or return it from the cache). Same key at once: work done once."""
        plan = self.plan(req)
        with self._lock_for(plan["key"]):
            hit = self._read_cached(req, plan)
            if hit is not None:
                return hit
            return self._render_fresh(req, plan)

    def _synthesize(self, req: RenderRequest, plan: dict) -> tuple[np.ndarray, int, dict]:
        """Raw audio from the plan's source: ``(y, sr, extra provenance)``."""
        if plan["source"] in ("clips", "demo"):
            y, sr = audio.load(plan["source_file"])
            return y, sr, {"source_file": Path(plan["source_file"]).name}
        from .synth import synthesize_for  # model backends load lazily (torch, TTS)

        return synthesize_for(self, req, plan)

    def _render_fresh(self, req: RenderRequest, plan: dict) -> Clip:
        from .enhance import apply_preset

        t0 = time.perf_counter()
        y, sr, extra = self._synthesize(req, plan)
        t1 = time.perf_counter()
        y = audio.validate(y, sr, name=req.label())
        if sr != CLIP_SR:
            y = audio.resample(y, orig_sr=sr, target_sr=CLIP_SR)
        preset = self.catalog.enhancement(req.enhancement)
        y, enh_info = apply_preset(y, CLIP_SR, preset, device=self.device)
        t2 = time.perf_counter()
        flac, meta = self._paths(plan["key"])
        audio.write(flac, y, CLIP_SR)
        prov = {
            **{k: v for k, v in plan.items() if k not in ("source_file",)},
            **extra,
            **enh_info,
            "request": req.to_dict(),
            "sample_rate": CLIP_SR,
            "duration_s": round(len(y) / CLIP_SR, 4),
            "timings_s": {"synthesis": round(t1 - t0, 4), "enhance": round(t2 - t1, 4)},
            "versions": _versions(),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "audio_sha256": _sha256_file(flac),
        }
        _write_json_atomic(meta, prov)
        return Clip(path=flac, key=plan["key"], request=req, source=plan["source"], provenance=prov)

    def render_many(
        self, reqs: Iterable[RenderRequest], *, progress: Progress | None = None
    ) -> list[Clip | WorkbenchError]:
        """Render each request; a failure is returned in its slot, not raised."""
        reqs = list(reqs)
        out: list[Clip | WorkbenchError] = []
        for i, req in enumerate(reqs):
            if progress:
                progress(i / max(len(reqs), 1), req.label())
            try:
                out.append(self.render(req))
            except (WorkbenchError, AudioError) as e:
                log.warning("render failed: %s: %s", req.label(), e)
                out.append(e)
        if progress:
            progress(1.0, "done")
        return out


def _write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True, default=_json_default)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("numpy", "soundfile", "pyloudnorm", "torch", "coqui-tts", "resemble-enhance"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    from . import __version__

    out["workbench"] = __version__
    return out
