"""What to render (:class:`RenderRequest`) and everything resolved about it (:class:`RenderPlan`).

These two records are the whole contract between the renderer, the synthesis backends
(:mod:`workbench.synth`) and the executors that run plans in this process or on a
cluster: none of them needs to read another's fields. Both pickle, so a plan can
travel to another machine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Checkpoint, EnhancePreset, Reference


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

    def with_take(self, take: int) -> RenderRequest:
        """The same request with take number ``take``."""
        return RenderRequest(**{**self.to_dict(), "take": take})


@dataclass(frozen=True)
class RenderPlan:
    """A request resolved against the catalog: what runs, on what, and its content key.

    ``identity`` holds everything that determines the output samples (hashes of the
    model files, reference audio and enhancer weights, the text, every setting, the
    seed, the pipeline version); ``key`` is the sha256 of it. ``identity`` also becomes
    the head of the clip's provenance sidecar.
    """

    request: RenderRequest
    key: str  # content key (hex sha256 of ``identity``)
    backend: str  # name of the synthesis backend that makes the raw audio: xtts | clips
    source: str  # model | base_model | clips | demo
    checkpoint: Checkpoint
    reference: Reference
    preset: EnhancePreset
    text: str  # what is said (the sentence's text or the custom text)
    language: str  # XTTS language code
    seed: int  # seed of this take: inference.seed + take - 1
    device: str  # auto | cpu | cuda, as asked; the worker resolves it
    identity: dict[str, Any] = field(compare=False)  # what the key hashes
    source_file: Path | None = None  # pre-rendered clip file (clips and demo sources)
    reference_file: Path | None = None  # reference recording (None for built-in speakers)

    @property
    def model_hash(self) -> str | None:
        """Content hash of the checkpoint's model files (None for pre-rendered sources)."""
        return self.identity.get("model_hash")

    @property
    def label(self) -> str:
        return self.request.label()


def content_key(identity: dict[str, Any]) -> str:
    """Hex sha256 of ``identity`` as canonical JSON (paths as strings)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=json_default).encode()).hexdigest()


def json_default(o: Any) -> Any:
    """``json.dumps`` fallback: paths as strings."""
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))
