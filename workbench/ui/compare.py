"""Compare tab: render 2-4 checkpoints for one reference and sentence, listen, diff and measure.

Wiring only: rendering is :mod:`workbench.render`, measurements :mod:`workbench.analysis`,
figures :mod:`workbench.plots`. Every handler is a module-level function that takes the
:class:`AppContext` first and calls :func:`require_admin` before anything else; the
initial page carries no catalog names (choices arrive through ``demo.load`` for admins).

A comparison can be linked: ``?tab=compare&reference=..&sentence=..&checkpoints=a,b
&preset=..&take=n`` (see :func:`compare_link`) reopens and renders it on page load.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import gradio as gr
import numpy as np
import pandas as pd

from .. import analysis, audio, plots
from ..catalog import Catalog, reference_audio_path, reference_availability
from ..errors import RenderError, WorkbenchError
from ..render import CLIP_SR, Clip, RenderRequest
from .common import AppContext, get_renderer, require_admin, role_of, show_error

log = logging.getLogger(__name__)

MIN_CLIPS, MAX_CLIPS = 2, 4
ALIGN_CHOICES = [("raw", "raw"), ("leading silence trimmed", "trimmed"), ("DTW-aligned to the first checkpoint", "dtw")]
#: files written for downloads are removed after this long (s); gradio keeps its own copies
OUTPUT_TTL_S = 3600
#: analysed clips kept in memory (switching the alignment does not re-analyse)
ANALYSIS_CACHE_SIZE = 32

#: display names (with units) of the metric columns
METRIC_LABELS = {
    "duration_s": "duration (s)",
    "speaking_rate_cps": "rate (chars/s)",
    "loudness_lufs": "loudness (LUFS)",
    "peak_dbfs": "peak (dBFS)",
    "silence_ratio": "silence (share)",
    "f0_median_hz": "F0 median (Hz)",
    "f0_range_st": "F0 range 5-95% (st)",
    "f0_std_st": "F0 SD (st)",
    "voiced_ratio": "voiced (share)",
    "centroid_hz": "centroid (Hz)",
    "tilt_db_per_oct": "tilt (dB/oct)",
    "speaker_similarity": "speaker sim. to ref",
    "mcd_db": "MCD vs first (dB)",
}
DELTA_LABELS = {
    **METRIC_LABELS,
    "speaker_similarity_between": "speaker sim. between the two",
    "mcd_db_between": "MCD between the two (dB)",
}


# ---------------------------------------------------------------------------- selection and links


@dataclass(frozen=True)
class Selection:
    """What to compare: one reference, one text, 2-4 checkpoints with a preset each, one take."""

    reference: str
    sentence: str | None  # catalog sentence id, or None with custom text
    text: str | None  # custom text instead of the sentence
    checkpoints: tuple[str, ...]
    presets: tuple[str, ...]  # one per checkpoint
    take: int = 1

    def requests(self) -> list[RenderRequest]:
        return [
            RenderRequest(
                checkpoint=ck,
                reference=self.reference,
                sentence=self.sentence,
                enhancement=p,
                take=self.take,
                text=self.text,
            )
            for ck, p in zip(self.checkpoints, self.presets, strict=True)
        ]

    def labels(self) -> list[str]:
        """Display label per checkpoint: its name, plus the preset when presets differ."""
        if len(set(self.presets)) == 1:
            return list(self.checkpoints)
        return [ck if p == "none" else f"{ck} +{p}" for ck, p in zip(self.checkpoints, self.presets, strict=True)]

    def link(self) -> str:
        preset: str | list[str] = self.presets[0] if len(set(self.presets)) == 1 else list(self.presets)
        return compare_link(
            self.reference, self.sentence, list(self.checkpoints), preset=preset, take=self.take, text=self.text
        )

    def slug(self) -> str:
        what = self.sentence or "custom"
        return _safe(f"{self.reference}_{what}_{'-'.join(self.checkpoints)}")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)[:120]


def compare_link(
    reference: str,
    sentence: str | None,
    checkpoints: Sequence[str],
    preset: str | Sequence[str] = "none",
    take: int = 1,
    *,
    text: str | None = None,
) -> str:
    """Relative URL that reopens a comparison in the Compare tab.

    ``preset`` is one name for all checkpoints, or one per checkpoint (written comma
    separated); ``text`` (custom text) is added only when given.

    >>> compare_link("surya_1", "pangram", ["feb1", "apr24"])
    '?tab=compare&reference=surya_1&sentence=pangram&checkpoints=feb1%2Capr24&preset=none&take=1'
    """
    params: dict[str, str] = {"tab": "compare", "reference": reference}
    if sentence:
        params["sentence"] = sentence
    params["checkpoints"] = ",".join(checkpoints)
    params["preset"] = preset if isinstance(preset, str) else ",".join(preset)
    params["take"] = str(int(take))
    if text:
        params["text"] = text
    return "?" + urlencode(params)


def parse_link(query: Mapping[str, str], catalog: Catalog) -> tuple[dict, list[str]]:
    """Read a Compare link's query parameters against the catalog.

    Returns
    -------
    values : dict
        The parameters that name known entries: ``reference``, ``sentence``, ``text``,
        ``checkpoints`` (list), ``presets`` (list: one for all, or one per checkpoint),
        ``take`` (int).
    problems : list of str
        One message per parameter that was ignored, naming the value and what exists.
    """
    values: dict = {}
    problems: list[str] = []

    def known(kind: str, value: str, table: Mapping) -> bool:
        if value in table:
            return True
        problems.append(f"link: {kind} {value!r} is not in the catalog (known: {', '.join(table) or 'none'})")
        return False

    ref = (query.get("reference") or "").strip()
    if ref and known("reference", ref, catalog.references):
        values["reference"] = ref
    sent = (query.get("sentence") or "").strip()
    if sent and known("sentence", sent, catalog.sentences):
        values["sentence"] = sent
    text = (query.get("text") or "").strip()
    if text:
        values["text"] = text[:2000]
    cks = [c.strip() for c in (query.get("checkpoints") or "").split(",") if c.strip()]
    cks = [c for c in dict.fromkeys(cks) if known("checkpoint", c, catalog.checkpoints)]
    if len(cks) > MAX_CLIPS:
        problems.append(f"link: {len(cks)} checkpoints given; the first {MAX_CLIPS} are used")
        cks = cks[:MAX_CLIPS]
    if cks:
        values["checkpoints"] = cks
    presets = [p.strip() for p in (query.get("preset") or "").split(",") if p.strip()]
    if presets and all(known("preset", p, catalog.enhancements) for p in presets):
        if len(presets) == 1 or len(presets) == len(cks):
            values["presets"] = presets
        else:
            problems.append(f"link: {len(presets)} presets for {len(cks)} checkpoints; give one, or one per checkpoint")
    take = (query.get("take") or "").strip()
    if take:
        if take.isdigit() and 1 <= int(take) <= 1000:
            values["take"] = int(take)
        else:
            problems.append(f"link: take must be a whole number from 1 to 1000, got {take!r}")
    return values, problems


def _take(take: float | int | str | None) -> int:
    try:
        value = float(1 if take is None or take == "" else take)
    except (TypeError, ValueError):
        value = math.nan
    if not (value.is_integer() and 1 <= value <= 1000):
        raise RenderError(f"take must be a whole number from 1 to 1000, got {take!r}")
    return int(value)


def _what_to_say(
    catalog: Catalog, reference: str | None, sentence: str | None, custom_text: str | None
) -> tuple[str, str | None, str | None]:
    """Validated ``(reference, sentence, text)``: custom text wins over the sentence."""
    if not reference:
        raise RenderError("pick a reference clip")
    catalog.reference(reference)
    text = (custom_text or "").strip() or None
    if text is not None:
        if len(text) > 2000:
            raise RenderError(f"custom text has {len(text)} characters; the limit is 2000")
        return reference, None, text
    if not sentence:
        raise RenderError("pick a sentence or type custom text")
    catalog.sentence(sentence)
    return reference, sentence, None


def make_selection(
    catalog: Catalog,
    reference: str | None,
    sentence: str | None,
    custom_text: str | None,
    checkpoints: Sequence[str] | None,
    preset: str | None,
    side_presets: Sequence[str | None] | None = None,
    take: float | int | None = 1,
) -> Selection:
    """Validate the widget values into a :class:`Selection`.

    ``side_presets`` (one per checkpoint slot) overrides ``preset`` when given.
    Raises :class:`RenderError` / :class:`CatalogError` naming what is missing or unknown.
    """
    reference, sentence, text = _what_to_say(catalog, reference, sentence, custom_text)
    cks = list(dict.fromkeys(checkpoints or []))
    if not MIN_CLIPS <= len(cks) <= MAX_CLIPS:
        raise RenderError(f"pick {MIN_CLIPS} to {MAX_CLIPS} checkpoints to compare; {len(cks)} picked")
    for ck in cks:
        catalog.checkpoint(ck)
    default = preset or "none"
    presets = [p or default for p in list(side_presets or [])[: len(cks)]] if side_presets is not None else []
    presets += [default] * (len(cks) - len(presets))
    for p in presets:
        catalog.enhancement(p)
    return Selection(reference, sentence, text, tuple(cks), tuple(presets), _take(take))


# ---------------------------------------------------------------------------- provenance text


def clip_caption(clip: Clip) -> str:
    """Markdown under a player: demo badge or model hash, seed, settings, timings."""
    p = clip.provenance or {}
    parts = []
    if clip.is_demo:
        parts.append("**DEMO** bundled stand-in, not model output")
        if p.get("source_hash"):
            parts.append(f"source `{p['source_hash'][:12]}`")
    elif clip.source == "clips":
        parts.append("pre-rendered clip")
        if p.get("source_hash"):
            parts.append(f"source `{p['source_hash'][:12]}`")
    else:
        model = str(p.get("model_hash", "?"))
        parts.append(f"model `{model[:12]}`")
        if "seed" in p:
            parts.append(f"seed {p['seed']}")
        inf = p.get("inference") or {}
        keys = ("temperature", "top_p", "top_k", "repetition_penalty", "length_penalty", "speed")
        settings = ", ".join(f"{k}={inf[k]}" for k in keys if k in inf)
        if settings:
            parts.append(settings)
    preset = p.get("enhancement") or clip.request.enhancement
    parts.append(f"preset {preset}")
    if p.get("loudness_out_lufs") is not None:
        parts.append(f"{p['loudness_out_lufs']} LUFS")
    synth = (p.get("timings_s") or {}).get("synthesis")
    if synth is not None and not clip.is_demo:
        parts.append(f"rendered in {synth:.1f} s")
    parts.append(f"key `{clip.key[:10]}`")
    return " · ".join(parts)


def player_label(clip: Clip) -> str:
    r = clip.request
    return f"{r.checkpoint} · {r.enhancement} · take {r.take}" + (" · DEMO" if clip.is_demo else "")


# ---------------------------------------------------------------------------- analysis with a small memo


class _AnalysisCache:
    """LRU of ClipAnalysis keyed by (content id, text): re-comparing does not re-measure."""

    def __init__(self, size: int = ANALYSIS_CACHE_SIZE):
        self.size = size
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, compute: Callable[[], analysis.ClipAnalysis]) -> analysis.ClipAnalysis:
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        value = compute()
        with self._lock:
            self._d[key] = value
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return value


def _cache(ctx: AppContext) -> _AnalysisCache:
    return ctx.extras.setdefault("compare_analyses", _AnalysisCache())


def _output_dir(ctx: AppContext) -> Path:
    """A fresh folder for one comparison's downloads; folders older than an hour are removed."""
    root = ctx.extras.get("compare_outputs")
    if root is None:
        root = ctx.extras.setdefault("compare_outputs", tempfile.TemporaryDirectory(prefix="workbench-compare-"))
    base = Path(root.name)
    now = time.time()
    for old in base.iterdir():
        try:
            if now - old.stat().st_mtime > OUTPUT_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(dir=base))


@dataclass
class Measured:
    """One clip on screen: its label, samples (CLIP_SR), analysis and where it came from."""

    label: str
    y: np.ndarray
    analysis: analysis.ClipAnalysis
    clip: Clip | None  # None for the reference recording


def _measure_reference(ctx: AppContext, ref_id: str) -> Measured | None:
    ref = ctx.catalog.reference(ref_id)
    path = reference_audio_path(ref)
    if path is None:  # an XTTS built-in speaker has no recording to show
        return None
    y, _ = audio.load(path, sr=CLIP_SR)
    st = path.stat()
    an = _cache(ctx).get(("ref", str(path), st.st_size, st.st_mtime_ns), lambda: analysis.analyse(y, sr=CLIP_SR))
    return Measured(f"{ref_id} (reference)", y, an, None)


def _measure_clip(ctx: AppContext, clip: Clip, label: str, text: str | None) -> Measured:
    y, sr = clip.load()
    if sr != CLIP_SR:
        y = audio.resample(y, orig_sr=sr, target_sr=CLIP_SR)
    an = _cache(ctx).get((clip.key, text), lambda: analysis.analyse(y, sr=CLIP_SR, text=text))
    return Measured(label, y, an, clip)


def _text_of(ctx: AppContext, sel: Selection) -> str:
    return sel.text if sel.text else ctx.catalog.sentence(sel.sentence).text


# ---------------------------------------------------------------------------- the comparison


@dataclass
class Comparison:
    """Everything the Compare tab shows for one selection."""

    selection: Selection
    reference: Measured | None
    clips: list[Measured]
    failures: list[str]
    align_mode: str
    metrics: pd.DataFrame
    pairwise: pd.DataFrame
    verdict: analysis.MatchResult | None
    verdict_aligned: analysis.MatchResult | None
    figures: dict[str, Path]  # name -> PNG
    files: list[Path]  # PNGs and CSVs for download


def _progress_fn(progress) -> Callable[[float, str], None]:
    def report(frac: float, label: str) -> None:
        if progress is not None:
            progress(frac, desc=label)

    return report


def run_comparison(ctx: AppContext, sel: Selection, *, align_mode: str = "trimmed", progress=None) -> Comparison:
    """Render, load, measure and draw a selection. Raises WorkbenchError when nothing renders."""
    report = _progress_fn(progress)
    renderer = get_renderer(ctx)
    results = renderer.render_many(sel.requests(), progress=lambda f, label: report(0.6 * f, f"rendering {label}"))
    labels = sel.labels()
    text = _text_of(ctx, sel)
    clips: list[Measured] = []
    failures: list[str] = []
    for label, res in zip(labels, results, strict=True):
        if isinstance(res, Exception):
            failures.append(f"{label}: {res}")
            continue
        report(0.6 + 0.2 * len(clips) / len(labels), f"measuring {label}")
        clips.append(_measure_clip(ctx, res, label, text))
    if not clips:
        raise RenderError("nothing rendered:\n" + "\n".join(failures))
    reference = _measure_reference(ctx, sel.reference)
    report(0.8, "comparing")
    shown = ([reference] if reference else []) + clips
    an = {m.label: m.analysis for m in shown}
    metrics = analysis.metrics_table(an, reference=reference.label if reference else None, anchor=clips[0].label)
    pairwise = analysis.pairwise_table({m.label: m.y for m in clips}, {m.label: m.analysis for m in clips}, sr=CLIP_SR)
    verdict = verdict_aligned = None
    if len(clips) >= 2:
        verdict = analysis.match_verdict(clips[0].y, clips[1].y, sr=CLIP_SR)
        if verdict.verdict == "different":
            verdict_aligned = analysis.match_verdict(clips[0].y, clips[1].y, sr=CLIP_SR, align=True)
    report(0.85, "drawing")
    out = _output_dir(ctx)
    figures = _draw(shown, clips, align_mode, verdict, verdict_aligned, out, sel.slug())
    files = list(figures.values())
    metrics_csv = out / f"{sel.slug()}_metrics.csv"
    metrics.rename_axis("clip").to_csv(metrics_csv)
    pairwise_csv = out / f"{sel.slug()}_pairwise.csv"
    pairwise.to_csv(pairwise_csv, index=False)
    files += [metrics_csv, pairwise_csv]
    report(1.0, "done")
    return Comparison(
        sel, reference, clips, failures, align_mode, metrics, pairwise, verdict, verdict_aligned, figures, files
    )


def _draw(
    shown: list[Measured],
    clips: list[Measured],
    align_mode: str,
    verdict: analysis.MatchResult | None,
    verdict_aligned: analysis.MatchResult | None,
    out: Path,
    slug: str,
) -> dict[str, Path]:
    has_ref = len(shown) > len(clips)
    anchor = 1 if has_ref else 0
    maps = analysis.align([m.analysis for m in shown], mode=align_mode, anchor=anchor)
    labels = [m.label for m in shown]
    colors = plots.colors_for(len(shown), reference_first=has_ref)
    mode_text = dict((v, k) for k, v in ALIGN_CHOICES)[align_mode]
    figs = {
        "overlay": plots.waveform_overlay(
            [m.y for m in shown],
            sr=CLIP_SR,
            labels=labels,
            time_maps=maps,
            colors=colors,
            title=f"Waveforms, {mode_text}",
        ),
        "spectrograms": plots.spectrograms(
            [m.analysis.mel_db for m in shown],
            sr=CLIP_SR,
            hop_length=shown[0].analysis.hop_length,
            labels=labels,
            time_offsets=[float(t.dst_s[0] - t.src_s[0]) for t in maps] if align_mode == "trimmed" else None,
        ),
        "pitch": plots.pitch_figure([m.analysis.f0 for m in shown], labels=labels, time_maps=maps, colors=colors),
        "energy": plots.energy_plot(
            [(m.analysis.energy_times, m.analysis.energy_db) for m in shown],
            labels=labels,
            time_maps=maps,
            colors=colors,
        ),
    }
    figs["spectrograms"].suptitle("Log-mel spectrograms (one colour scale)")
    figs["pitch"].suptitle(f"Pitch (F0), {mode_text}; bars: voiced regions")
    figs["energy"].suptitle(f"Energy (RMS level), {mode_text}")
    if verdict is not None:
        use = verdict_aligned if verdict_aligned is not None and verdict_aligned.verdict != "different" else verdict
        figs["difference"] = plots.difference_plot(
            clips[0].y, clips[1].y, sr=CLIP_SR, labels=(clips[0].label, clips[1].label), match=use
        )
    return {name: plots.save_png(fig, out / f"{slug}_{name}.png") for name, fig in figs.items()}


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–" if v is None or math.isnan(v) else ("∞" if v > 0 else "-∞")
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def metrics_for_display(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics table turned for reading: one row per metric (with units), one column per clip."""
    df = metrics.rename(columns=METRIC_LABELS).T.astype(float).round(3)
    df.columns = [str(c) for c in df.columns]
    return df.rename_axis("metric").reset_index()


def verdict_markdown(c: Comparison) -> str:
    if c.verdict is None:
        return "Exact-match check needs two rendered clips."
    a, b = c.clips[0].label, c.clips[1].label
    lines = [f"**{a} vs {b}: {c.verdict.describe()}**"]
    if c.verdict_aligned is not None and c.verdict_aligned.verdict != "different":
        lines.append(f"After undoing a delay: **{c.verdict_aligned.describe()}**")
    lines.append(
        f"<span class='wb-muted'>identical = every sample equal; equal within tolerance = no sample differs by "
        f"more than {c.verdict.atol:g} (-60 dBFS)</span>"
    )
    return "  \n".join(lines)


def status_markdown(c: Comparison) -> str:
    sel = c.selection
    what = f"sentence `{sel.sentence}`" if sel.sentence else "custom text"
    lines = [
        f"Compared {len(c.clips)} clip(s) of reference `{sel.reference}`, {what}, take {sel.take}. "
        f"Link to this comparison: [{sel.link()}]({sel.link()})"
    ]
    if c.failures:
        lines += ["", "**Not rendered:**"] + [f"- {f}" for f in c.failures]
    if any(m.clip is not None and m.clip.is_demo for m in c.clips):
        lines.append("")
        lines.append("Clips marked **DEMO** are bundled stand-ins, not output of the checkpoints' models.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- enhancement diff


@dataclass
class EnhancementDiff:
    """One clip rendered without and with a preset, measured and drawn."""

    plain: Measured
    enhanced: Measured
    deltas: pd.DataFrame  # metric -> before, after, delta
    mcd_db: float
    figure: Path
    files: list[Path]


def run_enhancement_diff(
    ctx: AppContext,
    reference: str | None,
    sentence: str | None,
    custom_text: str | None,
    checkpoint: str | None,
    preset: str | None,
    take: float | int | None = 1,
    *,
    progress=None,
) -> EnhancementDiff:
    """Render ``checkpoint`` with preset ``none`` and with ``preset``; compare the two."""
    report = _progress_fn(progress)
    if not checkpoint:
        raise RenderError("pick the checkpoint whose clip to enhance")
    if not preset or preset == "none":
        raise RenderError("pick a preset other than 'none' to compare against the untouched clip")
    reference, sentence, text = _what_to_say(ctx.catalog, reference, sentence, custom_text)
    ctx.catalog.checkpoint(checkpoint)
    ctx.catalog.enhancement(preset)
    plain_req, enh_req = [
        RenderRequest(checkpoint, reference, sentence, p, _take(take), text) for p in ("none", preset)
    ]
    results = get_renderer(ctx).render_many(
        [plain_req, enh_req], progress=lambda f, label: report(0.7 * f, f"rendering {label}")
    )
    for r in results:
        if isinstance(r, Exception):
            raise r
    text = text or ctx.catalog.sentence(sentence).text
    report(0.75, "measuring")
    plain = _measure_clip(ctx, results[0], f"{checkpoint} · none", text)
    enhanced = _measure_clip(ctx, results[1], f"{checkpoint} · {preset}", text)
    deltas = analysis.metric_deltas(plain.analysis.metrics, enhanced.analysis.metrics)
    if plain.analysis.embedding is not None and enhanced.analysis.embedding is not None:
        sim = analysis.cosine_similarity(plain.analysis.embedding, enhanced.analysis.embedding)
    else:
        sim = math.nan
    mcd_db = analysis.clip_mcd(plain.analysis, enhanced.analysis)
    report(0.9, "drawing")
    out = _output_dir(ctx)
    slug = _safe(f"{reference}_{sentence or 'custom'}_{checkpoint}_{preset}")
    fig = plots.enhancement_diff_plot(plain.y, enhanced.y, sr=CLIP_SR, labels=("none", preset))
    png = plots.save_png(fig, out / f"{slug}_enhancement.png")
    csv = out / f"{slug}_enhancement.csv"
    table = deltas.copy()
    table.loc["speaker_similarity_between"] = [math.nan, sim, math.nan]
    table.loc["mcd_db_between"] = [math.nan, mcd_db, math.nan]
    table.rename_axis("metric").to_csv(csv)
    report(1.0, "done")
    return EnhancementDiff(plain, enhanced, table, mcd_db, png, [png, csv])


# ---------------------------------------------------------------------------- handlers

N_PLAYERS = 1 + MAX_CLIPS  # the reference and up to four checkpoints
#: compare handlers return: status, link, (column, audio, caption) per player, verdict,
#: 5 figures, metrics, pairwise, files, enhancement-diff checkpoint choices
N_COMPARE_OUTPUTS = 2 + 3 * N_PLAYERS + 1 + 5 + 3 + 1
N_LOAD_OUTPUTS = 6 + MAX_CLIPS + 3
N_ENH_OUTPUTS = 6
_JS_SET_URL = "(q) => { if (q) { window.history.replaceState(null, '', q); } return []; }"


def compare_outputs(ctx: AppContext, c: Comparison) -> list:
    """Widget values for a finished comparison, in the order of the tab's compare outputs."""
    entries: list[tuple[str, str, str]] = []
    if c.reference is not None:
        ref = ctx.catalog.reference(c.selection.reference)
        ref_path = reference_audio_path(ref)
        badge = "**DEMO** stand-in recording · " if reference_availability(ref).is_demo else "recording · "
        entries.append((str(ref_path), f"{ref.id} · reference", badge + f"`{ref_path.name}`"))
    entries += [(str(m.clip.path), player_label(m.clip), clip_caption(m.clip)) for m in c.clips]
    players: list = []
    for i in range(N_PLAYERS):
        if i < len(entries):
            path, label, caption = entries[i]
            players += [gr.update(visible=True), gr.update(value=path, label=label), gr.update(value=caption)]
        else:
            players += [gr.update(visible=False), gr.update(value=None), gr.update(value="")]
    fig = c.figures
    checkpoints = [m.clip.request.checkpoint for m in c.clips]
    return [
        status_markdown(c),
        c.selection.link(),
        *players,
        verdict_markdown(c),
        str(fig["overlay"]),
        gr.update(value=str(fig["difference"]), visible=True) if "difference" in fig else gr.update(visible=False),
        str(fig["spectrograms"]),
        str(fig["pitch"]),
        str(fig["energy"]),
        metrics_for_display(c.metrics),
        c.pairwise.round(4),
        [str(p) for p in c.files],
        gr.update(choices=checkpoints, value=checkpoints[0]),
    ]


def compare(
    ctx: AppContext,
    reference: str | None,
    sentence: str | None,
    custom_text: str | None,
    checkpoints: list[str] | None,
    preset: str | None,
    per_side: bool,
    preset_1: str | None,
    preset_2: str | None,
    preset_3: str | None,
    preset_4: str | None,
    take: float | None,
    align_mode: str | None,
    request: gr.Request,
    progress=gr.Progress(),
) -> list:
    """Render and compare the selection (the "Render and compare" button)."""
    require_admin(ctx, request)
    try:
        side = [preset_1, preset_2, preset_3, preset_4] if per_side else None
        sel = make_selection(ctx.catalog, reference, sentence, custom_text, checkpoints, preset, side, take)
        c = run_comparison(ctx, sel, align_mode=align_mode or "trimmed", progress=progress)
    except WorkbenchError as e:
        raise show_error(e) from None
    for f in c.failures:
        gr.Warning(f)
    return compare_outputs(ctx, c)


def _query(request: gr.Request | None) -> dict[str, str]:
    q = getattr(request, "query_params", None) if request is not None else None
    return {str(k): str(v) for k, v in dict(q or {}).items()}


def compare_from_link(
    ctx: AppContext,
    reference: str | None,
    sentence: str | None,
    custom_text: str | None,
    checkpoints: list[str] | None,
    preset: str | None,
    per_side: bool,
    preset_1: str | None,
    preset_2: str | None,
    preset_3: str | None,
    preset_4: str | None,
    take: float | None,
    align_mode: str | None,
    request: gr.Request,
    progress=gr.Progress(),
) -> list:
    """On page load: when the URL names checkpoints (a Compare link), run that comparison.

    The widgets already hold the link's values (:func:`load_page` ran first). Raters and
    plain page loads get no change.
    """
    if role_of(ctx, request) != "admin" or not _query(request).get("checkpoints"):
        return [gr.skip()] * N_COMPARE_OUTPUTS
    return compare(
        ctx,
        reference,
        sentence,
        custom_text,
        checkpoints,
        preset,
        per_side,
        preset_1,
        preset_2,
        preset_3,
        preset_4,
        take,
        align_mode,
        request,
        progress,
    )


def load_page(ctx: AppContext, request: gr.Request) -> list:
    """Fill the selection widgets for admins: defaults, overridden by a Compare link in the URL.

    Raters get no change at all, so their page never carries catalog names.
    Order: reference, sentence, custom text, checkpoints, preset, per-side switch, the
    per-side presets, take, enhancement-diff checkpoint and preset.
    """
    if role_of(ctx, request) != "admin":
        return [gr.skip()] * N_LOAD_OUTPUTS
    require_admin(ctx, request)
    cat = ctx.catalog
    values, problems = parse_link(_query(request), cat)
    for p in problems:
        gr.Warning(p)
    refs, sents, cks, presets = list(cat.references), list(cat.sentences), list(cat.checkpoints), list(cat.enhancements)
    chosen = values.get("checkpoints") or cks[:MIN_CLIPS]
    link_presets = values.get("presets") or ["none"]
    per_side = len(link_presets) > 1
    side = (link_presets if per_side else ["none"]) + ["none"] * MAX_CLIPS
    enh_presets = [p for p in presets if p != "none"]
    return [
        gr.update(choices=refs, value=values.get("reference", refs[0] if refs else None)),
        gr.update(choices=sents, value=values.get("sentence", sents[0] if sents else None)),
        gr.update(value=values.get("text", "")),
        gr.update(choices=cks, value=chosen),
        gr.update(choices=presets, value="none" if per_side else link_presets[0]),
        gr.update(value=per_side),
        *[gr.update(choices=presets, value=side[i]) for i in range(MAX_CLIPS)],
        gr.update(value=values.get("take", 1)),
        gr.update(choices=chosen or cks, value=(chosen or cks or [None])[0]),
        gr.update(choices=enh_presets, value=enh_presets[0] if enh_presets else None),
    ]


def toggle_per_side(ctx: AppContext, per_side: bool, request: gr.Request):
    """Show the per-checkpoint preset pickers only when asked for."""
    require_admin(ctx, request)
    return gr.update(visible=bool(per_side))


def enhancement_diff(
    ctx: AppContext,
    reference: str | None,
    sentence: str | None,
    custom_text: str | None,
    checkpoint: str | None,
    preset: str | None,
    take: float | None,
    request: gr.Request,
    progress=gr.Progress(),
) -> list:
    """The same clip without and with a preset: players, overlay, metric deltas, downloads."""
    require_admin(ctx, request)
    try:
        d = run_enhancement_diff(ctx, reference, sentence, custom_text, checkpoint, preset, take, progress=progress)
    except WorkbenchError as e:
        raise show_error(e) from None
    caption = (
        f"{clip_caption(d.enhanced.clip)}  \nMCD between the two: {_fmt(d.mcd_db)} dB; "
        "positive deltas mean the preset raised the metric."
    )
    return [
        gr.update(value=str(d.plain.clip.path), label=player_label(d.plain.clip)),
        gr.update(value=str(d.enhanced.clip.path), label=player_label(d.enhanced.clip)),
        caption,
        str(d.figure),
        d.deltas.rename(index=DELTA_LABELS).round(3).rename_axis("metric").reset_index(),
        [str(p) for p in d.files],
    ]


# ---------------------------------------------------------------------------- layout


def _bind(fn: Callable, ctx: AppContext) -> Callable:
    """``fn(ctx, ...)`` as a handler gradio can inspect: ``gr.Request``/``gr.Progress`` stay visible.

    (``functools.partial`` hides the type hints gradio uses to inject the request.)
    """

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        return fn(ctx, *args, **kwargs)

    sig = inspect.signature(fn)
    handler.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])
    return handler


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    """Lay out the Compare tab inside the current ``gr.Tab`` and wire its events."""
    gr.Markdown(
        "Render 2-4 checkpoints for one reference and sentence, then listen side by side and diff them. "
        "Renders are cached, so comparing again is quick.",
        elem_classes="wb-muted",
    )
    with gr.Row():
        reference = gr.Dropdown(label="Reference clip", choices=[], value=None, scale=2)
        sentence = gr.Dropdown(label="Sentence", choices=[], value=None, scale=2)
        custom_text = gr.Textbox(label="Custom text (instead of the sentence; needs model files)", scale=3)
    with gr.Row():
        checkpoints = gr.Dropdown(
            label=f"Checkpoints ({MIN_CLIPS}-{MAX_CLIPS})",
            choices=[],
            value=[],
            multiselect=True,
            max_choices=MAX_CLIPS,
            scale=3,
        )
        preset = gr.Dropdown(label="Enhancement preset (all clips)", choices=[], value=None, scale=2)
        take = gr.Number(label="Take", value=1, precision=0, minimum=1, maximum=1000, scale=1, min_width=80)
        per_side = gr.Checkbox(label="A preset per checkpoint", value=False, scale=1)
    with gr.Row(visible=False) as side_row:
        side = [gr.Dropdown(label=f"Preset for checkpoint {i + 1}", choices=[], value=None) for i in range(MAX_CLIPS)]
    with gr.Row():
        align = gr.Radio(ALIGN_CHOICES, value="trimmed", label="Overlay alignment", scale=3)
        run = gr.Button("Render and compare", variant="primary", scale=1)
    status = gr.Markdown()
    link_box = gr.Textbox(visible=False)
    players: list = []
    with gr.Row(equal_height=False):
        for i in range(N_PLAYERS):
            with gr.Column(min_width=220, visible=False) as column:
                players.append(column)
                players.append(gr.Audio(label=f"clip {i + 1}", type="filepath", interactive=False))
                players.append(gr.Markdown(elem_classes="wb-muted"))
    verdict = gr.Markdown()
    # figures carry their own titles; a label badge would cover them
    image = functools.partial(
        gr.Image, type="filepath", interactive=False, show_label=False, buttons=["download", "fullscreen"]
    )
    overlay = image(label="Waveform overlay (min/max envelopes)")
    difference = image(label="Difference of the first two checkpoints")
    spectro = image(label="Log-mel spectrograms (one colour scale)")
    pitch = image(label="Pitch (F0): Hz and semitones, voiced regions as bars")
    energy = image(label="Energy (RMS level)")
    metrics = gr.Dataframe(
        label="Metrics (st = semitones; the CSV download has one row per clip)", interactive=False, max_height=720
    )
    pairwise = gr.Dataframe(label="Pairs: MCD after DTW and exact-match verdict", interactive=False)
    files = gr.File(label="Downloads: figures (PNG) and metrics (CSV)", file_count="multiple", interactive=False)

    with gr.Accordion("Enhancement diff: one clip without and with a preset", open=False):
        with gr.Row():
            enh_ck = gr.Dropdown(label="Checkpoint", choices=[], value=None)
            enh_preset = gr.Dropdown(label="Preset", choices=[], value=None)
            enh_run = gr.Button("Render both and diff")
        with gr.Row():
            enh_plain = gr.Audio(label="without preset", type="filepath", interactive=False)
            enh_with = gr.Audio(label="with preset", type="filepath", interactive=False)
        enh_caption = gr.Markdown()
        enh_img = image(label="Waveforms and long-term spectra")
        enh_table = gr.Dataframe(label="Metric deltas (after - before)", interactive=False)
        enh_files = gr.File(label="Downloads", file_count="multiple", interactive=False)

    inputs = [reference, sentence, custom_text, checkpoints, preset, per_side, *side, take, align]
    outputs = [status, link_box, *players, verdict, overlay, difference, spectro, pitch, energy, metrics, pairwise]
    outputs += [files, enh_ck]
    assert len(outputs) == N_COMPARE_OUTPUTS
    load_outputs = [reference, sentence, custom_text, checkpoints, preset, per_side, *side, take, enh_ck, enh_preset]
    assert len(load_outputs) == N_LOAD_OUTPUTS
    render_slot = {"concurrency_id": "render", "concurrency_limit": 1}

    run.click(_bind(compare, ctx), inputs, outputs, api_name=False, **render_slot).success(
        None, link_box, None, js=_JS_SET_URL
    )
    per_side.change(_bind(toggle_per_side, ctx), per_side, side_row, api_name=False)
    demo.load(_bind(load_page, ctx), None, load_outputs, api_name=False).then(
        _bind(compare_from_link, ctx), inputs, outputs, api_name=False, **render_slot
    ).success(None, link_box, None, js=_JS_SET_URL)
    enh_run.click(
        _bind(enhancement_diff, ctx),
        [reference, sentence, custom_text, enh_ck, enh_preset, take],
        [enh_plain, enh_with, enh_caption, enh_img, enh_table, enh_files],
        api_name=False,
        **render_slot,
    )
