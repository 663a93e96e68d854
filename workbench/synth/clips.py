"""Pre-rendered clips: a checkpoint's ``clips_dir`` (rendered elsewhere) or bundled ``demo_dir``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .. import audio
from ..catalog import Checkpoint
from ..errors import RenderError
from ..renderplan import RenderPlan
from .base import Synthesis


class ClipFolderBackend:
    """Reads clips laid out as ``<folder>/<reference>/<sentence>.<ext>``. Thread-safe, no state."""

    name: ClassVar[str] = "clips"

    @staticmethod
    def clip_file(ck: Checkpoint, source: str, reference: str, sentence: str | None) -> Path:
        """The clip file for (reference, sentence) in ``ck``'s ``clips_dir`` (``source`` clips) or ``demo_dir``.

        Raises :class:`RenderError` for custom text (nothing pre-rendered can say it) or
        a missing clip, naming the file expected.
        """
        folder = ck.clips_dir if source == "clips" else ck.demo_dir
        if sentence is None:
            raise RenderError(
                f"{ck.name} has no model files, only pre-rendered clips, so it cannot say custom text; "
                f"put an XTTS checkpoint in {ck.model_dir}"
            )
        if folder is None:  # the catalog only gives this source to checkpoints that have the folder
            raise RenderError(f"{ck.name} has no {source} folder; set clips_dir or demo_dir in the catalog")
        for ext in audio.READ_EXTENSIONS:
            p = folder / reference / f"{sentence}{ext}"
            if p.is_file():
                return p
        raise RenderError(
            f"{ck.name}: no clip for reference {reference!r} and sentence {sentence!r} "
            f"in {folder} (expected {folder / reference / (sentence + '.flac')})"
        )

    def synthesize(self, plan: RenderPlan) -> Synthesis:
        if plan.source_file is None:
            raise RenderError(f"{plan.label}: no pre-rendered clip file in the plan")
        y, sr = audio.load(plan.source_file)
        return Synthesis(y, sr, {"backend": plan.source, "source_file": Path(plan.source_file).name})
