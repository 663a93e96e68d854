"""Results reports: tables, sentences, charts and JSON built from a :class:`~workbench.stats.Summary`.

One path for every consumer, so the Results tab and ``python -m workbench report``
(text, ``--markdown``, ``--html``, ``--json``) show the same numbers:

``build_summary(path, test_id, plans_dir=...)``
    reads the vote CSV (``workbench.votes``), keeps effective votes, finds the test's
    planned size in its stored plan and runs :func:`workbench.stats.summarize`.
``report_tables(summary)``
    the display tables, each built from one column spec (:data:`TABLE_SPECS`).
``headline(summary)``
    the decision in plain sentences.
``render_text`` / ``render_html`` / ``report_json``
    terminal text or markdown; a self-contained HTML page (charts from
    :mod:`workbench.plots` as base64 PNG); one JSON document.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import logging
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import plots, stats
from .errors import VoteError

log = logging.getLogger(__name__)
Pathlike = str | Path

#: cluster-bootstrap resamples for ranking intervals (the tab and the CLI use the same)
N_BOOT = 400
#: bootstrap seed (fixed, so a report is reproducible from its CSV)
SEED = 0
#: label of the "every test" selection
ALL_VOTES = "All votes"
#: where stored plans live by default (``settings.data_dir`` / tests)
DEFAULT_PLANS_DIR = Path(".workbench") / "tests"
_DASH = "—"
#: a verdict on fewer effective votes than this gets a visible warning
SMALL_N_EFF = 10


# --------------------------------------------------------------------------- summary


def plan_for(plans_dir: Pathlike | None, test_id: str | None):
    """The stored plan's sample size for ``test_id`` (whatever :func:`stats.target_from_plan` reads), or None.

    A missing folder, test or unreadable plan gives None (the report then computes a
    target from defaults and says so).
    """
    if not plans_dir or not test_id:
        return None
    path = Path(plans_dir) / f"{test_id}.json"
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("%s: cannot read the plan (%s); using the default planned size", path, e)
        return None
    if not isinstance(raw, dict):
        return None
    size = raw.get("sample_size")
    if isinstance(size, dict):
        try:  # recorded as planned, even when no size was reachable (the verdicts then say so)
            return stats.SamplePlan.from_dict({**size, "source": "plan"})
        except TypeError:
            pass
    target = stats.target_from_plan(raw)
    return None if target is None else {"planned_votes_per_pair": target, "min_effect": raw.get("min_effect")}


def build_summary(
    path: Pathlike,
    test_id: str | None = None,
    *,
    plans_dir: Pathlike | None = DEFAULT_PLANS_DIR,
    include_admin: bool = False,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    missing_ok: bool = False,
):
    """Read the vote CSV at ``path`` and summarise one test (or all votes).

    Parameters
    ----------
    path : str or Path
        The vote CSV (any file with ``workbench.votes.REQUIRED_COLUMNS``, any order).
    test_id : str, optional
        Test to report; None or "" for all votes.
    plans_dir : str or Path, optional
        Folder of stored plans (``<test_id>.json``); the plan's ``sample_size`` sets
        the target. None or absent: the target is computed from defaults.
    include_admin : bool
        Count admins' votes too.
    n_boot, seed : int
        Bootstrap settings (keep the defaults so every view agrees).
    missing_ok : bool
        Treat a file that does not exist yet as "no votes".

    Returns
    -------
    workbench.stats.Summary
        ``extra`` holds ``path``, ``rows`` (rows in the file), ``superseded``.

    Raises
    ------
    VoteError
        The file does not exist or a row is malformed (names row and column).
    """
    from .votes import effective_votes, read_votes

    path = Path(path)
    if not path.is_file() and not (missing_ok and not path.exists()):
        raise VoteError(f"{path}: no such vote file; votes are saved by the Blind A/B tab (default votes/votes.csv)")
    raw = read_votes(path)
    eff = effective_votes(raw)
    summary = stats.summarize(
        eff,
        test_id or None,
        plan=plan_for(plans_dir, test_id),
        include_admin=include_admin,
        n_boot=n_boot,
        seed=seed,
    )
    summary.extra.update(
        path=str(path),
        rows=len(raw),
        superseded=len(raw) - len(eff),
        rows_in_test=int((raw["test_id"] == test_id).sum()) if test_id else len(raw),
    )
    return summary


# --------------------------------------------------------------------------- formatting


def _missing(x) -> bool:
    if x is None or x is pd.NA:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def fmt_pct(x) -> str:
    """0.7 -> "70%"; nan -> "—"."""
    return _DASH if _missing(x) else f"{100 * float(x):.0f}%"


def fmt_ci(lo, hi) -> str:
    """(0.48, 0.85) -> "48–85%"; nan -> "—"."""
    return _DASH if _missing(lo) or _missing(hi) else f"{100 * float(lo):.0f}–{100 * float(hi):.0f}%"


def fmt_p(p) -> str:
    """A p-value with 3 decimals ("<0.001" below that); nan -> "—"."""
    if _missing(p):
        return _DASH
    return "<0.001" if p < 0.001 else f"{float(p):.3f}"


def fmt_p_eq(p) -> str:
    """Format ``p`` as "p = 0.012" or "p < 0.001" for sentences."""
    text = fmt_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def fmt_num(x, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals, or a dash when missing."""
    return _DASH if _missing(x) else f"{float(x):.{digits}f}"


def fmt_int(x) -> str:
    """``x`` as an integer, or a dash when missing."""
    return _DASH if _missing(x) else str(int(x))


def fmt_conf(c) -> str:
    """0.95 -> "95%", 0.98333 -> "98.3%"."""
    if _missing(c):
        return _DASH
    text = f"{100 * float(c):.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def fmt_verdict(r, scope: str = "raters_in_general") -> str:
    """The verdict cell of one scope: "settled", "not settled yet: 23 of 60 planned votes" or "not settled"."""
    sfx = "" if scope == "raters_in_general" else "_these"
    verdict, target = getattr(r, f"verdict{sfx}"), getattr(r, f"target{sfx}")
    if verdict == "planned target not reached":
        return stats.progress_line(int(r.decisive), None if _missing(target) else int(target))
    if verdict == "not settled" and _missing(target):
        return "not settled (no feasible planned size)"
    return str(verdict)


def fmt_verdict_these(r) -> str:
    """The "these raters" verdict cell."""
    return fmt_verdict(r, "these_raters")


#: how each scope reads in tables and sentences
SCOPE_LABELS = {"raters_in_general": "raters in general", "these_raters": "these raters only"}


def fmt_scope(scope) -> str:
    """The headline scope cell: "raters in general", "these raters only" or "—" (nothing settled)."""
    return SCOPE_LABELS.get(scope, _DASH) if isinstance(scope, str) else _DASH


# --------------------------------------------------------------------------- tables


@dataclass
class Table:
    """One display table: formatted cells plus the clips behind them.

    A selection is what the Compare tab opens: ``{"reference", "sentence",
    "checkpoints": [...], "preset"}``.
    """

    key: str
    title: str
    frame: pd.DataFrame  # every cell a str
    links: list[dict | None] = field(default_factory=list)  # per row: its selection, or None
    note: str = ""
    cell_links: list[dict[str, dict | None]] | None = None  # per row: {column: selection} (heatmap)

    def link(self, row: int, column: str) -> dict | None:
        """The selection behind one cell, or None."""
        if self.cell_links is not None:
            return self.cell_links[row].get(column) if row < len(self.cell_links) else None
        return self.links[row] if row < len(self.links) else None


def _selection(reference: str, sentence: str, checkpoints: str, preset: str) -> dict | None:
    """A Compare selection (see :class:`Table`), or None without a clip to show."""
    if not reference or not sentence or not checkpoints:
        return None
    return {
        "reference": reference,
        "sentence": sentence,
        "checkpoints": checkpoints.split(","),
        "preset": preset or "none",
    }


#: a column of a display table: header and how to format it from one row (a namedtuple)
Column = tuple[str, Callable]


def _col(name: str, fmt=str) -> Callable:
    return lambda r: fmt(getattr(r, name))


PAIR_SPEC: list[Column] = [
    ("Kind", _col("kind")),
    ("Item", _col("item_a")),
    ("vs", _col("item_b")),
    ("Wins", _col("wins_a", fmt_int)),
    ("Losses", _col("wins_b", fmt_int)),
    ("Ties", _col("ties", fmt_int)),
    ("Raters", _col("raters", fmt_int)),
    ("Clips", _col("clips", fmt_int)),
    ("Votes used", _col("used", fmt_int)),
    ("Effective n", _col("n_eff", lambda x: fmt_num(x, 1))),
    ("Win rate", _col("win_rate", fmt_pct)),
    ("Interval", lambda r: f"{fmt_ci(r.verdict_low, r.verdict_high)} ({fmt_conf(r.verdict_confidence)})"),
    ("p (sequential, Holm)", _col("p_adj", fmt_p)),
    ("Planned", _col("target", fmt_int)),
    ("Verdict", fmt_verdict),
    ("Interval, these raters", lambda r: f"{fmt_ci(r.verdict_low_these, r.verdict_high_these)} "
     f"({fmt_conf(r.verdict_confidence_these)})"),
    ("p, these raters", _col("p_adj_these", fmt_p)),
    ("Planned, these raters", _col("target_these", fmt_int)),
    ("Verdict, these raters", fmt_verdict_these),
    ("Settled for", _col("scope", fmt_scope)),
]  # fmt: skip
RANKING_SPEC: list[Column] = [
    ("Kind", _col("kind")),
    ("Group", _col("group", fmt_int)),
    ("Tier, raters in general", _col("tier", fmt_int)),
    ("Tier, these raters", _col("tier_these", fmt_int)),
    ("Item", lambda r: f"{r.item}{' (preliminary)' if r.preliminary else ''}"),
    ("Strength", _col("strength", fmt_num)),
    ("95% CI", lambda r: _DASH if _missing(r.ci_low) else f"{r.ci_low:.2f}–{r.ci_high:.2f}"),
    ("Wins", _col("wins", fmt_int)),
    ("Losses", _col("losses", fmt_int)),
    ("Ties", _col("ties", fmt_int)),
]
BREAKDOWN_SPEC: list[Column] = [
    ("Level", _col("level")),
    ("Item", _col("item_a")),
    ("vs", _col("item_b")),
    ("Wins", _col("wins_a", fmt_int)),
    ("Losses", _col("wins_b", fmt_int)),
    ("Ties", _col("ties", fmt_int)),
    ("Win rate", _col("win_rate", fmt_pct)),
    ("p (Holm, exploratory)", _col("p_adj", fmt_p)),
]
REASON_SPEC: list[Column] = [
    ("Tag", _col("tag")),
    ("Item", _col("item")),
    ("Won", _col("won", fmt_int)),
    ("Lost", _col("lost", fmt_int)),
    ("Tied", _col("tied", fmt_int)),
    ("Share won", _col("share_won", fmt_pct)),
    ("Share of item's votes", _col("share_of_votes", fmt_pct)),
]
POSITION_SPEC: list[Column] = [
    ("Rater", _col("rater")),
    ("Decisive", _col("decisive", fmt_int)),
    ("Chose A", _col("chose_a", fmt_int)),
    ("A rate", _col("a_rate", fmt_pct)),
    ("95% CI", lambda r: fmt_ci(r.ci_low, r.ci_high)),
    ("p", _col("p_value", fmt_p)),
    ("Ties", _col("ties", fmt_int)),
]
CONSISTENCY_SPEC: list[Column] = [
    ("Rater", _col("rater")),
    ("Repeats", _col("repeats", fmt_int)),
    ("Agree", _col("agree", fmt_int)),
    ("Rate", _col("rate", fmt_pct)),
    ("95% CI", lambda r: fmt_ci(r.ci_low, r.ci_high)),
    ("Same slot", _col("same_slot", fmt_int)),
    ("Kappa", _col("kappa", fmt_num)),
]
CONTROL_SPEC: list[Column] = [
    ("Rater", _col("rater")),
    ("Controls", _col("controls", fmt_int)),
    ("With a preference", _col("preferred", fmt_int)),
    ("Preference rate", _col("preference_rate", fmt_pct)),
    ("Top slot share", _col("slot_share", fmt_pct)),
    ("p (slot)", _col("p_slot", fmt_p)),
]
AGREEMENT_SPEC: list[Column] = [
    ("Rater", _col("rater_1")),
    ("Rater 2", _col("rater_2")),
    ("Shared", _col("shared", fmt_int)),
    ("Agree", _col("agree", fmt_int)),
    ("Rate", _col("rate", fmt_pct)),
    ("Cohen's kappa", _col("kappa", fmt_num)),
]
RATER_SPEC: list[Column] = [
    ("Rater", _col("rater")),
    ("Votes", _col("votes", fmt_int)),
    ("Ties", _col("ties", fmt_int)),
    ("A rate", _col("a_rate", fmt_pct)),
    ("p (position)", _col("p_position", fmt_p)),
    ("Repeats", _col("repeats", fmt_int)),
    ("Consistency", _col("consistency", fmt_pct)),
    ("Controls", _col("controls", fmt_int)),
    ("Control preference", _col("control_preference", fmt_pct)),
    ("Median decision (s)", _col("median_decision_s", lambda x: fmt_num(x, 1))),
    ("Median listening (s)", _col("median_played_s", lambda x: fmt_num(x, 1))),
    ("Flags", lambda r: r.flags or _DASH),
]


def frame_from_spec(df: pd.DataFrame, spec: list[Column]) -> pd.DataFrame:
    """A table of formatted cells (all ``str``) from a DataFrame and a column spec."""
    rows = [[str(fn(r)) for _, fn in spec] for r in df.itertuples(index=False)]
    return pd.DataFrame(rows, columns=[name for name, _ in spec], dtype=object)


def _pair_links(df: pd.DataFrame) -> list[dict | None]:
    return [
        _selection(r.example_reference, r.example_sentence, r.example_checkpoints, r.example_preset)
        for r in df.itertuples(index=False)
    ]


EXPLORATORY = (
    "Exploratory: votes are taken as independent within a level and p is Holm-adjusted across the {n} rows "
    "of this table; a pattern here says where to listen, it is not a verdict."
)


def report_tables(summary) -> list[Table]:
    """Every display table of a summary, in report order (the tab shows the same)."""
    s = summary
    t: list[Table] = []

    def add(key, title, df, spec, note="", links=None):
        t.append(Table(key, title, frame_from_spec(df, spec), links or [None] * len(df), note))

    plan_note = s.plan.describe() if s.plan is not None else ""
    add(
        "pairs",
        "Head to head",
        s.pairs,
        PAIR_SPEC,
        f"Method: {s.method}. Effective n: the votes' worth as independent votes (for raters in general). "
        f"Interval: the one the verdict uses (its level is Holm's for that pair; it excludes 50% when the pair is "
        f"settled). Columns marked 'these raters' are the second scope: what the raters who voted prefer, with "
        f"clips as the population; 'Settled for' names the widest scope that is settled. {plan_note}",
        _pair_links(s.pairs),
    )
    if s.pairs_screened is not None:
        add(
            "pairs_screened",
            f"Head to head without flagged raters ({', '.join(s.flagged)})",
            s.pairs_screened,
            PAIR_SPEC,
            "The same analysis, in both scopes, with the flagged raters' votes left out (see Raters for the "
            "rule); here 'these raters' are the raters who were not flagged.",
            _pair_links(s.pairs_screened),
        )
    add(
        "ranking",
        "Ranking (Bradley-Terry, tiers)",
        s.ranking,
        RANKING_SPEC,
        f"Checkpoints and presets are ranked separately. Items sorted by the lower end of their strength interval "
        f"({s.n_boot} two-way cluster-bootstrap resamples, seed {s.seed}). Tiers, once per scope: a new tier starts "
        f"only where every item above beats every item below with a settled verdict of that scope, so items of one "
        f"tier are not told apart. 'Tier, raters in general' uses the verdicts for raters in general; 'Tier, these "
        f"raters' the verdicts for these raters only: what the raters who voted prefer, not a claim about raters "
        f"in general. Groups: items never compared (directly or "
        f"through others) are not ranked against each other. Preliminary: fewer than {stats.MIN_ITEM_VOTES} "
        "decisive votes.",
    )
    t.append(_heatmap_table(s))
    for key, title, df in (
        ("by_reference", "By reference", s.by_reference),
        ("by_sentence", "By sentence", s.by_sentence),
        ("by_clip", "By clip (reference / sentence)", s.by_clip),
        ("by_rater", "By rater", s.by_rater),
    ):
        links = [_selection(r.level if key == "by_reference" else "", "", "", "") for r in df.itertuples(index=False)]
        add(key, f"{title} (exploratory)", df, BREAKDOWN_SPEC, EXPLORATORY.format(n=len(df)), links)
    add(
        "reasons",
        "Reason tags",
        s.reasons,
        REASON_SPEC,
        "Counts and shares only: tags are ticked after the vote, so they describe a decision, they do not test it.",
    )
    rbr = s.reasons_by_reference
    add(
        "reasons_by_reference",
        "Reason tags by reference",
        rbr,
        [("Reference", _col("level")), *REASON_SPEC],
        "Counts and shares only.",
    )
    add(
        "raters",
        "Raters",
        s.raters_table,
        RATER_SPEC,
        "Screening rule: flagged when agreeing with themselves on fewer than half of at least "
        f"{stats.raters.MIN_REPEATS} repeats; choosing one slot between two identical clips (at least "
        f"{stats.raters.MIN_CONTROLS} decisive controls, p < {stats.raters.FLAG_P}); a slot bias (at least "
        f"{stats.raters.MIN_POSITION_VOTES} decisive votes, p < {stats.raters.FLAG_P}); or not listening (median "
        f"below {stats.raters.MIN_LISTEN_S:g} s, or a clip never fetched on most votes). Flagged raters are kept "
        "in the main results and shown without them separately.",
    )
    add(
        "position",
        "Position bias (screen slot A)",
        s.position,
        POSITION_SPEC,
        "Sides are counterbalanced, so an unbiased rater picks slot A about half the time (sign test).",
    )
    add(
        "consistency",
        "Self-consistency on repeated trials",
        s.consistency,
        CONSISTENCY_SPEC,
        "A repeat plays the same pair with sides swapped; 'same slot' counts repeats answered with the same "
        "screen slot (a flip of preference).",
    )
    add(
        "controls",
        "Identical-pair controls",
        s.controls,
        CONTROL_SPEC,
        "Both sides play the same clip: a preference is imagined; one slot chosen far more than half the time "
        "is a slot habit.",
    )
    add(
        "agreement",
        "Agreement between raters",
        s.agreement,
        AGREEMENT_SPEC,
        f"On clips both raters judged. Fleiss' kappa over {s.fleiss_stimuli} clips judged by two or more raters: "
        f"{fmt_num(s.fleiss_kappa)}.",
    )
    return t


def _heatmap_table(s) -> Table:
    """Items x references: each cell the item's score there, linked to the clips behind it."""
    hm = s.heatmap
    refs = list(dict.fromkeys(hm["level"])) if not hm.empty else []
    rows, cell_links = [], []
    for it in s.items:
        row = {"Item": it}
        cells = {}
        for ref in refs:
            m = hm[(hm["item"] == it) & (hm["level"] == ref)]
            if m.empty:
                row[ref] = _DASH
                continue
            r = m.iloc[0]
            row[ref] = f"{fmt_pct(r.score)} ({r.wins}–{r.losses}–{r.ties})"
            cells[ref] = _selection(ref, r.example_sentence, r.example_checkpoints, r.example_preset)
        rows.append(row)
        cell_links.append(cells)
    frame = pd.DataFrame(rows, columns=["Item", *refs]).astype(str)
    return Table(
        "heatmap",
        "Item x reference (exploratory)",
        frame,
        [None] * len(rows),
        "Score = (wins + ties/2) / votes of the item against all others on that reference (wins–losses–ties).",
        cell_links=cell_links,
    )


# --------------------------------------------------------------------------- sentences


def headline(summary) -> list[str]:
    """The findings in plain sentences, most important first (markdown-safe text)."""
    s = summary
    scope = f"test {s.test_id}" if s.test_id else "all tests"
    if s.empty:
        where = f"; tests with votes: {', '.join(s.tests)}" if s.tests else ""
        return [f"No votes yet for {scope}{where}."]
    lines = []
    sup = s.extra.get("superseded", 0)
    parts = [f"{_plural(s.n_counted, 'counted vote')} ({s.n_ties} without preference)"]
    for k, word in (("repeat", "repeat"), ("control", "control"), ("training", "training trial")):
        if s.kind_counts.get(k):
            parts.append(_plural(s.kind_counts[k], word))
    text = f"{', '.join(parts)} from {_plural(len(s.raters), 'rater')} on {scope}"
    if sup:
        text += f"; {_plural(sup, 'changed vote')} counted once"
    if s.admin_votes:
        text += f"; {_plural(s.admin_votes, 'admin vote')} left out (include them with --include-admin)"
    lines.append(text + ".")
    if s.plan is not None:
        lines.append(s.plan.describe())
    for r in s.pairs.itertuples(index=False):
        lines.append(pair_sentence(r))
    for kind, tiers in s.tiers.items():
        if tiers:
            pre = " (* preliminary: few votes)" if "*" in tiers else ""
            lines.append(
                f"Ranking of {kind}, best first, for raters in general (| separates tiers, ~ joins items not told "
                f"apart): {tiers}{pre}."
            )
        these = s.tiers_these.get(kind, "")
        if these:
            lines.append(
                f"Tiers of {kind} for these raters only (what the raters who voted prefer, not a claim about "
                f"raters in general): {these}."
            )
    if s.flagged:
        rt = s.raters_table.set_index("rater")
        why = "; ".join(f"{r} ({rt.at[r, 'flags']})" for r in s.flagged)
        lines.append(f"Flagged raters: {why}. {_screened_sentence(s)}")
    return lines


def _screened_sentence(s) -> str:
    """How the verdicts of each scope change without the flagged raters ("" when nobody is flagged)."""
    if s.pairs_screened is None:
        return ""
    changed = []
    for scope, label in SCOPE_LABELS.items():
        col = "verdict" if scope == "raters_in_general" else "verdict_these"
        a = {(r.item_a, r.item_b): getattr(r, col) for r in s.pairs.itertuples(index=False)}
        b = {(r.item_a, r.item_b): getattr(r, col) for r in s.pairs_screened.itertuples(index=False)}
        changed += [
            f"{x} vs {y} for {label}: {a.get((x, y), 'no votes')} -> {b.get((x, y), 'no votes')}"
            for x, y in a
            if a.get((x, y)) != b.get((x, y))
        ]
    if not changed:
        return "Without them every verdict is the same, for raters in general and for these raters only."
    return "Without them verdicts change: " + "; ".join(changed) + "."


def pair_sentence(r) -> str:
    """One pair in words: what was compared, raters and clips, the preference and its interval, the
    verdict for raters in general and for these raters, and which scope is settled.
    """
    head = f"{r.item_a} vs {r.item_b}"
    ties = f", {_plural(int(r.ties), 'tie')}" if r.ties else ""
    if r.decisive == 0:
        return f"{head}: no decisive vote yet{ties}."
    lead_a = r.win_rate >= 0.5
    win, lose = (r.item_a, r.item_b) if lead_a else (r.item_b, r.item_a)
    rate = r.win_rate if lead_a else 1 - r.win_rate
    lo, hi = (r.verdict_low, r.verdict_high) if lead_a else (1 - r.verdict_high, 1 - r.verdict_low)
    corr = f", adjusted for {r.comparisons} comparisons" if r.comparisons > 1 else ""
    extra = f"; {r.decisive - r.used} votes after the planned {r.target} are not used" if r.decisive > r.used else ""
    text = (
        f"{head}: {_plural(int(r.raters), 'rater')}, {_plural(int(r.clips), 'clip')}, {r.used} decisive votes"
        f"{ties} (worth {r.n_eff:.1f} independent votes for raters in general){extra}. "
    )
    if r.scope == "these_raters":
        text += _these_raters_sentence(r, corr)
    else:
        if rate == 0.5:
            text += f"Level at 50% ({fmt_conf(r.verdict_confidence)} interval {fmt_ci(lo, hi)}{corr}). "
        else:
            interval = f"{fmt_conf(r.verdict_confidence)} interval {fmt_ci(lo, hi)}{corr}"
            text += f"{win} preferred to {lose} in {fmt_pct(rate)} ({interval}). "
        if r.verdict == "settled":
            text += f"Settled for raters in general: {win} is preferred ({fmt_p_eq(r.p_adj)} sequential, Holm)."
        else:
            text += _general_clause(r).capitalize() + "."
        if r.verdict != "settled" or r.verdict_these != "settled":
            text += f" For these raters: {fmt_verdict_these(r)}."
    if r.n_eff < SMALL_N_EFF or r.raters < 3 or r.clips < 2:
        text += (
            f" Warning: small sample ({r.n_eff:.1f} effective votes, {_plural(int(r.raters), 'rater')}); "
            "treat it as a first look."
        )
    return text


def _general_clause(r) -> str:
    """Why a pair is not settled for raters in general (lower case, no full stop)."""
    if r.verdict == "planned target not reached":
        return "for raters in general: " + stats.progress_line(int(r.decisive), int(r.target))
    if _missing(r.target):
        need = None if _missing(r.min_raters) else int(r.min_raters)
        if need is not None and r.raters < need:
            return f"too few raters to generalise: {int(r.raters)} of at least {need}"
        return "not settled for raters in general: no number of votes is enough with these raters and clips"
    return (
        "not settled for raters in general: the planned votes are in and the interval includes 50%; "
        "this is the final verdict"
    )


def _these_raters_sentence(r, corr: str) -> str:
    """A pair settled for these raters only: "These 3 raters prefer feb1 (68%, ...; settled for these raters; ...)"."""
    lead_a = r.win_rate_these >= 0.5
    win = r.item_a if lead_a else r.item_b
    rate = r.win_rate_these if lead_a else 1 - r.win_rate_these
    lo, hi = (
        (r.verdict_low_these, r.verdict_high_these) if lead_a else (1 - r.verdict_high_these, 1 - r.verdict_low_these)
    )
    return (
        f"These {_plural(int(r.raters), 'rater')} prefer {win} ({fmt_pct(rate)}, "
        f"{fmt_conf(r.verdict_confidence_these)} interval {fmt_ci(lo, hi)}{corr}, {_plural(int(r.clips), 'clip')}, "
        f"{int(r.used_these)} votes worth {r.n_eff_these:.1f}; settled for these raters, "
        f"{fmt_p_eq(r.p_adj_these)} sequential, Holm; {_general_clause(r)}). "
        "This says what these raters prefer, not what raters in general would."
    )


# --------------------------------------------------------------------------- text


def render_text(summary, *, markdown: bool = False) -> str:
    """The report as plain text (aligned columns) or markdown (pipe tables)."""
    from tabulate import tabulate  # type: ignore[import-untyped,unused-ignore]  # no stubs; mypy's cache can know it anyway

    out = []
    title = f"Results: {'test ' + summary.test_id if summary.test_id else ALL_VOTES.lower()}"
    src = summary.extra.get("path")
    if markdown:
        out.append(f"# {title}\n")
        if src:
            out.append(f"Source: `{src}`\n")
        out.extend(f"- {line}" for line in headline(summary))
    else:
        out.append(title)
        out.append("=" * len(title))
        if src:
            out.append(f"source: {src}")
        out.extend(f"* {line}" for line in headline(summary))
    if summary.empty:
        return "\n".join(out) + "\n"
    for t in report_tables(summary):
        if t.frame.empty:
            continue
        out.append("")
        out.append(f"## {t.title}\n" if markdown else f"{t.title}\n{'-' * len(t.title)}")
        out.append(
            tabulate(
                t.frame.values.tolist(),
                headers=list(t.frame.columns),
                tablefmt="github" if markdown else "simple",
                disable_numparse=True,
            )
        )
        if t.note:
            out.append(f"\n{t.note}" if markdown else "\n" + textwrap.fill(f"Note: {t.note}", 100))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- JSON


def _clean(x):
    """JSON-safe value: nan/NA -> None, numpy scalars -> Python."""
    if x is None or x is pd.NA:
        return None
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _records(df: pd.DataFrame | None, columns: list[str]) -> list[dict] | None:
    if df is None:
        return None
    return [{c: _clean(v) for c, v in zip(columns, row, strict=True)} for row in df[columns].itertuples(index=False)]


#: pair columns in the JSON document (``settled`` / ``settled_these`` are implied by the verdicts)
_JSON_PAIR = [c for c in stats.PAIR_COLUMNS if c not in ("settled", "settled_these")]


def report_json(summary) -> dict:
    """One selection as a JSON-ready dict (numbers as in the tables, unformatted; nan -> null).

    Per pair: counts, raw ``n`` / ``decisive`` / ``used`` and effective ``n_eff``, the
    estimate ``win_rate`` with its 95% interval and fixed-sample ``p_value``, the
    sequential ``p_seq`` and Holm ``p_adj``, the verdict interval and ``verdict`` (one of
    settled, not settled, planned target not reached), all for raters in general; the same
    for these raters only in the ``*_these`` fields; ``scope`` ("raters_in_general",
    "these_raters" or null) the widest scope that is settled. Rankings: ``tier`` (= ``rank``)
    for raters in general and ``tier_these`` for these raters only, per item; ``tiers`` and
    ``tiers_these`` the same as one line per kind. ``pairs_without_flagged`` repeats the
    pairs, both scopes, without the flagged raters.
    """
    s = summary
    return {
        "test_id": s.test_id,
        "votes": s.n_votes,
        "counted_votes": s.n_counted,
        "ties": s.n_ties,
        "trial_kinds": s.kind_counts,
        "admin_votes_left_out": s.admin_votes,
        "raters": s.raters,
        "items": s.items,
        "method": s.method,
        "alpha": s.alpha,
        "plan": {k: _clean(v) for k, v in s.plan.to_dict().items()} if s.plan is not None else None,
        "pairs": _records(s.pairs, _JSON_PAIR),
        "ranking": _records(s.ranking, stats.RANKING_COLUMNS),
        "tiers": s.tiers,
        "tiers_these": s.tiers_these,
        "flagged_raters": [
            {"rater": r.rater, "flags": r.flags.split("; ")} for r in s.raters_table.itertuples() if r.flagged
        ],
        "pairs_without_flagged": _records(s.pairs_screened, _JSON_PAIR),
        "raters_table": _records(s.raters_table, list(s.raters_table.columns)),
        "headline": headline(s),
    }


def json_document(path: Pathlike, test_id: str | None = None, *, first=None, **kw) -> dict:
    """``report --json``: every test in the file (or just ``test_id``), each analysed on its own.

    ``first``: an already built summary of ``(path, test_id)``; other keyword arguments
    go to :func:`build_summary`.
    """
    first = first if first is not None else build_summary(path, test_id, **kw)
    tests = [test_id] if test_id else first.tests
    docs = [report_json(first)] if test_id else [report_json(build_summary(path, t, **kw)) for t in tests]
    return {
        "file": str(path),
        "rows": first.extra.get("rows", 0),
        "superseded": first.extra.get("superseded", 0),
        "tests": docs,
    }


# --------------------------------------------------------------------------- figures


def figures(summary) -> dict:
    """Every chart (see :func:`workbench.plots.results_figures`)."""
    return plots.results_figures(summary)


def figure_png(fig) -> bytes:
    """PNG bytes of a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


# --------------------------------------------------------------------------- HTML

#: styles of the tables (also used by the Results tab)
CSS_TABLES = """
table.wb-table{border-collapse:collapse;font-size:.88em;margin:.4rem 0}
table.wb-table th,table.wb-table td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right;white-space:nowrap}
table.wb-table th{background:#f4f4f6}
table.wb-table .wb-text{text-align:left}
table.wb-table a{color:inherit;text-decoration:underline dotted}
.wb-note{color:#555;font-size:.85em;max-width:900px}
.wb-scroll{overflow-x:auto;max-width:100%}
"""
#: styles of the HTML report page
CSS = (
    """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
 padding:0 1rem;color:#1d1d1f}
h1{margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.wb-meta{color:#555;font-size:.9em}
ul.wb-headline li{margin:.25rem 0}
.wb-charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem}
.wb-charts img{max-width:100%;border:1px solid #eee}
"""
    + CSS_TABLES
)


def html_table(table: Table, href=None) -> str:
    """One table as HTML; with ``href(selection) -> url`` every cell of a linked row is a link."""
    f = table.frame
    if f.empty:
        return '<p class="wb-note">No data.</p>'
    text_cols = {c for c in f.columns if not all(_looks_numeric(v) for v in f[c])}
    text_cls = ' class="wb-text"'
    head = "".join(f"<th{text_cls if c in text_cols else ''}>{html.escape(str(c))}</th>" for c in f.columns)
    body = []
    for i, row in enumerate(f.itertuples(index=False)):
        cells = []
        for j, value in enumerate(row):
            col = f.columns[j]
            text = html.escape(str(value))
            sel = table.link(i, col)
            if href is not None and sel and value != _DASH:
                text = f'<a href="{html.escape(href(sel))}" target="_blank" title="listen in Compare">{text}</a>'
            cls = text_cls if col in text_cols else ""
            style = _heat_style(table, col, str(value))
            cells.append(f"<td{cls}{style}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    table_html = f'<table class="wb-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return f'<div class="wb-scroll">{table_html}</div>'


def _looks_numeric(s: str) -> bool:
    return bool(s) and (s[0].isdigit() or s[0] in "<—-")


def _heat_style(table: Table, col: str, value: str) -> str:
    """Background colour for heatmap cells (blue above 50%, red below)."""
    if table.key != "heatmap" or col == "Item" or not value.endswith(")"):
        return ""
    try:
        score = float(value.split("%")[0]) / 100
    except ValueError:
        return ""
    d = score - 0.5
    rgb = (
        (int(255 - 160 * d * 2), int(255 - 110 * abs(d) * 2), 255)
        if d >= 0
        else (255, int(255 + 140 * d * 2), int(255 + 160 * d * 2))
    )
    return f' style="background:rgb{rgb}"'


def render_html(summary, *, href=None, charts: bool = True) -> str:
    """A self-contained HTML page: headline, charts (base64 PNG), every table, method notes.

    It loads nothing from the network, so it opens offline. ``href`` (optional) turns
    rows into links to the app's Compare tab.
    """
    s = summary
    scope = f"test {s.test_id}" if s.test_id else ALL_VOTES.lower()
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = [f"generated {made}"]
    if s.extra.get("path"):
        meta.append(f"from {html.escape(str(s.extra['path']))}")
        meta.append(f"{s.extra.get('rows', 0)} rows in the file, {s.extra.get('superseded', 0)} superseded")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Listening test results: {html.escape(scope)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Listening test results: {html.escape(scope)}</h1>",
        f'<p class="wb-meta">{" · ".join(meta)}</p>',
        '<ul class="wb-headline">' + "".join(f"<li>{html.escape(line)}</li>" for line in headline(s)) + "</ul>",
    ]
    if not s.empty:
        if charts:
            parts.append('<div class="wb-charts">')
            for name, fig in figures(s).items():
                data = base64.b64encode(figure_png(fig)).decode("ascii")
                parts.append(f'<img alt="{name.replace("_", " ")} chart" src="data:image/png;base64,{data}">')
            parts.append("</div>")
        for t in report_tables(s):
            parts.append(f"<h2>{html.escape(t.title)}</h2>")
            parts.append(html_table(t, href))
            if t.note:
                parts.append(f'<p class="wb-note">{html.escape(t.note)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(summary, path: Pathlike) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8); returns the path."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(summary), encoding="utf-8")
    except OSError as e:
        raise VoteError(f"{path}: cannot write the report ({e.strerror or e})") from None
    return path
