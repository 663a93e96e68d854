"""Comparisons of clips: render a selection, measure it, draw it, export it.

The logic behind the Compare tab, without any UI: a :class:`Selection` (one reference,
one text, 2-4 checkpoints with a preset each, one take) goes through the
:class:`~workbench.render.Renderer`, every clip is measured with :mod:`workbench.analysis`
and drawn with :mod:`workbench.plots`, and figures (PNG) and tables (CSV) are written to a
folder. :func:`compare_link` / :func:`parse_link` turn a selection into page-URL query
parameters and back. The tables and words a person reads (metric names with units, the
verdict and the differences in words, player labels and captions) are made here too, so
the Compare tab only places them.

>>> comparer = Comparer(catalog, Renderer(catalog))
>>> sel = make_selection(catalog, "surya_1", "pangram", None, ["feb1", "apr24"], "none")
>>> result = comparer.compare(sel, out_dir=Path("out"))
>>> result.metrics.loc["apr24", "f0_range_st"]
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from . import analysis, audio, plots
from .analysis import EnvelopePyramid  # a bare name: the field `analysis` shadows the module in Measured
from .catalog import Catalog, reference_audio_path, reference_availability
from .errors import RenderError, WorkbenchError
from .executor import INTERACTIVE
from .render import CLIP_SR, Clip, Renderer, RenderRequest

_T = TypeVar("_T")
log = logging.getLogger(__name__)

MIN_CLIPS, MAX_CLIPS = 2, 4
#: overlay alignment modes: (label for people, value)
ALIGN_CHOICES = [("raw", "raw"), ("leading silence trimmed", "trimmed"), ("DTW-aligned to the first checkpoint", "dtw")]
#: analysed clips kept in memory (re-comparing or switching the alignment does not re-measure)
ANALYSIS_CACHE_SIZE = 32

Progress = Callable[[float, str], None]


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
    retake: int | None = None  # the first checkpoint once more at this take (another seed): one more clip

    def slots(self) -> list[tuple[str, str, int]]:
        """``(checkpoint, preset, take)`` per clip, in display order (the retake last)."""
        out = [(ck, p, self.take) for ck, p in zip(self.checkpoints, self.presets, strict=True)]
        if self.retake is not None:
            out.append((self.checkpoints[0], self.presets[0], self.retake))
        return out

    def requests(self) -> list[RenderRequest]:
        return [
            RenderRequest(
                checkpoint=ck, reference=self.reference, sentence=self.sentence, enhancement=p, take=t, text=self.text
            )
            for ck, p, t in self.slots()
        ]

    def labels(self) -> list[str]:
        """Display label per clip: its checkpoint, plus the preset when presets differ, plus the
        take when the first checkpoint is also compared at another take.
        """
        differ = len(set(self.presets)) > 1
        out = []
        for i, (ck, p, t) in enumerate(self.slots()):
            label = ck if not differ or p == "none" else f"{ck} +{p}"
            if self.retake is not None and (i == 0 or i == len(self.checkpoints)):
                label += f" take {t}"
            out.append(label)
        return out

    def link(self) -> str:
        preset: str | list[str] = self.presets[0] if len(set(self.presets)) == 1 else list(self.presets)
        return compare_link(
            self.reference,
            self.sentence,
            list(self.checkpoints),
            preset=preset,
            take=self.take,
            text=self.text,
            retake=self.retake,
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
    retake: int | None = None,
) -> str:
    """Relative URL that reopens a comparison in the Compare tab.

    ``preset`` is one name for all checkpoints, or one per checkpoint (written comma
    separated); ``text`` (custom text) and ``retake`` (the first checkpoint again at that
    take) are added only when given.

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
    if retake:
        params["retake"] = str(int(retake))
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
    for key in ("take", "retake"):
        value = (query.get(key) or "").strip()
        if value:
            if value.isdigit() and 1 <= int(value) <= 1000:
                values[key] = int(value)
            else:
                problems.append(f"link: {key} must be a whole number from 1 to 1000, got {value!r}")
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
    retake: float | int | None = None,
) -> Selection:
    """Validate the widget values into a :class:`Selection`.

    ``side_presets`` (one per checkpoint slot) overrides ``preset`` when given. ``retake``
    (None or 0: none) adds the first checkpoint once more at that take, to hear or
    measure the variance between takes of one checkpoint.
    Raises :class:`RenderError` / :class:`CatalogError` naming what is missing or unknown.
    """
    reference, sentence, text = _what_to_say(catalog, reference, sentence, custom_text)
    cks = list(dict.fromkeys(checkpoints or []))
    take_n = _take(take)
    again = None if retake in (None, "", 0, 0.0) else _take(retake)
    if again is not None and cks:
        if again == take_n:
            raise RenderError(f"the first checkpoint again at take {again} is the same clip; pick another take")
        if len(cks) + 1 > MAX_CLIPS:
            raise RenderError(f"{len(cks)} checkpoints plus another take is more than {MAX_CLIPS} clips; drop one")
    elif not MIN_CLIPS <= len(cks) <= MAX_CLIPS:
        raise RenderError(
            f"pick {MIN_CLIPS} to {MAX_CLIPS} checkpoints to compare; {len(cks)} picked "
            "(or one checkpoint and another take of it)"
        )
    for ck in cks:
        catalog.checkpoint(ck)
    default = preset or "none"
    presets = [p or default for p in list(side_presets or [])[: len(cks)]] if side_presets is not None else []
    presets += [default] * (len(cks) - len(presets))
    for p in presets:
        catalog.enhancement(p)
    return Selection(reference, sentence, text, tuple(cks), tuple(presets), take_n, again)


# ---------------------------------------------------------------------------- presets on offer


@dataclass(frozen=True)
class PresetOffer:
    """The presets that can run for some checkpoints, and why the others cannot."""

    choices: list[tuple[str, str]]  # (label, preset name); stand-ins labelled "(demo stand-in)"
    unavailable: dict[str, str]  # preset name -> reason it is not offered

    @property
    def names(self) -> list[str]:
        return [v for _, v in self.choices]

    def note(self) -> str:
        """Markdown listing what is not offered and why ("" when everything runs)."""
        if not self.unavailable:
            return ""
        items = [f"- `{name}`: {reason}" for name, reason in self.unavailable.items()]
        return "**Presets not offered** (they cannot run here):\n" + "\n".join(items)


def preset_offer(catalog: Catalog, checkpoints: Sequence[str] | None = None) -> PresetOffer:
    """Presets that can run for every one of ``checkpoints`` (default: every checkpoint).

    A preset whose weights are missing is offered on demo checkpoints as the labelled
    demo stand-in (:mod:`workbench.demo_enhance`); otherwise it is listed as unavailable
    with the reason, never offered.
    """
    from .demo_enhance import preset_availability_for

    cks = [c for c in (checkpoints or list(catalog.checkpoints)) if c in catalog.checkpoints]
    choices: list[tuple[str, str]] = []
    unavailable: dict[str, str] = {}
    for name in catalog.enhancements:
        a = preset_availability_for(catalog, name, cks)
        if not a.ok:
            unavailable[name] = a.reason
        else:
            choices.append((f"{name} (demo stand-in)" if a.is_demo else name, name))
    return PresetOffer(choices, unavailable)


# ---------------------------------------------------------------------------- differences in words

#: per metric: (name for people, unit, threshold of a notable difference, True when the
#: threshold is a fraction of the first clip's value, words when lower, words when higher);
#: tilt is negative for speech, so a lower (more negative) tilt is a steeper, duller slope
MEANINGS: dict[str, tuple[str, str, float, bool, str, str]] = {
    "tilt_db_per_oct": ("spectral tilt", "dB/oct", 1.0, False, "steeper: duller", "flatter: brighter"),
    "centroid_hz": ("spectral centroid", "Hz", 0.10, True, "lower: darker, less treble", "higher: brighter"),
    "f0_range_st": ("pitch range", "st", 1.0, False, "narrower: flatter, more monotone", "wider: livelier"),
    "f0_std_st": ("pitch variation", "st", 0.5, False, "smaller: less inflection", "larger: more inflection"),
    "f0_median_hz": ("median pitch", "Hz", 0.06, True, "lower: a deeper voice", "higher: a higher voice"),
    "speaking_rate_cps": ("speaking rate", "chars/s", 0.05, True, "slower", "faster"),
    "duration_s": ("duration", "s", 0.05, True, "shorter", "longer"),
    "silence_ratio": ("silence share", "", 0.05, False, "lower: fewer pauses", "higher: more pauses"),
    "voiced_ratio": ("voiced share", "", 0.05, False, "lower: less voicing", "higher: more voicing"),
    "loudness_lufs": ("loudness", "LU", 1.0, False, "quieter", "louder"),
    "speaker_similarity": (
        "speaker similarity to the reference",
        "",
        0.05,
        False,
        "lower: less like the reference voice",
        "higher: more like the reference voice",
    ),
}


def describe_difference(metric: str, first: float, value: float) -> str | None:
    """One line for a notable difference of ``value`` to ``first`` (the first checkpoint's value).

    >>> describe_difference("tilt_db_per_oct", -3.8, -11.4)
    'spectral tilt 7.6 dB/oct steeper: duller'

    Returns None when the metric has no meaning attached, either value is NaN, or the
    difference is below the metric's threshold (see :data:`MEANINGS`).
    """
    if metric not in MEANINGS or not (math.isfinite(first) and math.isfinite(value)):
        return None
    name, unit, threshold, relative, lower, higher = MEANINGS[metric]
    diff = value - first
    if abs(diff) < (threshold * abs(first) if relative else threshold):
        return None
    amount = abs(diff)
    text = f"{amount:.0f}" if amount >= 100 else f"{amount:.2g}" if amount < 1 else f"{amount:.1f}"
    if unit:
        text += f" {unit}"
    if relative and first:
        text += f" ({100 * diff / abs(first):+.0f}%)"
    return f"{name} {text} {lower if diff < 0 else higher}"


def difference_lines(metrics: pd.DataFrame, first: str, others: Sequence[str]) -> dict[str, list[str]]:
    """Per clip in ``others``: the notable differences to clip ``first``, one line each.

    ``metrics`` is :func:`workbench.analysis.metrics_table` output (rows = clips).
    Metrics are listed in :data:`MEANINGS` order (timbre, then pitch, then timing).
    """
    out: dict[str, list[str]] = {}
    for label in others:
        lines = []
        for metric in MEANINGS:
            if metric in metrics.columns:
                line = describe_difference(metric, float(metrics.loc[first, metric]), float(metrics.loc[label, metric]))
                if line:
                    lines.append(line)
        out[label] = lines
    return out


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
    if p.get("stand_in"):
        what = "**demo stand-in** (room noise + noisereduce spectral gating), not resemble-enhance"
        parts.append(f"preset {preset}: {what}")
    else:
        parts.append(f"preset {preset}")
    if p.get("loudness_out_lufs") is not None:
        parts.append(f"{p['loudness_out_lufs']} LUFS")
    synth = (p.get("timings_s") or {}).get("synthesis")
    if synth is not None and clip.source not in ("demo", "clips"):
        parts.append(f"rendered in {synth:.1f} s")
    parts.append(f"key `{clip.key[:10]}`")
    return " · ".join(parts)


def player_label(clip: Clip) -> str:
    """``checkpoint · preset · take n`` (plus ``· DEMO`` for bundled clips, ``(demo)`` for a stand-in preset)."""
    r = clip.request
    preset = r.enhancement + (" (demo)" if (clip.provenance or {}).get("stand_in") else "")
    return f"{r.checkpoint} · {preset} · take {r.take}" + (" · DEMO" if clip.is_demo else "")


# ---------------------------------------------------------------------------- for people: tables, players, words

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
    "mcd_db": "spectral distance to first (MCD, dB)",
    "dnsmos_sig": "DNSMOS speech (SIG, 1-5)",
    "dnsmos_bak": "DNSMOS background (BAK, 1-5)",
    "dnsmos_ovrl": "DNSMOS overall (OVRL, 1-5)",
}
#: display names of the pair table's columns (the CSV keeps the short names)
PAIR_LABELS = {
    "a": "clip",
    "b": "vs clip",
    "mcd_db": "spectral distance (MCD, dB; 0 = same)",
    "verdict": "exact match",
    "max_abs_diff": "largest sample difference (full scale = 1)",
    "snr_db": "signal to difference (dB; higher = closer)",
}
DELTA_LABELS = {
    **METRIC_LABELS,
    "speaker_similarity_between": "speaker sim. between the two",
    "mcd_db_between": "MCD between the two (dB)",
}


def _fmt(v: float | None) -> str:
    """A number for reading: 3 significant digits below 10, one decimal above; – for missing."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–" if v is None or math.isnan(v) else ("∞" if v > 0 else "-∞")
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def metrics_for_display(metrics: pd.DataFrame, first: str | None = None) -> pd.DataFrame:
    """The metrics table turned for reading: one row per metric (with units), one column per
    clip, then one ``<clip> − <first>`` column per other checkpoint when ``first`` is given.
    """
    df = metrics.T.astype(float)
    df.columns = [str(c) for c in df.columns]
    if first is not None and first in df.columns:
        others = [c for c in df.columns if c != first and not c.endswith("(reference)")]
        for c in others:
            df[f"{c} − {first}"] = df[c] - df[first]
        df.loc["mcd_db", [f"{c} − {first}" for c in others]] = math.nan  # already a distance to the first
    df = df.rename(index=METRIC_LABELS).round(3)
    return df.rename_axis("metric").reset_index()


def pairs_for_display(pairwise: pd.DataFrame) -> pd.DataFrame:
    """The pair table with worded column names."""
    return pairwise.round(4).rename(columns=PAIR_LABELS)


def differences_markdown(c: Comparison) -> str:
    """What differs from the first checkpoint, one line per notable metric, in words."""
    if len(c.clips) < 2:
        return ""
    first = c.clips[0].label
    lines = []
    for label, diffs in c.differences.items():
        said = "; ".join(diffs) if diffs else "no notable difference in the measured metrics"
        lines.append(f"- **{label}** vs {first}: {said}")
    return f"**What differs from {first}** (the first checkpoint):\n" + "\n".join(lines)


def verdict_markdown(c: Comparison) -> str:
    """The exact-match verdict of the first two checkpoints, for people."""
    if c.verdict is None:
        return "Exact-match check needs two rendered clips."
    a, b = c.clips[0].label, c.clips[1].label
    lines = [f"Exact match, **{a} vs {b}: {c.verdict.describe()}**"]
    if c.verdict_aligned is not None and c.verdict_aligned.verdict != "different":
        lines.append(f"After undoing a delay: **{c.verdict_aligned.describe()}**")
    if not c.aligned_difference:
        da, db = c.clips[0].analysis.duration_s, c.clips[1].analysis.duration_s
        lines.append(
            f"No difference plot: the two are different audio ({da:.2f} s vs {db:.2f} s) that do not line up "
            "sample by sample, so subtracting them would mean nothing; compare the spectra and metrics instead."
        )
    lines.append(
        f"<span class='wb-muted'>identical = every sample equal; equal within tolerance = no sample differs by "
        f"more than {c.verdict.atol:g} ({20 * math.log10(c.verdict.atol):.0f} dBFS)</span>"
    )
    verdict = "  \n".join(lines)
    diffs = differences_markdown(c)
    return f"{diffs}\n\n{verdict}" if diffs else verdict


def status_markdown(c: Comparison, tidy: Callable[[str], str] = str) -> str:
    """What was compared, the link to it, what failed to render (each message through ``tidy``,
    which the page uses to drop server paths) and which takes the quality checks flagged.
    """
    sel = c.selection
    what = f"sentence `{sel.sentence}`" if sel.sentence else "custom text"
    lines = [
        f"Compared {len(c.clips)} clip(s) of reference `{sel.reference}`, {what}, take {sel.take}. "
        f"Link to this comparison: [{sel.link()}]({sel.link()})"
    ]
    if c.failures:
        lines += ["", "**Not rendered:**"] + [f"- {tidy(f)}" for f in c.failures]
    flagged = [(label, a) for label, a in c.quality.items() if a.flagged]
    if flagged:  # bad-take checks (workbench.quality); "Flagged takes" below regenerates them
        lines += ["", "**Flagged takes** (quality checks; regenerate under *Flagged takes*):"]
        lines += [f"- ⚠ {label}: {a.reasons}" for label, a in flagged]
    if any(m.clip is not None and m.clip.is_demo for m in c.clips):
        lines.append("")
        lines.append("Clips marked **DEMO** are bundled stand-ins, not output of the checkpoints' models.")
    return "\n".join(lines)


def player_entries(catalog: Catalog, c: Comparison) -> list[tuple[str, str, str]]:
    """``(file, label, caption)`` per player: the reference recording (when there is one), then each clip."""
    entries: list[tuple[str, str, str]] = []
    ref = catalog.reference(c.selection.reference)
    ref_path = reference_audio_path(ref)
    if c.reference is not None and ref_path is not None:  # a built-in voice has no recording to play
        badge = "**DEMO** stand-in recording · " if reference_availability(ref).is_demo else "recording · "
        entries.append((str(ref_path), f"{ref.id} · reference", badge + f"`{ref_path.name}`"))
    entries += [(str(m.clip.path), player_label(m.clip), clip_caption(m.clip)) for m in c.clips if m.clip]
    return entries


def deltas_for_display(d: EnhancementDiff) -> pd.DataFrame:
    """The enhancement diff's metric deltas with worded metric names (units included)."""
    return d.deltas.rename(index=DELTA_LABELS).round(3).rename_axis("metric").reset_index()


def enhancement_caption(d: EnhancementDiff) -> str:
    """Markdown under the enhancement diff: the enhanced clip's caption and the distance between the two."""
    assert d.enhanced.clip is not None  # rendered clips (only a reference has none)
    return (
        f"{clip_caption(d.enhanced.clip)}  \nMCD between the two: {_fmt(d.mcd_db)} dB; "
        "positive deltas mean the preset raised the metric."
    )


# ---------------------------------------------------------------------------- measuring and drawing


class AnalysisCache:
    """LRU of ClipAnalysis keyed by (content id, text): re-comparing does not re-measure."""

    def __init__(self, size: int = ANALYSIS_CACHE_SIZE):
        self.size = size
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, compute: Callable[[], _T]) -> _T:
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


@dataclass
class Measured:
    """One clip on screen: its label, samples (CLIP_SR), analysis and where it came from."""

    label: str
    y: np.ndarray
    analysis: analysis.ClipAnalysis
    clip: Clip | None  # None for the reference recording
    pyramid: EnvelopePyramid | None = None  # min/max levels for drawing and zooming the waveform


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
    differences: dict[str, list[str]]  # clip label -> notable differences to the first checkpoint, in words
    time_maps: list[analysis.TimeMap] = field(default_factory=list)  # overlay placement of reference + clips
    quality: dict = field(default_factory=dict)  # clip label -> quality.Assessment (flags), when measured
    narrow: bool = False  # figures drawn for a phone (plots.NARROW_IN wide); zooming keeps it

    @property
    def shown(self) -> list[Measured]:
        """The reference (when there is one) and the clips, in overlay order."""
        return ([self.reference] if self.reference else []) + self.clips

    @property
    def aligned_difference(self) -> bool:
        """True when the first two clips line up sample by sample (after undoing a delay), so
        their sample difference means something and is drawn.
        """
        return self.verdict is not None and (
            self.verdict.verdict != "different"
            or (self.verdict_aligned is not None and self.verdict_aligned.verdict != "different")
        )


@dataclass
class EnhancementDiff:
    """One clip rendered without and with a preset, measured and drawn."""

    plain: Measured
    enhanced: Measured
    deltas: pd.DataFrame  # metric -> before, after, delta
    mcd_db: float
    figure: Path
    files: list[Path]


class Comparer:
    """Renders, measures and draws comparisons for one catalog; thread-safe, shared by an app.

    Parameters
    ----------
    catalog : the catalog selections refer to
    renderer : the renderer (and cache) clips come from
    cache_size : analysed clips kept in memory
    quality : a :class:`~workbench.quality.QualityStore`; each compared clip then gets DNSMOS scores
        in the metrics and bad-take flags in ``Comparison.quality`` (None: not measured)
    """

    def __init__(self, catalog: Catalog, renderer: Renderer, *, cache_size: int = ANALYSIS_CACHE_SIZE, quality=None):
        self.catalog = catalog
        self.quality = quality  # a quality.QualityStore: DNSMOS and bad-take flags per clip (None: not measured)
        self.renderer = renderer
        self.analyses = AnalysisCache(cache_size)

    def _text_of(self, sel: Selection) -> str:
        if sel.text:
            return sel.text
        assert sel.sentence is not None  # a Selection holds a sentence id or custom text
        return self.catalog.sentence(sel.sentence).text

    def measure_reference(self, ref_id: str) -> Measured | None:
        """The reference recording (at CLIP_SR) and its analysis; None for an XTTS built-in speaker."""
        path = reference_audio_path(self.catalog.reference(ref_id))
        if path is None:
            return None
        y, _ = audio.load(path, sr=CLIP_SR)
        st = path.stat()
        key = ("ref", str(path), st.st_size, st.st_mtime_ns)
        return Measured(
            f"{ref_id} (reference)",
            y,
            self.analyses.get(key, lambda: analysis.analyse(y, sr=CLIP_SR)),
            None,
            self.analyses.get(("pyramid", *key), lambda: analysis.EnvelopePyramid.build(y, sr=CLIP_SR)),
        )

    def measure_clip(self, clip: Clip, label: str, text: str | None) -> Measured:
        """A rendered clip's samples (at CLIP_SR) and analysis, memoised by its content key."""
        y, sr = clip.load()
        if sr != CLIP_SR:
            y = audio.resample(y, orig_sr=sr, target_sr=CLIP_SR)
        an = self.analyses.get((clip.key, text), lambda: analysis.analyse(y, sr=CLIP_SR, text=text))
        return Measured(label, y, an, clip, pyramid_for(clip, y))

    def compare(
        self,
        sel: Selection,
        *,
        out_dir: Path,
        align_mode: str = "trimmed",
        progress: Progress | None = None,
        narrow: bool = False,
    ) -> Comparison:
        """Render, measure and draw ``sel``; figures and CSVs are written to ``out_dir``.

        A checkpoint that fails to render is listed in ``failures`` and left out.
        Raises :class:`RenderError` when nothing renders. ``narrow`` draws the figures
        for a phone (4.2 inches wide, panels stacked; files named ``*_phone.png``).
        """
        report = progress or (lambda frac, label: None)
        results = self.renderer.render_many(
            sel.requests(), progress=lambda f, label: report(0.6 * f, f"rendering {label}"), priority=INTERACTIVE
        )
        labels = sel.labels()
        text = self._text_of(sel)
        clips: list[Measured] = []
        failures: list[str] = []
        for label, res in zip(labels, results, strict=True):
            if isinstance(res, Exception):
                failures.append(f"{label}: {res}")
                continue
            report(0.6 + 0.2 * len(clips) / len(labels), f"measuring {label}")
            clips.append(self.measure_clip(res, label, text))
        if not clips:
            raise RenderError("nothing rendered:\n" + "\n".join(failures))
        reference = self.measure_reference(sel.reference)
        report(0.8, "comparing")
        shown = ([reference] if reference else []) + clips
        metrics = analysis.metrics_table(
            {m.label: m.analysis for m in shown},
            reference=reference.label if reference else None,
            anchor=clips[0].label,
        )
        pairwise = analysis.pairwise_table(
            {m.label: m.y for m in clips}, {m.label: m.analysis for m in clips}, sr=CLIP_SR
        )
        quality = self._assess(clips, report)
        for col in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"):
            metrics[col] = [quality[lb].metrics.get(col) if lb in quality else math.nan for lb in metrics.index]
        verdict = verdict_aligned = None
        if len(clips) >= 2:
            verdict = analysis.match_verdict(clips[0].y, clips[1].y, sr=CLIP_SR)
            if verdict.verdict == "different":
                verdict_aligned = analysis.match_verdict(clips[0].y, clips[1].y, sr=CLIP_SR, align=True)
        report(0.85, "drawing")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        mode = cast(analysis.AlignMode, align_mode)  # one of ALIGN_CHOICES' values
        maps = analysis.align([m.analysis for m in shown], mode=mode, anchor=1 if reference else 0)
        figures = _draw(shown, clips, maps, align_mode, verdict, verdict_aligned, out_dir, sel.slug(), narrow=narrow)
        differences = difference_lines(metrics, clips[0].label, [m.label for m in clips[1:]])
        metrics_csv = out_dir / f"{sel.slug()}_metrics.csv"
        metrics.rename_axis("clip").to_csv(metrics_csv)
        pairwise_csv = out_dir / f"{sel.slug()}_pairwise.csv"
        pairwise.to_csv(pairwise_csv, index=False)
        report(1.0, "done")
        return Comparison(
            sel,
            reference,
            clips,
            failures,
            align_mode,
            metrics,
            pairwise,
            verdict,
            verdict_aligned,
            figures,
            [*figures.values(), metrics_csv, pairwise_csv],
            differences,
            list(maps),
            quality,
            narrow,
        )

    def zoom(self, c: Comparison, t0: float | None, t1: float | None, *, out_dir: Path) -> Path:
        """Redraw ``c``'s waveform overlay for ``t0``..``t1`` s (None: all) from the clips' pyramids; PNG path."""
        span = None
        if t0 is not None or t1 is not None:
            ends = [float(tm(m.analysis.duration_s)) for tm, m in zip(c.time_maps, c.shown, strict=True)]
            lo = 0.0 if t0 is None else float(t0)
            hi = max(ends) if t1 is None else float(t1)
            if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
                raise RenderError(f"zoom: 'to' must be after 'from' (got {lo:g} to {hi:g} s)")
            span = (lo, hi)
        fig = overlay_figure(
            c.shown,
            c.time_maps,
            c.align_mode,
            reference_first=c.reference is not None,
            time_range=span,
            narrow=c.narrow,
        )
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        name = "all" if span is None else f"{span[0]:.3f}-{span[1]:.3f}"
        return _save(fig, out_dir / f"{c.selection.slug()}_overlay_{name}", narrow=c.narrow)

    def _assess(self, clips: list[Measured], report: Callable) -> dict:
        """Quality estimates and bad-take flags of the rendered clips (label -> Assessment); {} without a store."""
        if self.quality is None:
            return {}
        from .quality import assess_clip

        out = {}
        for m in clips:
            report(0.8, f"quality of {m.label}")
            try:
                out[m.label] = assess_clip(self.quality, self.catalog, m.clip)
            except WorkbenchError as e:  # e.g. DNSMOS not installed: compare without the flags
                log.warning("quality checks skipped for %s: %s", m.label, e)
        return out

    def enhancement_diff(
        self,
        reference: str | None,
        sentence: str | None,
        custom_text: str | None,
        checkpoint: str | None,
        preset: str | None,
        take: float | int | None = 1,
        *,
        out_dir: Path,
        progress: Progress | None = None,
        narrow: bool = False,
    ) -> EnhancementDiff:
        """Render ``checkpoint`` without a preset and with ``preset``; measure and draw the change.

        ``narrow`` draws the figure for a phone (``*_enhancement_phone.png``).
        """
        report = progress or (lambda frac, label: None)
        if not checkpoint:
            raise RenderError("pick the checkpoint whose clip to enhance")
        if not preset or preset == "none":
            raise RenderError("pick a preset other than 'none' to compare against the untouched clip")
        reference, sentence, text = _what_to_say(self.catalog, reference, sentence, custom_text)
        self.catalog.checkpoint(checkpoint)
        self.catalog.enhancement(preset)
        reqs = [RenderRequest(checkpoint, reference, sentence, p, _take(take), text) for p in ("none", preset)]
        results = self.renderer.render_many(
            reqs, progress=lambda f, label: report(0.7 * f, f"rendering {label}"), priority=INTERACTIVE
        )
        clips = []
        for r in results:
            if isinstance(r, Exception):
                raise r
            clips.append(r)
        if not text:
            assert sentence is not None  # _what_to_say gives a sentence id or custom text
            text = self.catalog.sentence(sentence).text
        report(0.75, "measuring")
        plain = self.measure_clip(clips[0], f"{checkpoint} · none", text)
        enhanced = self.measure_clip(clips[1], f"{checkpoint} · {preset}", text)
        table = analysis.metric_deltas(plain.analysis.metrics, enhanced.analysis.metrics)
        sim = (
            analysis.cosine_similarity(plain.analysis.embedding, enhanced.analysis.embedding)
            if plain.analysis.embedding is not None and enhanced.analysis.embedding is not None
            else math.nan
        )
        mcd_db = analysis.clip_mcd(plain.analysis, enhanced.analysis)
        table.loc["speaker_similarity_between"] = [math.nan, sim, math.nan]
        table.loc["mcd_db_between"] = [math.nan, mcd_db, math.nan]
        # what the preset did, in words ("spectral tilt 2.3 dB/oct flatter: brighter")
        table["in words"] = [
            describe_difference(str(m), float(table.loc[m, "before"]), float(table.loc[m, "after"])) or ""
            for m in table.index
        ]
        report(0.9, "drawing")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        slug = _safe(f"{reference}_{sentence or 'custom'}_{checkpoint}_{preset}")
        fig = plots.enhancement_diff_plot(plain.y, enhanced.y, sr=CLIP_SR, labels=("none", preset), narrow=narrow)
        png = _save(fig, out_dir / f"{slug}_enhancement", narrow=narrow)
        csv = out_dir / f"{slug}_enhancement.csv"
        table.rename_axis("metric").to_csv(csv)
        report(1.0, "done")
        return EnhancementDiff(plain, enhanced, table, mcd_db, png, [png, csv])


def warm_up(out_dir: Path | None = None) -> float:
    """Do the first-use work of a comparison now, on two synthetic clips: imports (librosa,
    numba's compiled kernels), FFT plans, the speaker encoder's load, matplotlib's font
    cache and PNG writer. Returns the seconds it took.

    The app runs this in a background thread at start, so the first real comparison costs
    about what every later one does.
    """
    import tempfile

    t0 = time.perf_counter()
    t = np.arange(int(1.5 * CLIP_SR)) / CLIP_SR
    voice = (0.3 * np.sin(2 * np.pi * (140 + 20 * np.sin(2 * np.pi * 3 * t)) * t)).astype(np.float32)
    a, b = voice, np.roll(voice, 240)
    an = [analysis.analyse(y, sr=CLIP_SR, text="warm up") for y in (a, b)]
    table = analysis.metrics_table({"a": an[0], "b": an[1]}, reference="a", anchor="a")
    analysis.pairwise_table({"a": a, "b": b}, {"a": an[0], "b": an[1]}, sr=CLIP_SR)
    analysis.match_verdict(a, b, sr=CLIP_SR, align=True)
    difference_lines(table, "a", ["b"])
    audio.loudness(a, CLIP_SR)
    with tempfile.TemporaryDirectory() as tmp:
        shown = [
            Measured(name, y, x, None, analysis.EnvelopePyramid.build(y, sr=CLIP_SR))
            for name, y, x in zip(("a", "b"), (a, b), an, strict=True)
        ]
        maps = analysis.align([m.analysis for m in shown], mode="dtw")
        verdict = analysis.match_verdict(a, b, sr=CLIP_SR)
        _draw(shown, shown, maps, "dtw", verdict, None, Path(out_dir or tmp), "warm-up")
    return time.perf_counter() - t0


def start_warm_up() -> threading.Thread:
    """Run :func:`warm_up` in a daemon thread (once per process); returns the thread."""
    global _warm_thread
    with _warm_lock:
        if _warm_thread is None:

            def run() -> None:
                try:
                    log.info("warm-up done in %.1f s", warm_up())
                except Exception:  # a failed warm-up only means a slower first comparison
                    log.exception("warm-up failed")

            _warm_thread = threading.Thread(target=run, name="compare-warm-up", daemon=True)
            _warm_thread.start()
        return _warm_thread


_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None


def pyramid_for(clip: Clip, y: np.ndarray) -> analysis.EnvelopePyramid:
    """The clip's envelope pyramid, kept beside it in the cache (``<key>.env.npz``); built once."""
    path = clip.path.with_name(clip.path.stem + ".env.npz")
    try:
        pyr = analysis.EnvelopePyramid.load(path)
        if pyr.n == len(y) and pyr.sr == CLIP_SR:
            return pyr
    except (OSError, ValueError, KeyError):
        pass  # missing or damaged: build it again
    pyr = analysis.EnvelopePyramid.build(y, sr=CLIP_SR)
    try:
        pyr.save(path)
    except OSError as e:  # a read-only cache still draws, only slower next time
        log.warning("cannot keep the waveform pyramid beside %s: %s", clip.path.name, e)
    return pyr


def overlay_figure(
    shown: Sequence[Measured],
    maps: Sequence[analysis.TimeMap],
    align_mode: str,
    *,
    reference_first: bool,
    time_range: tuple[float, float] | None = None,
    narrow: bool = False,
):
    """The waveform overlay of ``shown`` (from their pyramids), optionally zoomed to ``time_range`` s.

    ``narrow``: drawn for a phone (:data:`workbench.plots.NARROW_IN` wide).
    """
    mode_text = dict((v, k) for k, v in ALIGN_CHOICES)[align_mode]
    zoom = f", {time_range[0]:.2f}-{time_range[1]:.2f} s" if time_range else ""
    return plots.waveform_overlay(
        [m.y for m in shown],
        sr=CLIP_SR,
        labels=[m.label for m in shown],
        time_maps=maps,
        colors=plots.colors_for(len(shown), reference_first=reference_first),
        title=f"Waveforms, {mode_text}{zoom}",
        pyramids=[m.pyramid for m in shown],
        time_range=time_range,
        narrow=narrow,
    )


def _save(fig, stem: Path, *, narrow: bool) -> Path:
    """``fig`` as ``<stem>.png``, or ``<stem>_phone.png`` at :data:`workbench.plots.NARROW_DPI` when ``narrow``."""
    if narrow:
        return plots.save_png(fig, stem.with_name(stem.name + "_phone.png"), dpi=plots.NARROW_DPI)
    return plots.save_png(fig, stem.with_name(stem.name + ".png"))


def _draw(
    shown: list[Measured],
    clips: list[Measured],
    maps: list[analysis.TimeMap],
    align_mode: str,
    verdict: analysis.MatchResult | None,
    verdict_aligned: analysis.MatchResult | None,
    out: Path,
    slug: str,
    *,
    narrow: bool = False,
) -> dict[str, Path]:
    has_ref = len(shown) > len(clips)
    anchor = 1 if has_ref else 0
    labels = [m.label for m in shown]
    colors = plots.colors_for(len(shown), reference_first=has_ref)
    mode_text = dict((v, k) for k, v in ALIGN_CHOICES)[align_mode]
    figs = {
        "overlay": overlay_figure(shown, maps, align_mode, reference_first=has_ref, narrow=narrow),
        "spectrograms": plots.spectrograms(
            [m.analysis.mel_db for m in shown],
            sr=CLIP_SR,
            hop_length=shown[0].analysis.hop_length,
            labels=labels,
            time_offsets=[float(t.dst_s[0] - t.src_s[0]) for t in maps] if align_mode == "trimmed" else None,
            narrow=narrow,
        ),
        "pitch": plots.pitch_figure(
            [m.analysis.f0 for m in shown], labels=labels, time_maps=maps, colors=colors, narrow=narrow
        ),
        "energy": plots.energy_plot(
            [(m.analysis.energy_times, m.analysis.energy_db) for m in shown],
            labels=labels,
            time_maps=maps,
            colors=colors,
            narrow=narrow,
        ),
    }
    figs["spectrum"] = plots.spectrum_overlay(
        [analysis.average_spectrum(m.analysis.power, sr=CLIP_SR, mask=m.analysis.speech) for m in shown],
        sr=CLIP_SR,
        labels=labels,
        colors=colors,
        first=anchor,
        narrow=narrow,
    )
    figs["spectrograms"].suptitle("Log-mel spectrograms (one colour scale)", wrap=narrow)
    figs["pitch"].suptitle(f"Pitch (F0), {mode_text}; bars: voiced regions", wrap=narrow)
    figs["energy"].suptitle(f"Energy (RMS level), {mode_text}", wrap=narrow)
    # a sample difference means something only when the clips line up sample by sample
    # (as rendered, or after undoing a delay); two different renders never do
    if verdict is not None and verdict.verdict != "different":
        use = verdict
    elif verdict_aligned is not None and verdict_aligned.verdict != "different":
        use = verdict_aligned
    else:
        use = None
    if use is not None:
        figs["difference"] = plots.difference_plot(
            clips[0].y, clips[1].y, sr=CLIP_SR, labels=(clips[0].label, clips[1].label), match=use, narrow=narrow
        )
    return {name: _save(fig, out / f"{slug}_{name}", narrow=narrow) for name, fig in figs.items()}
