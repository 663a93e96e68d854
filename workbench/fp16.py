"""Can a checkpoint's weights be stored in float16? Convert, render both, compare.

:func:`convert_checkpoint` writes a copy of an XTTS v2 checkpoint folder whose
``model.pth`` holds the model's floating-point tensors as float16 (half the bytes).
Coqui's loader copies them into the float32 model, so on the CPU inference runs in
float32 as before; on CUDA ``settings.fp16: true`` additionally runs it under float16
autocast.

:func:`fp16_check` registers the copy as a derived checkpoint (``<name>-fp16``, same
inference settings), renders the standard grid (every reference x sentence, preset
``none``) with both and a second take of the original, and compares each pair of clips:
sample-exact match and SNR of the difference, MCD and speaker similarity between them,
and whether the fp16 difference stays below the take-to-take variation of the original
(the MCD between its takes 1 and 2): a difference smaller than what re-rendering with
another seed does cannot be what the listeners notice.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import analysis
from .catalog import Catalog, Checkpoint, checkpoint_availability
from .errors import ModelUnavailable, RenderError
from .fsutil import atomic_open

#: top-level entries of model.pth that inference reads (the rest is training state)
KEPT_ENTRIES = ("model", "config")
#: columns of :attr:`Fp16Report.clips`
CLIP_COLUMNS = [
    "reference",
    "sentence",
    "match",
    "max_abs_diff",
    "snr_db",
    "mcd_db",
    "similarity",
    "take_mcd_db",
    "take_similarity",
    "below_take_variation",
]


@dataclass
class Conversion:
    """What :func:`convert_checkpoint` wrote."""

    out_dir: Path
    bytes_before: int  # model.pth of the original
    bytes_after: int  # model.pth of the copy
    tensors_cast: int  # floating-point tensors now stored as float16
    dropped: list[str]  # top-level entries of model.pth left out (training state)

    @property
    def size_ratio(self) -> float:
        return self.bytes_after / self.bytes_before


def convert_checkpoint(src: Path, out: Path) -> Conversion:
    """Write a float16 copy of the XTTS v2 checkpoint folder ``src`` to ``out``.

    ``model.pth``'s ``model`` state dict gets every floating-point tensor as float16 (a
    legacy ``config`` entry is kept; optimizer and other training state are dropped, since
    inference never reads them); every other file of the folder is copied as is.

    Raises
    ------
    ModelUnavailable
        ``src`` has no readable ``model.pth`` with a ``model`` entry.
    RenderError
        ``out`` is ``src`` or already holds a ``model.pth``.
    """
    import torch

    src, out = Path(src), Path(out)
    model = src / "model.pth"
    if out.resolve() == src.resolve():
        raise RenderError(f"{out}: the float16 copy needs its own folder; pass another --out")
    if (out / "model.pth").exists():
        raise RenderError(f"{out / 'model.pth'} exists already; remove it or pass another --out")
    try:
        ckpt = torch.load(model, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelUnavailable(f"{model}: cannot be read ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise ModelUnavailable(f"{model}: expected a dict with a 'model' state dict (an XTTS checkpoint)")
    cast = 0
    state = {}
    for k, v in ckpt["model"].items():
        if torch.is_tensor(v) and v.is_floating_point() and v.dtype != torch.float16:
            state[k] = v.half()
            cast += 1
        else:
            state[k] = v
    kept = {k: v for k, v in ckpt.items() if k in KEPT_ENTRIES}
    kept["model"] = state
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name != "model.pth":
            shutil.copy2(f, out / f.name)
    with atomic_open(out / "model.pth") as fh:
        torch.save(kept, fh)
    return Conversion(
        out_dir=out,
        bytes_before=model.stat().st_size,
        bytes_after=(out / "model.pth").stat().st_size,
        tensors_cast=cast,
        dropped=sorted(k for k in ckpt if k not in KEPT_ENTRIES),
    )


def derived_checkpoint(ck: Checkpoint, model_dir: Path) -> Checkpoint:
    """The fp16 copy as a checkpoint of its own: ``<name>-fp16``, same inference settings."""
    return Checkpoint(
        name=f"{ck.name}-fp16",
        backend="xtts",
        model_dir=Path(model_dir),
        notes=f"{ck.name} with its weights stored in float16",
        inference=ck.inference,
    )


def with_checkpoint(cat: Catalog, ck: Checkpoint) -> Catalog:
    """A copy of ``cat`` that also names ``ck`` (the file is not changed)."""
    return dataclasses.replace(cat, checkpoints={**cat.checkpoints, ck.name: ck})


def _model_dir(ck: Checkpoint) -> Path:
    """``ck``'s model folder; raises :class:`ModelUnavailable` when it has none."""
    if ck.model_dir is None:
        raise ModelUnavailable(f"checkpoint {ck.name}: no model_dir, so there are no weights to convert to fp16")
    return ck.model_dir


def catalog_entry(ck: Checkpoint, catalog_dir: Path) -> str:
    """YAML lines for ``ck`` under ``checkpoints:`` (model_dir relative to the catalog when inside it)."""
    model_dir = _model_dir(ck).resolve()
    try:
        where = model_dir.relative_to(Path(catalog_dir).resolve())
    except ValueError:
        where = model_dir
    inf = ck.inference.model_dump(mode="json")
    lines = [
        f"  {ck.name}:",
        "    backend: xtts",
        f"    model_dir: {where}",
        f"    notes: {ck.notes}",
        "    inference:",
    ]
    lines += [f"      {k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in inf.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- comparing


def compare_pair(original, fp16, second_take, *, sr: int) -> dict:
    """Compare one clip of the original with its fp16 render and the original's second take.

    Parameters
    ----------
    original, fp16, second_take : np.ndarray, shape ``(n,)``: take 1 of the original, take 1
        of the fp16 copy, take 2 of the original, all at ``sr`` Hz

    Returns
    -------
    dict
        ``match`` (identical / equal within tolerance / different), ``max_abs_diff``,
        ``snr_db`` (original against the difference), ``mcd_db`` and ``similarity``
        (speaker-embedding cosine) between original and fp16, ``take_mcd_db`` and
        ``take_similarity`` between the original's two takes, and
        ``below_take_variation``: the fp16 clip is closer to the original than its second
        take is (MCD strictly lower, or the clips identical / within tolerance).
    """
    m = analysis.match_verdict(original, fp16, sr=sr)
    a = analysis.analyse(original, sr=sr)
    b = analysis.analyse(fp16, sr=sr)
    t = analysis.analyse(second_take, sr=sr)
    mcd = 0.0 if m.verdict == "identical" else analysis.clip_mcd(a, b)
    take_mcd = analysis.clip_mcd(a, t)
    assert a.embedding is not None and b.embedding is not None and t.embedding is not None  # analyse embeds by default
    return {
        "match": m.verdict,
        "max_abs_diff": m.max_abs_diff,
        "snr_db": m.snr_db,
        "mcd_db": mcd,
        "similarity": analysis.cosine_similarity(a.embedding, b.embedding),
        "take_mcd_db": take_mcd,
        "take_similarity": analysis.cosine_similarity(a.embedding, t.embedding),
        "below_take_variation": m.verdict != "different" or mcd < take_mcd,
    }


@dataclass
class Fp16Report:
    """Outcome of :func:`fp16_check`."""

    checkpoint: str
    derived: Checkpoint
    conversion: Conversion
    clips: pd.DataFrame  # one row per reference x sentence, columns CLIP_COLUMNS
    failures: list[str]  # clips that could not be rendered

    @property
    def verdict(self) -> str:
        """One sentence for the whole grid."""
        n = len(self.clips)
        if n == 0:
            return "no clip could be compared"
        same = int((self.clips["match"] != "different").sum())
        below = int(self.clips["below_take_variation"].sum())
        size = f"model.pth {self.conversion.size_ratio:.2f}x the size"
        if same == n:
            return f"fp16 is safe here: {size}, every clip identical or within tolerance ({n} clips)"
        if below == n:
            return (
                f"fp16 is safe here: {size}; {n - same} of {n} clips differ, but every difference is smaller "
                "than between two takes of the original"
            )
        return (
            f"listen before switching: {size}; {n - below} of {n} clips differ from the original more than "
            "its own second take does"
        )


Progress = Callable[[float, str], None]


def fp16_check(
    renderer_factory,
    catalog: Catalog,
    name: str,
    out: Path,
    *,
    references: str | list[str] = "all",
    sentences: str | list[str] = "all",
    progress: Progress | None = None,
) -> Fp16Report:
    """Convert checkpoint ``name`` to float16 under ``out`` and compare both on the standard grid.

    ``renderer_factory(catalog)`` returns a :class:`~workbench.render.Renderer` for a
    catalog (so the caller picks the device and cache). The grid is ``references`` x
    ``sentences`` (default: all of the catalog) with preset ``none``: take 1 of both
    checkpoints and take 2 of the original, rendered one checkpoint after the other (so
    each model loads once).

    Raises
    ------
    ModelUnavailable
        ``name`` has no model files (demo or pre-rendered clips only).
    """
    from .render import CLIP_SR, expand_matrix

    ck = catalog.checkpoint(name)
    avail = checkpoint_availability(ck)
    if avail.source != "model":
        raise ModelUnavailable(
            f"checkpoint {name}: fp16 needs its XTTS model files, but it renders from {avail.source} ({avail.reason})"
        )
    grid = expand_matrix(catalog, checkpoints=name, references=references, sentences=sentences, takes=2)
    conv = convert_checkpoint(_model_dir(ck), out)
    derived = derived_checkpoint(ck, conv.out_dir)
    cat = with_checkpoint(catalog, derived)
    reqs = [*grid, *expand_matrix(cat, checkpoints=derived.name, references=references, sentences=sentences)]
    results = renderer_factory(cat).render_many(
        reqs, progress=lambda frac, label: progress(frac, label) if progress else None
    )
    clips, failures = {}, []
    for req, res in zip(reqs, results, strict=True):
        if isinstance(res, Exception):
            failures.append(f"{req.label()}: {res}")
            continue
        y, sr = res.load()
        if sr != CLIP_SR:
            raise RenderError(f"{res.path}: expected {CLIP_SR} Hz, got {sr}")
        clips[(req.checkpoint, req.reference, req.sentence, req.take)] = y
    rows = []
    for req in grid:
        if req.take != 1:
            continue
        cell = [(name, 1), (derived.name, 1), (name, 2)]
        ys = [clips.get((c, req.reference, req.sentence, t)) for c, t in cell]
        if all(y is not None for y in ys):
            rows.append({"reference": req.reference, "sentence": req.sentence, **compare_pair(*ys, sr=CLIP_SR)})
    return Fp16Report(name, derived, conv, pd.DataFrame(rows, columns=CLIP_COLUMNS), failures)


def format_report(report: Fp16Report) -> str:
    """The report as text: conversion, one line per clip, the overall verdict."""
    c = report.conversion
    lines = [
        f"{report.derived.name}: {c.out_dir}",
        f"  model.pth {c.bytes_before / 2**20:.1f} MiB -> {c.bytes_after / 2**20:.1f} MiB "
        f"(size ratio {c.size_ratio:.3f}); {c.tensors_cast} tensors stored as float16"
        + (f"; dropped {', '.join(c.dropped)} (training state)" if c.dropped else ""),
        "",
        f"{'reference':<12} {'sentence':<12} {'match':<22} {'SNR dB':>7} {'MCD dB':>7} {'sim':>5}"
        f" {'takes MCD':>9} {'takes sim':>9}  below take variation",
    ]
    for r in report.clips.itertuples():
        snr = "inf" if math.isinf(r.snr_db) else f"{r.snr_db:.1f}"
        lines.append(
            f"{r.reference:<12} {r.sentence:<12} {r.match:<22} {snr:>7} {r.mcd_db:>7.2f} {r.similarity:>5.3f}"
            f" {r.take_mcd_db:>9.2f} {r.take_similarity:>9.3f}  {'yes' if r.below_take_variation else 'NO'}"
        )
    for f in report.failures:
        lines.append(f"failed: {f}")
    lines += ["", f"verdict: {report.verdict}"]
    return "\n".join(lines) + "\n"


def register(catalog_path: Path, ck: Checkpoint) -> Path:
    """Add ``ck`` to the catalog's overlay of added checkpoints (``<stem>.added.yaml``); returns its path.

    The app watches that file, so the checkpoint shows up without a restart; the
    catalog file itself is not touched. The new overlay is validated before it replaces
    the old one. Raises :class:`~workbench.errors.CatalogError` when the name is taken.
    """
    from .catalog import load_catalog
    from .catalog_live import overlay_folder, write_overlay_entry
    from .errors import CatalogError

    cat = load_catalog(catalog_path)
    if ck.name in cat.checkpoints:
        raise CatalogError(f"{cat.path.name}: checkpoint {ck.name} exists already; remove it first")
    entry = {
        "backend": "xtts",
        "model_dir": overlay_folder(cat, _model_dir(ck)),
        "notes": ck.notes,
        "inference": ck.inference.model_dump(mode="json"),
    }
    return write_overlay_entry(cat, ck.name, entry)
