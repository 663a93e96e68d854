"""Results reports: the tables, sentences and charts built from a :class:`~workbench.stats.Summary`.

One path for every consumer, so the Results tab and ``python -m workbench report``
show the same numbers:

``build_summary(path, test_id)``
    reads the vote CSV (``workbench.votes``), keeps effective votes, runs
    :func:`workbench.stats.summarize` with the fixed bootstrap settings below.
``report_tables(summary)``
    the display tables (formatted cells) with, per row, the clips behind it.
``headline(summary)``
    the decision in sentences ("apr27 beats feb1 in 9 of 11 ...").
``render_text`` / ``render_html``
    plain text or markdown for a terminal; a self-contained HTML page (inline CSS,
    charts as base64 PNG, no external resource) that opens offline.

Figures are matplotlib ``Figure`` objects built without pyplot (thread-safe).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .errors import VoteError

Pathlike = str | Path

#: bootstrap resamples for Bradley-Terry intervals (the tab and the CLI use the same)
N_BOOT = 1000
#: bootstrap seed (fixed, so a report is reproducible from its CSV)
SEED = 0
#: label of the "every test" selection
ALL_VOTES = "All votes"
_DASH = "—"


# --------------------------------------------------------------------------- summary


def build_summary(
    path: Pathlike,
    test_id: str | None = None,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    missing_ok: bool = False,
):
    """Read the vote CSV at ``path`` and summarise one test (or all votes).

    Parameters
    ----------
    path : str or Path
        The vote CSV (contract: ``workbench.votes.COLUMNS``).
    test_id : str, optional
        Test to report; None or "" for all votes.
    n_boot, seed : int
        Bootstrap settings (keep the defaults so every view agrees).
    missing_ok : bool
        Treat a file that does not exist yet as "no votes" instead of an error.

    Returns
    -------
    workbench.stats.Summary
        With ``extra`` holding ``path``, ``rows`` (rows in the file, superseded ones
        included), ``superseded`` (rows replaced by a changed vote, not counted).

    Raises
    ------
    VoteError
        The file does not exist, or a row is malformed (the message names row and column).
    """
    from .votes import effective_votes, read_votes

    path = Path(path)
    if not path.is_file() and not (missing_ok and not path.exists()):
        raise VoteError(f"{path}: no such vote file; votes are saved by the Blind A/B tab (default votes/votes.csv)")
    raw = read_votes(path)
    eff = effective_votes(raw)
    summary = stats.summarize(eff, test_id or None, n_boot=n_boot, seed=seed)
    summary.extra.update(
        path=str(path),
        rows=len(raw),
        superseded=len(raw) - len(eff),
        rows_in_test=int((raw["test_id"] == test_id).sum()) if test_id else len(raw),
    )
    return summary


# --------------------------------------------------------------------------- formatting


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
    """ "p = 0.012" or "p < 0.001" for sentences."""
    text = fmt_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def fmt_num(x, digits: int = 2) -> str:
    return _DASH if _missing(x) else f"{float(x):.{digits}f}"


def fmt_int(x) -> str:
    return _DASH if _missing(x) else str(int(x))


def _missing(x) -> bool:
    if x is None or x is pd.NA:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def fmt_more(row) -> str:
    """The "more votes" cell: 0 once settled, "—" when no number of votes would do."""
    if bool(row["settled"]):
        return "0 (settled)"
    if _missing(row["more_votes"]):
        return _DASH
    return str(int(row["more_votes"]))


# --------------------------------------------------------------------------- tables


@dataclass
class Table:
    """One display table: formatted cells plus the clips behind them.

    A selection is what the Compare tab opens: ``{"reference", "sentence",
    "checkpoints": [...], "preset"}`` (for a plan comparing presets, the one
    checkpoint and the first side's preset).
    """

    key: str
    title: str
    frame: pd.DataFrame  # every cell a str
    links: list[dict | None] = field(default_factory=list)  # per row: its selection, or None
    note: str = ""
    cell_links: list[dict[str, dict]] | None = None  # per row: {column: selection} (heatmap)

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


def _pair_frame(df: pd.DataFrame, *, level: str | None = None) -> pd.DataFrame:
    cols = {}
    if level:
        cols[level] = df["level"].astype(str)
    cols.update(
        {
            "Item": df["item_a"],
            "vs": df["item_b"],
            "Wins": df["wins_a"].map(fmt_int),
            "Losses": df["wins_b"].map(fmt_int),
            "Ties": df["ties"].map(fmt_int),
            "Win rate": df["win_rate"].map(fmt_pct),
            "95% CI": [fmt_ci(lo, hi) for lo, hi in zip(df["ci_low"], df["ci_high"], strict=True)],
            "p": df["p_value"].map(fmt_p),
        }
    )
    if not level:
        cols.update(
            {
                "p (ties split)": df["p_ties_split"].map(fmt_p),
                "p (Holm)": df["p_holm"].map(fmt_p),
                "Votes needed": df["votes_needed"].map(fmt_int),
                "More votes": [fmt_more(r) for _, r in df.iterrows()],
            }
        )
    return pd.DataFrame(cols, index=range(len(df))).astype(str)


def _pair_links(df: pd.DataFrame) -> list[dict | None]:
    return [
        _selection(r.example_reference, r.example_sentence, r.example_checkpoints, r.example_preset)
        for r in df.itertuples(index=False)
    ]


def report_tables(summary) -> list[Table]:
    """Every display table of a summary, in report order (the tab shows the same)."""
    s = summary
    tables = [
        Table(
            "pairs",
            "Head to head",
            _pair_frame(s.pairs),
            _pair_links(s.pairs),
            "Wins/Losses count votes for Item over vs; win rate among decisive votes with its Wilson 95% "
            "interval; exact two-sided sign test without ties (p) and with ties split; Holm-adjusted across "
            "pairs. Votes needed: decisive votes for 80% power at alpha 0.05 at the observed win rate; more "
            "votes: further votes (ties included) to reach that.",
        )
    ]
    rk = s.ranking
    tables.append(
        Table(
            "ranking",
            "Ranking (Bradley-Terry)",
            pd.DataFrame(
                {
                    "Rank": rk["rank"].map(fmt_int),
                    "Item": rk["item"],
                    "Strength": rk["strength"].map(fmt_num),
                    "95% CI": [
                        _DASH if _missing(lo) else f"{lo:.2f}–{hi:.2f}"
                        for lo, hi in zip(rk["ci_low"], rk["ci_high"], strict=True)
                    ],
                    "P(best)": rk["p_best"].map(fmt_pct),
                    "Wins": rk["wins"].map(fmt_int),
                    "Losses": rk["losses"].map(fmt_int),
                    "Ties": rk["ties"].map(fmt_int),
                    "Score": rk["score"].map(fmt_pct),
                },
                index=range(len(rk)),
            ).astype(str),
            [None] * len(rk),
            f"Strength: geometric mean 1; s_i / (s_i + s_j) is the modelled chance that i beats j (ties count "
            f"half, {s.prior:g} virtual tie per pair). Interval and P(best) from {s.n_boot} bootstrap "
            f"resamples of the votes (seed {s.seed}). Score = (wins + ties/2) / votes.",
        )
    )
    tables.append(_heatmap_table(s))
    for key, title, df, level in (
        ("by_reference", "By reference", s.by_reference, "Reference"),
        ("by_sentence", "By sentence", s.by_sentence, "Sentence"),
        ("by_clip", "By clip (reference / sentence)", s.by_clip, "Clip"),
        ("by_rater", "By rater", s.by_rater, "Rater"),
        ("by_reason", "By reason tag", s.by_reason, "Tag"),
    ):
        tables.append(Table(key, title, _pair_frame(df, level=level), _pair_links(df)))
    tables[-1].note = "A vote counts once under each of its tags."
    for key, title, df in (
        ("reasons", "Reason tags", s.reasons),
        ("reasons_by_reference", "Reason tags by reference", s.reasons_by_reference),
    ):
        frame = pd.DataFrame(index=range(len(df)))
        if "level" in df.columns:
            frame["Reference"] = df["level"].astype(str)
        frame["Tag"] = df["tag"]
        frame["Item"] = df["item"]
        frame["Won"] = df["won"].map(fmt_int)
        frame["Lost"] = df["lost"].map(fmt_int)
        frame["Tied"] = df["tied"].map(fmt_int)
        frame["Share won"] = df["share_won"].map(fmt_pct)
        tables.append(
            Table(
                key, title, frame.astype(str), [None] * len(df), "Votes the item won / lost / tied that gave this tag."
            )
        )
    pb = s.position
    tables.append(
        Table(
            "position",
            "Position bias (screen slot A)",
            pd.DataFrame(
                {
                    "Rater": pb["rater"],
                    "Decisive": pb["decisive"].map(fmt_int),
                    "Chose A": pb["chose_a"].map(fmt_int),
                    "A rate": pb["a_rate"].map(fmt_pct),
                    "95% CI": [fmt_ci(lo, hi) for lo, hi in zip(pb["ci_low"], pb["ci_high"], strict=True)],
                    "p": pb["p_value"].map(fmt_p),
                    "Ties": pb["ties"].map(fmt_int),
                },
                index=range(len(pb)),
            ).astype(str),
            [None] * len(pb),
            "Sides are counterbalanced, so an unbiased rater picks slot A about half the time (sign test).",
        )
    )
    co = s.consistency
    tables.append(
        Table(
            "consistency",
            "Self-consistency on repeated trials",
            pd.DataFrame(
                {
                    "Rater": co["rater"],
                    "Repeats": co["repeats"].map(fmt_int),
                    "Agree": co["agree"].map(fmt_int),
                    "Rate": co["rate"].map(fmt_pct),
                    "95% CI": [fmt_ci(lo, hi) for lo, hi in zip(co["ci_low"], co["ci_high"], strict=True)],
                    "Same slot": co["same_slot"].map(fmt_int),
                    "Kappa": co["kappa"].map(fmt_num),
                },
                index=range(len(co)),
            ).astype(str),
            [None] * len(co),
            "A repeat plays the same pair with sides swapped; 'same slot' counts repeats answered with the "
            "same screen slot (a flip of preference).",
        )
    )
    ag = s.agreement
    tables.append(
        Table(
            "agreement",
            "Agreement between raters",
            pd.DataFrame(
                {
                    "Rater": ag["rater_1"],
                    "Rater 2": ag["rater_2"],
                    "Shared": ag["shared"].map(fmt_int),
                    "Agree": ag["agree"].map(fmt_int),
                    "Rate": ag["rate"].map(fmt_pct),
                    "Cohen's kappa": ag["kappa"].map(fmt_num),
                },
                index=range(len(ag)),
            ).astype(str),
            [None] * len(ag),
            f"On clips both raters judged (same test, reference, sentence, pair). Fleiss' kappa over "
            f"{s.fleiss_stimuli} clips judged by two or more raters: {fmt_num(s.fleiss_kappa)}.",
        )
    )
    rt = s.raters_table
    tables.append(
        Table(
            "raters",
            "Raters",
            pd.DataFrame(
                {
                    "Rater": rt["rater"],
                    "Votes": rt["votes"].map(fmt_int),
                    "Ties": rt["ties"].map(fmt_int),
                    "A rate": rt["a_rate"].map(fmt_pct),
                    "p (position)": rt["p_position"].map(fmt_p),
                    "Repeats": rt["repeats"].map(fmt_int),
                    "Consistency": rt["consistency"].map(fmt_pct),
                    "Median decision (s)": rt["median_decision_s"].map(lambda x: fmt_num(x, 1)),
                    "Median listening (s)": rt["median_played_s"].map(lambda x: fmt_num(x, 1)),
                },
                index=range(len(rt)),
            ).astype(str),
            [None] * len(rt),
        )
    )
    return tables


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
        "Item x reference",
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
    sup_txt = f"; {sup} changed vote{'s' if sup != 1 else ''} counted once" if sup else ""
    lines.append(
        f"{s.n_votes} vote{'s' if s.n_votes != 1 else ''} ({s.n_ties} without preference) from "
        f"{len(s.raters)} rater{'s' if len(s.raters) != 1 else ''} on {scope}{sup_txt}."
    )
    if not s.ranking.empty and len(s.ranking) > 1:
        order = " > ".join(s.ranking["item"])
        top = s.ranking.iloc[0]
        lines.append(
            f"Ranking (Bradley-Terry): {order}; {top['item']} ranks first in {fmt_pct(top['p_best'])} of "
            f"{s.n_boot} bootstrap resamples."
        )
    for _, r in s.pairs.iterrows():
        lines.append(_pair_sentence(r))
    pb = s.position
    if not pb.empty and pb.iloc[0]["decisive"]:
        a = pb.iloc[0]
        flag = " (a position bias)" if a["p_value"] < stats.ALPHA else ""
        lines.append(
            f"Screen slot A was chosen in {fmt_pct(a['a_rate'])} of decisive votes, {fmt_p_eq(a['p_value'])}{flag}."
        )
        for _, r in pb.iloc[1:].iterrows():
            if r["p_value"] < stats.ALPHA:
                lines.append(
                    f"Rater {r['rater']} chose slot A in {r['chose_a']} of {r['decisive']} decisive votes "
                    f"({fmt_pct(r['a_rate'])}, {fmt_p_eq(r['p_value'])}): check their votes."
                )
    co = s.consistency
    if not co.empty and co.iloc[0]["repeats"]:
        c = co.iloc[0]
        lines.append(
            f"Repeated trials (sides swapped) got the same answer {c['agree']} of {c['repeats']} times "
            f"({fmt_pct(c['rate'])})."
        )
    if s.fleiss_stimuli:
        ag = s.agreement
        pooled = ag["agree"].sum() / ag["shared"].sum() if len(ag) and ag["shared"].sum() else math.nan
        kappa = "undefined" if _missing(s.fleiss_kappa) else fmt_num(s.fleiss_kappa)
        clips = f"{s.fleiss_stimuli} clip{'s' if s.fleiss_stimuli != 1 else ''}"
        lines.append(f"Raters agree on {fmt_pct(pooled)} of shared clips (Fleiss' kappa {kappa} over {clips}).")
    return lines


def _pair_sentence(r) -> str:
    dec = int(r["wins_a"] + r["wins_b"])
    ties = f", {int(r['ties'])} tie{'s' if r['ties'] != 1 else ''}" if r["ties"] else ""
    if dec == 0:
        return f"{r['item_a']} vs {r['item_b']}: no decisive vote yet{ties}."
    lead_a = r["win_rate"] >= 0.5
    win, lose = (r["item_a"], r["item_b"]) if lead_a else (r["item_b"], r["item_a"])
    k = int(r["wins_a"] if lead_a else r["wins_b"])
    rate = r["win_rate"] if lead_a else 1 - r["win_rate"]
    lo, hi = (r["ci_low"], r["ci_high"]) if lead_a else (1 - r["ci_high"], 1 - r["ci_low"])
    verb = "is preferred to" if k * 2 != dec else "is level with"
    text = (
        f"{win} {verb} {lose} in {k} of {dec} decisive votes ({fmt_pct(rate)}, 95% CI {fmt_ci(lo, hi)}{ties}); "
        f"{fmt_p_eq(r['p_value'])}, Holm {fmt_p(r['p_holm'])}: "
    )
    if r["settled"]:
        return text + "settled."
    if _missing(r["more_votes"]):
        return text + "not settled; at an even split no number of votes would settle it."
    return text + f"not settled; about {int(r['more_votes'])} more votes would settle it at this effect size."


# --------------------------------------------------------------------------- text


def render_text(summary, *, markdown: bool = False) -> str:
    """The report as plain text (aligned columns) or markdown (pipe tables)."""
    from tabulate import tabulate

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


# --------------------------------------------------------------------------- figures

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _empty(ax, text: str = "No votes yet") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="#666", transform=ax.transAxes)
    ax.set_axis_off()


def win_rate_figure(summary, ax=None):
    """Win rate of each pair's first item with its Wilson 95% interval (forest plot)."""
    p = summary.pairs
    fig = ax.figure if ax is not None else _figure(7, 1.2 + 0.55 * max(1, len(p)))
    ax = ax or fig.add_subplot()
    if p.empty or (p["wins_a"] + p["wins_b"]).sum() == 0:
        _empty(ax)
        return fig
    y = np.arange(len(p))[::-1]
    rate = p["win_rate"].to_numpy(float)
    lo, hi = p["ci_low"].to_numpy(float), p["ci_high"].to_numpy(float)
    colors = ["#2b7a3d" if s else "#444" for s in p["settled"]]
    ax.axvline(0.5, color="#999", ls="--", lw=1)
    ax.hlines(y, lo, hi, colors=colors, lw=3, alpha=0.6)
    ax.scatter(rate, y, c=colors, s=60, zorder=3)
    ax.set_yticks(y, [f"{a} vs {b}" for a, b in zip(p["item_a"], p["item_b"], strict=True)])
    for yi, r in zip(y, p.itertuples(index=False), strict=True):
        ax.annotate(
            f"{r.wins_a}–{r.wins_b}–{r.ties}  Holm p {fmt_p(r.p_holm)}",
            (1.01, yi),
            xycoords=("axes fraction", "data"),
            va="center",
            fontsize=9,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(p) - 0.4)
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_xlabel("win rate of the first item (decisive votes), 95% CI; green = settled (Holm)")
    ax.set_title("Head to head")
    return fig


def ranking_figure(summary, ax=None):
    """Bradley-Terry strengths (log scale) with bootstrap intervals, strongest on top."""
    r = summary.ranking
    fig = ax.figure if ax is not None else _figure(7, 1.2 + 0.55 * max(1, len(r)))
    ax = ax or fig.add_subplot()
    if r.empty:
        _empty(ax)
        return fig
    y = np.arange(len(r))[::-1]
    s = r["strength"].to_numpy(float)
    lo = r["ci_low"].to_numpy(float)
    hi = r["ci_high"].to_numpy(float)
    color = [_COLORS[summary.items.index(it) % len(_COLORS)] for it in r["item"]]
    ax.axvline(1.0, color="#999", ls="--", lw=1)
    if np.isfinite(lo).all():
        ax.hlines(y, lo, hi, colors=color, lw=3, alpha=0.6)
    ax.scatter(s, y, c=color, s=60, zorder=3)
    ax.set_xscale("log")
    _log_ticks(ax, np.concatenate([s, lo, hi]))
    ax.set_yticks(y, [f"{i}. {it}" for i, it in zip(r["rank"], r["item"], strict=True)])
    for yi, row in zip(y, r.itertuples(index=False), strict=True):
        ax.annotate(
            f"P(best) {fmt_pct(row.p_best)}", (1.01, yi), xycoords=("axes fraction", "data"), va="center", fontsize=9
        )
    ax.set_ylim(-0.6, len(r) - 0.4)
    ax.set_xlabel("Bradley-Terry strength (geometric mean 1), 95% bootstrap CI")
    ax.set_title("Ranking")
    return fig


def _log_ticks(ax, values: np.ndarray) -> None:
    """Readable ticks (1, 1.5, 2, 3, ...) on a log x axis spanning ``values``."""
    from matplotlib.ticker import FixedLocator, NullLocator

    v = values[np.isfinite(values) & (values > 0)]
    if not v.size:
        return
    lo, hi = v.min() / 1.05, v.max() * 1.05
    nice = sorted({m * 10.0**e for e in range(-3, 4) for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)})
    ticks = [t for t in nice if lo <= t <= hi]
    while len(ticks) > 8:
        ticks = ticks[::2]
    if len(ticks) < 2:
        return
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:g}")


def heatmap_figure(summary, ax=None):
    """Items x references coloured by score (blue: wins there, red: loses there)."""
    hm = summary.heatmap
    refs = list(dict.fromkeys(hm["level"])) if not hm.empty else []
    items = summary.items
    fig = ax.figure if ax is not None else _figure(1.8 + 1.3 * max(1, len(refs)), 1.0 + 0.6 * max(1, len(items)))
    ax = ax or fig.add_subplot()
    if hm.empty:
        _empty(ax)
        return fig
    grid = np.full((len(items), len(refs)), np.nan)
    for r in hm.itertuples(index=False):
        grid[items.index(r.item), refs.index(r.level)] = r.score
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu", vmin=0, vmax=1, aspect="auto")
    for r in hm.itertuples(index=False):
        i, j = items.index(r.item), refs.index(r.level)
        dark = abs(r.score - 0.5) > 0.3
        ax.text(
            j,
            i,
            f"{r.score:.0%}\n{r.wins}–{r.losses}–{r.ties}",
            ha="center",
            va="center",
            fontsize=9,
            color="white" if dark else "black",
        )
    ax.set_xticks(range(len(refs)), refs, rotation=30, ha="right")
    ax.set_yticks(range(len(items)), items)
    ax.set_title("Score by reference (wins + ties/2) / votes")
    fig.colorbar(im, ax=ax, shrink=0.8, format=lambda v, _: f"{v:.0%}")
    return fig


def reasons_figure(summary, ax=None):
    """Reason tags: votes each item won (right) and lost (left) that gave the tag."""
    rs = summary.reasons
    tags = list(dict.fromkeys(rs["tag"])) if not rs.empty else []
    items = summary.items
    fig = ax.figure if ax is not None else _figure(7, 1.2 + 0.5 * max(1, len(tags)) * max(1, min(len(items), 3)) / 1.5)
    ax = ax or fig.add_subplot()
    if rs.empty:
        _empty(ax, "No reason tags yet")
        return fig
    h = 0.8 / max(1, len(items))
    base = np.arange(len(tags))[::-1].astype(float)
    for k, it in enumerate(items):
        sub = rs[rs["item"] == it].set_index("tag")
        won = np.array([sub["won"].get(t, 0) for t in tags], float)
        lost = np.array([sub["lost"].get(t, 0) for t in tags], float)
        y = base + 0.4 - h * (k + 0.5)
        c = _COLORS[k % len(_COLORS)]
        ax.barh(y, won, height=h, color=c, label=it)
        ax.barh(y, -lost, height=h, color=c, alpha=0.45)
    ax.axvline(0, color="#333", lw=1)
    ax.set_yticks(base, tags)
    ax.xaxis.set_major_formatter(lambda v, _: f"{abs(v):g}")
    ax.set_xlabel("← votes lost with this tag   |   votes won with this tag →")
    ax.legend(loc="best", fontsize=9)
    ax.set_title("Reason tags")
    return fig


def figures(summary) -> dict:
    """Every chart: ``{"win_rates", "ranking", "heatmap", "reasons"}`` -> Figure."""
    return {
        "win_rates": win_rate_figure(summary),
        "ranking": ranking_figure(summary),
        "heatmap": heatmap_figure(summary),
        "reasons": reasons_figure(summary),
    }


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
    return f'<table class="wb-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


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
