"""Quality estimates and bad-take flags for rendered clips.

XTTS sometimes produces a bad take: cut-off words, babble, long silences, clipping. This
module measures every clip without a reference recording of the same sentence
("non-intrusive") and flags the takes that fall outside their checkpoint's normal range,
with a reason a person can check by ear ("3.1 s of silence at 1.2 s").

Measurements (:func:`measure`, pure: arrays in, a dict of numbers out):

- ``dnsmos_sig`` / ``dnsmos_bak`` / ``dnsmos_ovrl`` / ``dnsmos_p808``: DNSMOS P.835 (speech
  signal, background, overall) and P.808 mean opinion scores, 1-5, from Microsoft's
  ONNX models inside the ``speechmos`` wheel (runs offline on the CPU);
- ``duration_s`` and ``chars_per_s`` (non-space characters of the text per second of clip);
- ``leading_silence_s`` / ``trailing_silence_s`` and the longest inner pause
  (``longest_gap_s`` starting at ``longest_gap_at_s``), from the same energy-based speech
  mask as the Compare tab (:func:`workbench.analysis.speech_mask`);
- ``clipped_share``: share of samples in flat tops at the clip's peak (3+ equal samples);
- ``speaker_similarity``: cosine of resemblyzer embeddings of the clip and the reference.

Flags (:func:`flag`, pure): fixed limits for silence and clipping, and for the rest a
comparison with the *peers*, the other clips of the same checkpoint, model files and
preset: the duration against the length the peers' characters per second predict, and
DNSMOS OVRL and speaker similarity against the peers' median minus a robust spread.

:class:`QualityStore` adds the I/O: it keeps one JSON per measured clip in the render
cache (``<cache>/quality/<peer group>/<clip key>.json``), so a clip is measured once and
every later look (Compare, the batch manifest, the flagged-takes list) finds its peers
there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import analysis, audio
from .errors import ModelUnavailable
from .fsutil import write_json_atomic

log = logging.getLogger(__name__)

Seconds = float

#: bump when a measurement changes, so stored measurements are taken again
QUALITY_VERSION = "1"
#: sample rate DNSMOS expects (Hz)
DNSMOS_SR = 16000
#: length of the audio DNSMOS scores at once (s); longer clips are scored in windows 1 s apart
DNSMOS_WINDOW_S = 9.01

# Fixed limits: a take beyond one of these is flagged whatever its peers do.
#: silence before the first sound (s)
MAX_LEADING_SILENCE_S: Seconds = 1.0
#: silence after the last sound (s)
MAX_TRAILING_SILENCE_S: Seconds = 1.5
#: a pause inside the speech (s); pauses at commas and full stops are 0.2-0.6 s
MAX_INNER_SILENCE_S: Seconds = 1.0
#: share of samples in flat tops at the peak; a natural peak gives a few samples per clip
MAX_CLIPPED_SHARE = 0.001

# Limits relative to the peers (the checkpoint's other clips).
#: peers needed before a relative check is made
MIN_PEERS = 3
#: duration / expected duration outside [low, high] is flagged; wide, because text like
#: "2027" is read as more characters than it is written with
DURATION_RATIO_RANGE = (0.5, 2.0)
#: a DNSMOS OVRL this far below the peers' median is flagged (at least; 3 robust SDs if larger)
MIN_DNSMOS_DROP = 0.5
#: a speaker similarity this far below the peers' median is flagged (at least; 3 robust SDs if larger)
MIN_SIMILARITY_DROP = 0.1

#: keys of a measurement dict, in display order
METRICS = (
    "duration_s",
    "n_chars",
    "chars_per_s",
    "leading_silence_s",
    "trailing_silence_s",
    "longest_gap_s",
    "longest_gap_at_s",
    "clipped_share",
    "speaker_similarity",
    "dnsmos_sig",
    "dnsmos_bak",
    "dnsmos_ovrl",
    "dnsmos_p808",
)


# ---------------------------------------------------------------------------- measurements


def silences(y: np.ndarray, *, sr: int) -> dict[str, float]:
    """Leading, trailing and the longest inner silence of a clip.

    Parameters
    ----------
    y : np.ndarray, shape ``(n,)``
    sr : sample rate (Hz)

    Returns
    -------
    dict
        ``leading_silence_s``, ``trailing_silence_s``, ``longest_gap_s`` (longest run of
        silent frames between the first and last sound, 0 when none) and
        ``longest_gap_at_s`` (where that pause starts), all in seconds. A clip that is
        silent throughout has its whole length as leading silence.
    """
    times, level = analysis.energy_contour(y, sr=sr)
    mask = analysis.speech_mask(level)
    dur = analysis.duration(y, sr=sr)
    hop = float(times[1] - times[0]) if len(times) > 1 else dur
    sound = np.flatnonzero(mask)
    if sound.size == 0:
        return {"leading_silence_s": dur, "trailing_silence_s": 0.0, "longest_gap_s": 0.0, "longest_gap_at_s": 0.0}
    first, last = int(sound[0]), int(sound[-1])
    inner = ~mask[first : last + 1]
    best_len, best_at, run = 0, 0, 0
    for i, silent in enumerate(inner):  # longest run of silent frames
        run = run + 1 if silent else 0
        if run > best_len:
            best_len, best_at = run, i - run + 1
    return {
        "leading_silence_s": float(times[first]),
        "trailing_silence_s": float(max(dur - times[last], 0.0)),
        "longest_gap_s": best_len * hop,
        "longest_gap_at_s": float(times[first + best_at]) if best_len else 0.0,
    }


def clipped_share(y: np.ndarray, *, min_run: int = 3, rel_tol: float = 1e-3) -> float:
    """Share of samples in flat tops at the clip's peak level, in [0, 1].

    A sample counts when ``|y|`` is within ``rel_tol`` of the peak and it sits in a run
    of at least ``min_run`` such samples. Loudness normalisation scales a clipped clip
    as a whole, so its flat tops stay flat below 0 dBFS and are still found.
    """
    a = np.abs(np.asarray(y, dtype=np.float64))
    peak = float(a.max()) if a.size else 0.0
    if peak <= 0:
        return 0.0
    at_peak = np.concatenate([[False], a >= peak * (1 - rel_tol), [False]])
    edges = np.flatnonzero(np.diff(at_peak.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    lengths = ends - starts
    return float(lengths[lengths >= min_run].sum() / a.size)


_dnsmos_lock = threading.Lock()


def dnsmos(y: np.ndarray, *, sr: int) -> dict[str, float]:
    """DNSMOS P.835 and P.808 scores of a clip (1 = bad, 5 = excellent).

    The clip is resampled to 16 kHz and limited to [-1, 1] (what the models expect). A clip
    shorter than one 9.01 s window is repeated to fill exactly one window; longer clips go
    through speechmos as they are (windows 1 s apart, scores averaged).

    Returns
    -------
    dict
        ``dnsmos_sig`` (speech signal), ``dnsmos_bak`` (background noise), ``dnsmos_ovrl``
        (overall) and ``dnsmos_p808``.

    Raises
    ------
    ModelUnavailable
        when ``speechmos`` or ``onnxruntime`` is not installed.
    """
    try:
        from speechmos import dnsmos as _dnsmos
    except ImportError as e:
        raise ModelUnavailable(
            f"DNSMOS needs the speechmos and onnxruntime packages ({e}); "
            "install them with .venv/bin/pip install -r requirements.txt"
        ) from None
    y16 = audio.resample(np.asarray(y, dtype=np.float32), orig_sr=sr, target_sr=DNSMOS_SR) if sr != DNSMOS_SR else y
    y16 = np.clip(np.asarray(y16, dtype=np.float32), -1.0, 1.0)
    window = int(DNSMOS_WINDOW_S * DNSMOS_SR)
    if len(y16) < window:
        # the reference code doubles a short clip until it fills a window, then scores every
        # 1 s hop of the repeats; one window of the clip repeated scores the same content
        # (within ~0.1 MOS on the demo clips) at a third to a seventh of the cost
        y16 = np.resize(y16, window)
    with _dnsmos_lock:  # speechmos keeps one ONNX session per model at module level
        out = _dnsmos.run(y16, sr=DNSMOS_SR)
    return {
        "dnsmos_sig": float(out["sig_mos"]),
        "dnsmos_bak": float(out["bak_mos"]),
        "dnsmos_ovrl": float(out["ovrl_mos"]),
        "dnsmos_p808": float(out["p808_mos"]),
    }


def measure(
    y: np.ndarray,
    *,
    sr: int,
    text: str | None,
    reference_embedding: np.ndarray | None = None,
    with_dnsmos: bool = True,
) -> dict[str, float]:
    """Every measurement of one clip (see :data:`METRICS`; module docstring for units).

    Parameters
    ----------
    y : np.ndarray, shape ``(n,)``, mono in [-1, 1]
    sr : sample rate (Hz)
    text : what the clip says (None: ``n_chars`` 0, ``chars_per_s`` NaN)
    reference_embedding : resemblyzer embedding of the reference voice, shape ``(256,)``
        (:func:`workbench.analysis.speaker_embedding`); None leaves ``speaker_similarity`` NaN
    with_dnsmos : run DNSMOS (about 0.1x real time on one CPU core); False leaves its scores NaN
    """
    y = audio.validate(y, sr, name="clip")
    dur = analysis.duration(y, sr=sr)
    n_chars = analysis.count_characters(text or "")
    out: dict[str, float] = {
        "duration_s": dur,
        "n_chars": float(n_chars),
        "chars_per_s": n_chars / dur if n_chars else math.nan,
        **silences(y, sr=sr),
        "clipped_share": clipped_share(y),
        "speaker_similarity": math.nan,
        "dnsmos_sig": math.nan,
        "dnsmos_bak": math.nan,
        "dnsmos_ovrl": math.nan,
        "dnsmos_p808": math.nan,
    }
    if reference_embedding is not None:
        out["speaker_similarity"] = analysis.cosine_similarity(
            analysis.speaker_embedding(y, sr=sr), reference_embedding
        )
    if with_dnsmos:
        out.update(dnsmos(y, sr=sr))
    return out


# ---------------------------------------------------------------------------- flags


@dataclass(frozen=True)
class Flag:
    """Why a take looks bad: which check fired and a reason a person can verify by ear."""

    check: str  # silence | clipping | duration | dnsmos | speaker
    reason: str  # e.g. "3.1 s of silence at 1.2 s"


def _finite(values) -> np.ndarray:
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return a[np.isfinite(a)]


def _low_limit(peer_values: np.ndarray, min_drop: float) -> tuple[float, float]:
    """Median of the peers and the value under which a clip is out of their normal range."""
    med = float(np.median(peer_values))
    spread = 1.4826 * float(np.median(np.abs(peer_values - med)))  # robust SD (scaled MAD)
    return med, med - max(3.0 * spread, min_drop)


def flag(metrics: Mapping[str, float], peers: Sequence[Mapping[str, float]] = ()) -> list[Flag]:
    """Flags for one clip's measurements, compared with its peers' (same checkpoint and preset).

    Parameters
    ----------
    metrics : the clip's :func:`measure` dict
    peers : measurements of the checkpoint's *other* clips (the clip itself left out);
        relative checks (duration, DNSMOS, speaker similarity) need :data:`MIN_PEERS`

    Returns
    -------
    list of Flag, empty for a take that looks fine
    """
    m = {k: (math.nan if v is None else float(v)) for k, v in metrics.items()}
    flags: list[Flag] = []
    if m.get("leading_silence_s", 0) > MAX_LEADING_SILENCE_S:
        flags.append(Flag("silence", f"{m['leading_silence_s']:.1f} s of silence at the start"))
    if m.get("longest_gap_s", 0) >= MAX_INNER_SILENCE_S:
        flags.append(Flag("silence", f"{m['longest_gap_s']:.1f} s of silence at {m['longest_gap_at_s']:.1f} s"))
    if m.get("trailing_silence_s", 0) > MAX_TRAILING_SILENCE_S:
        flags.append(Flag("silence", f"{m['trailing_silence_s']:.1f} s of silence at the end"))
    if m.get("clipped_share", 0) > MAX_CLIPPED_SHARE:
        flags.append(Flag("clipping", f"clipped: {100 * m['clipped_share']:.1f}% of samples flat at the peak"))

    rates = _finite(p.get("chars_per_s") for p in peers)
    if len(rates) >= MIN_PEERS and m.get("n_chars", 0) > 0:
        rate = float(np.median(rates))
        expected = m["n_chars"] / rate
        ratio = m["duration_s"] / expected
        lo, hi = DURATION_RATIO_RANGE
        if not lo <= ratio <= hi:
            flags.append(
                Flag(
                    "duration",
                    f"duration {ratio:.1f}x the expected ({m['duration_s']:.1f} s; "
                    f"{expected:.1f} s at this checkpoint's {rate:.1f} characters/s)",
                )
            )
    for key, check, name, min_drop, fmt in (
        ("dnsmos_ovrl", "dnsmos", "DNSMOS OVRL", MIN_DNSMOS_DROP, ".2f"),
        ("speaker_similarity", "speaker", "speaker similarity", MIN_SIMILARITY_DROP, ".2f"),
    ):
        values = _finite(p.get(key) for p in peers)
        if len(values) < MIN_PEERS or not math.isfinite(m.get(key, math.nan)):
            continue
        med, limit = _low_limit(values, min_drop)
        if m[key] < limit:
            flags.append(
                Flag(check, f"{name} {m[key]:{fmt}}, below this checkpoint's usual {med:{fmt}} (limit {limit:{fmt}})")
            )
    return flags


def flag_all(items: Sequence[Mapping[str, float]], groups: Sequence[str]) -> list[list[Flag]]:
    """Flags for many clips at once; each clip's peers are the other clips of its group.

    ``groups[i]`` names the peer group of ``items[i]`` (e.g. the checkpoint).
    """
    if len(items) != len(groups):
        raise ValueError(f"{len(items)} measurements but {len(groups)} group names")
    out = []
    for i, (m, g) in enumerate(zip(items, groups, strict=True)):
        peers = [p for j, (p, h) in enumerate(zip(items, groups, strict=True)) if j != i and h == g]
        out.append(flag(m, peers))
    return out


def describe(flags: Sequence[Flag]) -> str:
    """One line for a table cell: the reasons joined by '; ' ('' when none)."""
    return "; ".join(f.reason for f in flags)


# ---------------------------------------------------------------------------- the store


@dataclass
class Assessment:
    """A clip's measurements and flags, as kept by :class:`QualityStore`."""

    key: str  # the clip's content key
    group: str  # peer group (checkpoint, model files, preset)
    request: dict  # the clip's RenderRequest as a dict
    metrics: dict[str, float]
    flags: list[Flag] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    @property
    def reasons(self) -> str:
        return describe(self.flags)


def peer_group(clip) -> str:
    """Name of the peer group of a :class:`~workbench.render.Clip`.

    Clips are peers when they come from the same checkpoint name, the same model files
    (or the same kind of pre-rendered source) and the same enhancement settings: an
    enhancer changes DNSMOS by design, and new weights change the voice.
    """
    prov = clip.provenance
    ident = {
        "checkpoint": clip.request.checkpoint,
        "source": clip.source,
        "model": prov.get("model_hash"),
        "preset": prov.get("preset"),
        "enhancer": prov.get("enhancer_hash"),
    }
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{clip.request.checkpoint}-{digest}"


def _jsonable(metrics: Mapping[str, float]) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


def _from_json(metrics: Mapping) -> dict[str, float]:
    return {k: (math.nan if v is None else float(v)) for k, v in metrics.items()}


class QualityStore:
    """Measurements of rendered clips, kept beside the render cache; thread-safe.

    Parameters
    ----------
    cache_dir : the render cache (``settings.cache_dir``); files go to ``<cache_dir>/quality``
    with_dnsmos : run DNSMOS on new clips (False: its scores stay empty; for quick tests)
    """

    def __init__(self, cache_dir: Path, *, with_dnsmos: bool = True):
        self.root = Path(cache_dir) / "quality"
        self.with_dnsmos = with_dnsmos
        self._ref_embeddings: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()
        self.stats = {"measured": 0, "reused": 0}

    def _path(self, group: str, key: str) -> Path:
        return self.root / group / f"{key}.json"

    def _reference_embedding(self, ref_path: Path | None) -> np.ndarray | None:
        if ref_path is None:
            return None
        st = Path(ref_path).stat()
        k = (str(ref_path), st.st_size, st.st_mtime_ns)
        with self._lock:
            if k in self._ref_embeddings:
                return self._ref_embeddings[k]
        y, sr = audio.load(ref_path)
        emb = analysis.speaker_embedding(y, sr=sr)
        with self._lock:
            self._ref_embeddings[k] = emb
        return emb

    def _read(self, path: Path) -> dict | None:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if rec.get("version") != QUALITY_VERSION or (self.with_dnsmos and not rec.get("with_dnsmos")):
            return None
        return rec

    def measurement(self, clip, *, text: str | None, reference_audio: Path | None) -> dict[str, float]:
        """The clip's measurements: read from the store, or measured now and stored.

        ``text`` is what the clip says; ``reference_audio`` the reference recording its
        speaker similarity is measured against (None for a built-in speaker).
        """
        group = peer_group(clip)
        path = self._path(group, clip.key)
        rec = self._read(path) if path.is_file() else None
        if rec is not None:
            self._count("reused")
            return _from_json(rec["metrics"])
        y, sr = clip.load()
        metrics = measure(
            y,
            sr=sr,
            text=text,
            reference_embedding=self._reference_embedding(reference_audio),
            with_dnsmos=self.with_dnsmos,
        )
        rec = {
            "version": QUALITY_VERSION,
            "with_dnsmos": self.with_dnsmos,
            "key": clip.key,
            "group": group,
            "request": clip.request.to_dict(),
            "metrics": _jsonable(metrics),
        }
        write_json_atomic(path, rec, indent=1, sort_keys=True)
        self._count("measured")
        return metrics

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1

    def records(self, group: str | None = None) -> list[dict]:
        """Every stored measurement (of one peer group when ``group`` is given), oldest group first."""
        folders = [self.root / group] if group else sorted(p for p in self.root.glob("*") if p.is_dir())
        out = []
        for folder in folders:
            for path in sorted(folder.glob("*.json")):
                rec = self._read(path)
                if rec is not None:
                    out.append(rec)
        return out

    def assess(self, clip, *, text: str | None, reference_audio: Path | None) -> Assessment:
        """Measure ``clip`` (or reuse its measurements) and flag it against its stored peers."""
        metrics = self.measurement(clip, text=text, reference_audio=reference_audio)
        group = peer_group(clip)
        peers = [_from_json(r["metrics"]) for r in self.records(group) if r["key"] != clip.key]
        return Assessment(clip.key, group, clip.request.to_dict(), metrics, flag(metrics, peers))

    def flagged(self) -> list[Assessment]:
        """Every stored clip that its peers' measurements flag now, by group and key."""
        out = []
        for folder in sorted(p for p in self.root.glob("*") if p.is_dir()):
            recs = self.records(folder.name)
            for i, rec in enumerate(recs):
                metrics = _from_json(rec["metrics"])
                peers = [_from_json(r["metrics"]) for j, r in enumerate(recs) if j != i]
                flags = flag(metrics, peers)
                if flags:
                    out.append(Assessment(rec["key"], rec["group"], rec["request"], metrics, flags))
        return out


# ---------------------------------------------------------------------------- clips of a catalog


def assess_clip(store: QualityStore, catalog, clip) -> Assessment:
    """Measure and flag a rendered :class:`~workbench.render.Clip` of ``catalog``.

    The text comes from the clip's provenance, the speaker similarity is measured
    against the reference's recording (none for an XTTS built-in speaker).
    """
    from .catalog import reference_audio_path

    text = clip.provenance.get("text")
    ref_path = reference_audio_path(catalog.reference(clip.request.reference))
    return store.assess(clip, text=text, reference_audio=ref_path)


def regenerate(store: QualityStore, renderer, flagged: Assessment):
    """Render the next take of a flagged clip's request and assess it.

    Returns ``(clip, assessment)`` of the new take. Raises
    :class:`~workbench.errors.RenderError` for pre-rendered (demo) sources, whose audio
    does not change with the seed.
    """
    from .render import RenderRequest

    clip = renderer.regenerate(RenderRequest.from_dict(flagged.request))
    return clip, assess_clip(store, renderer.catalog, clip)


def assess_many(store: QualityStore, catalog, clips) -> list[Assessment]:
    """Measure every clip first, then flag each: clips of one batch count as each other's peers."""
    from .catalog import reference_audio_path

    for clip in clips:
        ref_path = reference_audio_path(catalog.reference(clip.request.reference))
        store.measurement(clip, text=clip.provenance.get("text"), reference_audio=ref_path)
    return [assess_clip(store, catalog, clip) for clip in clips]


#: columns the batch manifest gains (see :func:`manifest_quality`)
MANIFEST_COLUMNS = ["dnsmos_ovrl", "speaker_similarity", "flagged", "flags"]


def manifest_quality(a: Assessment | None) -> dict:
    """The manifest cells of one clip's assessment (empty cells for a failed render)."""
    if a is None:
        return {c: "" for c in MANIFEST_COLUMNS}

    def num(k: str):
        v = a.metrics.get(k, math.nan)
        return "" if v is None or not math.isfinite(v) else round(float(v), 3)

    return {
        "dnsmos_ovrl": num("dnsmos_ovrl"),
        "speaker_similarity": num("speaker_similarity"),
        "flagged": a.flagged,
        "flags": a.reasons,
    }


def annotate_manifest(manifest: Path, store: QualityStore, catalog, renderer) -> tuple[Path, int]:
    """Add DNSMOS OVRL, speaker similarity and flags to a batch's ``manifest.csv`` (rewritten in place).

    Returns the manifest and how many takes are flagged. Rows whose clip is not in the
    cache (failed renders) get empty cells.
    """
    import csv

    from .fsutil import atomic_open
    from .render import RenderRequest

    with open(manifest, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    clips = []
    for row in rows:
        clip = None
        if row.get("status") == "ok" and row.get("sentence"):
            req = RenderRequest(
                row["checkpoint"], row["reference"], row["sentence"] or None, row["enhancement"], int(row["take"])
            )
            clip = renderer.cached(req)
        clips.append(clip)
    found = [c for c in clips if c is not None]
    by_key = {a.key: a for a in assess_many(store, catalog, found)}
    for row, clip in zip(rows, clips, strict=True):
        row.update(manifest_quality(by_key.get(clip.key) if clip is not None else None))
    fields += [c for c in MANIFEST_COLUMNS if c not in fields]
    with atomic_open(manifest, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return manifest, sum(a.flagged for a in by_key.values())


def clip_metrics(store: QualityStore, renderer):
    """A lookup ``(checkpoint, preset, reference, sentence, take) -> measurements or None``.

    Only clips already in the render cache are measured (never rendered here); a clip
    that is not cached, or whose catalog entries are gone, gives None. Memoised per call
    of this function.
    """
    from .catalog import reference_audio_path
    from .errors import WorkbenchError
    from .render import RenderRequest

    memo: dict[tuple, dict | None] = {}

    def lookup(checkpoint: str, preset: str, reference: str, sentence: str, take: int) -> dict | None:
        k = (checkpoint, preset, reference, sentence, int(take))
        if k not in memo:
            try:
                clip = renderer.cached(RenderRequest(checkpoint, reference, sentence or None, preset, int(take)))
                ref_path = reference_audio_path(renderer.catalog.reference(reference))
            except WorkbenchError:
                clip = None
            memo[k] = (
                store.measurement(clip, text=clip.provenance.get("text"), reference_audio=ref_path) if clip else None
            )
        return memo[k]

    return lookup


def exclude_flagged_takes(plan, store: QualityStore, renderer, *, tries: int = 3):
    """A blind-test plan whose flagged clips are swapped for a new take the checks do not flag.

    Every clip the plan plays is rendered (a cache read once the test's clips exist) and
    assessed; for a flagged one, up to ``tries`` new takes are rendered (next seeds) until
    one is not flagged, and every trial side that played the flagged take plays that one
    instead (both sides of an identical-pair control alike). Pre-rendered clips cannot get
    new takes and stay, with a note.

    Returns ``(plan, notes)``: the updated :class:`~workbench.abtest.plan.TestPlan` and one
    line per flagged clip saying what happened.
    """
    from dataclasses import replace

    from .errors import WorkbenchError
    from .render import RenderRequest

    arms: dict[tuple, RenderRequest] = {}
    for t in (*plan.trials, *plan.control_trials):
        for first in (True, False):
            ck, preset, take = t.side(first)
            arms[(ck, t.reference, t.sentence, preset, take)] = RenderRequest(ck, t.reference, t.sentence, preset, take)
    clips = {k: renderer.render(r) for k, r in arms.items()}
    by_key = {a.key: a for a in assess_many(store, renderer.catalog, list(clips.values()))}
    swap: dict[tuple, int] = {}
    notes: list[str] = []
    for k, clip in clips.items():
        a = by_key[clip.key]
        if not a.flagged:
            continue
        label = f"{k[0]} · {k[1]} · {k[2]} · {k[3]} take {k[4]}"
        try:
            for _ in range(tries):
                new = renderer.regenerate(arms[k])
                if not assess_clip(store, renderer.catalog, new).flagged:
                    swap[k] = new.request.take
                    notes.append(f"{label} ({a.reasons}) plays take {new.request.take} instead")
                    break
            else:
                notes.append(f"{label} ({a.reasons}) kept: {tries} new takes were flagged too")
        except WorkbenchError as e:
            notes.append(f"{label} ({a.reasons}) kept: {e}")

    def side(t, first: bool) -> int:
        ck, preset, take = t.side(first)
        return swap.get((ck, t.reference, t.sentence, preset, take), take)

    def fix(trials):
        return tuple(replace(t, take_a=side(t, True), take_b=side(t, False)) for t in trials)

    return replace(plan, trials=fix(plan.trials), control_trials=fix(plan.control_trials)), notes
