"""Statistics on blind A/B votes: win rates, intervals, tests, rankings and rater checks.

Pure functions on a :class:`pandas.DataFrame` holding the vote CSV's columns (see
``workbench.votes``; this module never reads files). Pass *effective* votes
(``workbench.votes.effective_votes``): a changed vote must count once.

Vocabulary
----------
item
    What a trial compares: the checkpoint name, or the preset name when a plan compares
    presets of one checkpoint (``checkpoint_a == checkpoint_b``).
pair
    Two items, in the order they first appear in the votes (the plan's order), so tables
    keep their orientation while votes arrive. ``wins_a`` counts votes for the pair's
    first item, ``wins_b`` for its second.
decisive vote
    A vote with a preference (``choice`` "A" or "B"); ``choice == "none"`` is a tie.

Everything here is deterministic: the bootstrap takes an explicit ``seed``.

>>> s = summarize(votes)            # doctest: +SKIP
>>> s.pairs[["item_a", "item_b", "wins_a", "wins_b", "ties", "p_holm"]]  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import sparse
from scipy import stats as sps

from .errors import VoteError
from .votes import REASONS

#: columns this module needs (a subset of the vote CSV's header)
REQUIRED_COLUMNS = (
    "rater",
    "test_id",
    "trial_id",
    "reference",
    "sentence_id",
    "checkpoint_a",
    "checkpoint_b",
    "preset_a",
    "preset_b",
    "a_side",
    "choice",
)
#: reason tags a rater can attach to a vote (the vote store's list)
REASON_TAGS = REASONS
#: level used for votes without any reason tag in the per-tag breakdown
NO_REASON = "(no reason)"
#: significance level used for "settled" and for the votes-needed estimate
ALPHA = 0.05
#: power used for the votes-needed estimate
POWER = 0.8

_TEXT_COLUMNS = (*REQUIRED_COLUMNS, "vote_id", "reasons", "repeat_of", "winner")


# --------------------------------------------------------------------------- primitives


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Parameters
    ----------
    k : int
        Successes (e.g. wins), ``0 <= k <= n``.
    n : int
        Trials (e.g. decisive votes).
    confidence : float
        Two-sided coverage, e.g. 0.95.

    Returns
    -------
    (low, high) : tuple of float
        Bounds in [0, 1]; ``(nan, nan)`` when ``n == 0``.
    """
    if n <= 0:
        return (math.nan, math.nan)
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def sign_test(k: int, n: int) -> float:
    """Exact two-sided binomial test of ``k`` successes in ``n`` against p = 0.5.

    Returns the p-value (``nan`` when ``n == 0``). With p = 0.5 the distribution is
    symmetric, so the two-sided p-value is twice the smaller tail, capped at 1.
    """
    if n <= 0:
        return math.nan
    tail = min(k, n - k)
    return float(min(1.0, 2.0 * sps.binom.cdf(tail, n, 0.5)))


def sign_test_ties_split(wins: int, losses: int, ties: int) -> float:
    """Sign test with ties split evenly between the two sides.

    Each pair of ties adds one win and one loss; an odd tie left over is dropped (it
    cannot be split into whole votes). Returns the two-sided p-value.
    """
    half = ties // 2
    return sign_test(wins + half, wins + losses + 2 * half)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of p-values for multiple comparisons.

    Parameters
    ----------
    pvalues : array-like of float, shape (m,)
        Raw p-values; ``nan`` entries are left as ``nan`` and not counted in ``m``.

    Returns
    -------
    numpy.ndarray, shape (m,)
        Adjusted p-values in the input order, capped at 1.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    adjusted = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out[order] = np.minimum(adjusted, 1.0)
    return out


@lru_cache(maxsize=8)
def _critical_counts(alpha: float, max_n: int) -> np.ndarray:
    """For n = 1..max_n, the largest c with 2 * P(X <= c | n, 0.5) <= alpha (-1 if none)."""
    n = np.arange(1, max_n + 1, dtype=float)
    c = sps.binom.ppf(alpha / 2, n, 0.5)
    return np.where(2 * sps.binom.cdf(c, n, 0.5) <= alpha * (1 + 1e-9), c, c - 1)


def binomial_power(n, p: float, alpha: float = ALPHA) -> np.ndarray:
    """Power of the exact two-sided sign test (p0 = 0.5) with ``n`` trials when the true rate is ``p``.

    Parameters
    ----------
    n : int or array-like of int
        Number of decisive votes (>= 1).
    p : float
        True probability that the first item wins a decisive vote.
    alpha : float
        Significance level.

    Returns
    -------
    numpy.ndarray
        Probability of a p-value <= ``alpha``, same shape as ``n``.
    """
    n = np.asarray(n, dtype=int)
    c = _critical_counts(float(alpha), max(int(n.max(initial=1)), 1024))[n - 1]
    # reject when X <= c or X >= n - c
    return sps.binom.cdf(c, n, p) + sps.binom.sf(n - c - 1, n, p)


@lru_cache(maxsize=4096)
def votes_needed(p: float, *, alpha: float = ALPHA, power: float = POWER, max_n: int = 20000) -> int | None:
    """Decisive votes a sign test needs to detect a win rate ``p`` with the given power.

    Parameters
    ----------
    p : float
        Effect size as a win rate in [0, 1] (e.g. the observed one).
    alpha, power : float
        Two-sided significance level and wanted power.
    max_n : int
        Largest sample size searched exactly; beyond it the normal approximation is used.

    Returns
    -------
    int or None
        The smallest number of decisive votes whose exact test reaches ``power``;
        ``None`` when ``p`` is 0.5 or undefined (no number of votes would settle it).
    """
    if p is None or not np.isfinite(p) or abs(p - 0.5) < 1e-12:
        return None
    za, zb = sps.norm.ppf(1 - alpha / 2), sps.norm.ppf(power)
    approx = int(math.ceil(((za * 0.5 + zb * math.sqrt(p * (1 - p))) / (p - 0.5)) ** 2))
    # the exact answer is close to the normal approximation: search a window first
    for top in (min(max_n, 2 * approx + 64), max_n):
        n = np.arange(1, top + 1)
        hit = np.flatnonzero(binomial_power(n, p, alpha) >= power)
        if hit.size:
            return int(n[hit[0]])
    return approx


def bradley_terry(wins, *, prior: float = 0.0, max_iter: int = 10000, tol: float = 1e-10) -> np.ndarray:
    """Bradley-Terry strengths by Hunter's (2004) MM algorithm.

    ``P(i beats j) = s_i / (s_i + s_j)``.

    Parameters
    ----------
    wins : array-like, shape (..., k, k)
        ``wins[..., i, j]`` = times item i beat item j (a tie counts 0.5 to each side).
        Leading dimensions are fitted independently (used for the bootstrap).
    prior : float
        Virtual ties added between every pair of items. It keeps strengths finite when
        an item never won (or never lost) and ties all items into one connected design;
        0 gives the plain maximum-likelihood fit.
    max_iter, tol : int, float
        Iteration cap and convergence threshold on the largest change in log strength.

    Returns
    -------
    numpy.ndarray, shape (..., k)
        Strengths normalised to a geometric mean of 1 (log strengths sum to 0); an item
        with no win under ``prior=0`` gets strength 0.
    """
    w = np.array(wins, dtype=float)
    k = w.shape[-1]
    if k == 0:
        return np.zeros(w.shape[:-1])
    if prior:
        w = w + (prior / 2) * (1 - np.eye(k))
    games = w + np.swapaxes(w, -1, -2)
    won = w.sum(-1)
    s = np.ones(w.shape[:-1])
    for _ in range(max_iter):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = games / (s[..., :, None] + s[..., None, :])
        denom = np.where(games > 0, ratio, 0).sum(-1)
        new = np.where(denom > 0, won / np.where(denom > 0, denom, 1), s)
        new = new / new.sum(-1, keepdims=True) * k
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.abs(np.log(new) - np.log(s))
        s = new
        if np.nanmax(np.where(np.isinf(change), 0, change)) < tol:
            break
    with np.errstate(divide="ignore"):
        logs = np.log(s)
    finite = np.isfinite(logs)
    centre = np.where(finite, logs, 0).sum(-1, keepdims=True) / np.maximum(finite.sum(-1, keepdims=True), 1)
    return np.exp(logs - centre)


def cohen_kappa(x, y) -> float:
    """Cohen's kappa between two raters' labels on the same items.

    Parameters
    ----------
    x, y : sequence of hashable, same length
        Labels given by each rater, item by item.

    Returns
    -------
    float
        ``(p_o - p_e) / (1 - p_e)``; ``nan`` when there are no items or chance agreement is 1.
    """
    x, y = list(x), list(y)
    if len(x) != len(y):
        raise ValueError("cohen_kappa: both raters need the same number of labels")
    n = len(x)
    if n == 0:
        return math.nan
    labels = sorted(set(x) | set(y), key=str)
    po = sum(a == b for a, b in zip(x, y, strict=True)) / n
    pe = sum((x.count(c) / n) * (y.count(c) / n) for c in labels)
    if pe >= 1:
        return math.nan
    return (po - pe) / (1 - pe)


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa for many raters, allowing a different number of raters per item.

    Parameters
    ----------
    counts : array-like, shape (items, categories)
        ``counts[i, j]`` = raters who put item i in category j. Items rated by fewer than
        two raters are ignored.

    Returns
    -------
    float
        ``(P_bar - P_e) / (1 - P_e)``; ``nan`` when undefined.
    """
    c = np.asarray(counts, dtype=float)
    if c.ndim != 2:
        return math.nan
    n_i = c.sum(1)
    c, n_i = c[n_i >= 2], n_i[n_i >= 2]
    if c.shape[0] == 0:
        return math.nan
    p_i = ((c * c).sum(1) - n_i) / (n_i * (n_i - 1))
    p_bar = p_i.mean()
    p_j = c.sum(0) / n_i.sum()
    p_e = float((p_j * p_j).sum())
    if p_e >= 1:
        return math.nan
    return float((p_bar - p_e) / (1 - p_e))


# --------------------------------------------------------------------------- vote table


def prepare(votes: pd.DataFrame) -> pd.DataFrame:
    """Validate a vote table and add the derived columns every statistic uses.

    Parameters
    ----------
    votes : DataFrame
        Effective votes with (at least) :data:`REQUIRED_COLUMNS`.

    Returns
    -------
    DataFrame
        A copy with text columns as ``str`` and added columns ``item_a``, ``item_b``
        (what is compared), ``outcome`` (1.0 first item won, 0.0 second won, 0.5 tie),
        ``winner_item`` (item name or "tie"), ``chose_a_slot`` (bool; the rater picked
        screen slot A) and ``tags`` (tuple of reason tags).

    Raises
    ------
    VoteError
        A required column is missing, or a row has an impossible ``a_side``/``choice``.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in votes.columns]
    if missing:
        raise VoteError(
            f"vote table has no column {', '.join(missing)}; the vote CSV header must include "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )
    df = votes.reset_index(drop=True).copy()
    for c in _TEXT_COLUMNS:
        if c in df.columns:
            df[c] = df[c].astype(object).where(df[c].notna(), "").astype(str).str.strip()
        else:
            df[c] = ""
    choice = df["choice"].where(df["choice"].str.lower() != "none", "none")
    side = df["a_side"].str.upper()
    choice = choice.where(choice == "none", choice.str.upper())
    for col, values, ok in (("a_side", side, ("A", "B")), ("choice", choice, ("A", "B", "none"))):
        bad = ~values.isin(ok)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            vid = df.at[i, "vote_id"] or f"#{i + 1}"
            raise VoteError(
                f"vote {vid} (data row {i + 1}): column {col} is {df.at[i, col]!r}; expected one of {', '.join(ok)}"
            )
    df["a_side"], df["choice"] = side, choice
    same = df["checkpoint_a"] == df["checkpoint_b"]
    df["item_a"] = df["checkpoint_a"].where(~same, df["preset_a"])
    df["item_b"] = df["checkpoint_b"].where(~same, df["preset_b"])
    tie = choice == "none"
    first = (~tie) & (choice == side)
    df["outcome"] = np.where(tie, 0.5, np.where(first, 1.0, 0.0))
    df["winner_item"] = np.where(tie, "tie", np.where(first, df["item_a"], df["item_b"]))
    df["chose_a_slot"] = choice == "A"
    df["tags"] = [tuple(t for t in (p.strip() for p in r.split(";")) if t) for r in df["reasons"]]
    for c in ("played_a_s", "played_b_s", "decision_s"):
        df[c] = pd.to_numeric(df[c], errors="coerce") if c in df.columns else np.nan
    return df


#: columns the pair statistics read (kept alone when grouping, which copies frames)
_PAIR_INPUT = ["item_a", "item_b", "outcome", "reference", "sentence_id", "preset_a", "checkpoint_a", "checkpoint_b"]


def _is_prepared(df: pd.DataFrame) -> bool:
    return "outcome" in df.columns and "item_a" in df.columns


def _prep(votes: pd.DataFrame) -> pd.DataFrame:
    return votes if _is_prepared(votes) else prepare(votes)


def item_order(votes: pd.DataFrame) -> list[str]:
    """Items in the order they first appear (``item_a`` before ``item_b`` of each row)."""
    df = _prep(votes)
    seen: dict[str, None] = {}
    for a, b in zip(df["item_a"], df["item_b"], strict=True):
        if a != b:
            seen.setdefault(a)
            seen.setdefault(b)
    return list(seen)


def _complete(order: list[str] | None, df: pd.DataFrame) -> list[str]:
    """``order`` followed by any item of ``df`` it lacks (first-appearance order when None)."""
    found = item_order(df)
    if not order:
        return found
    return list(order) + [it for it in found if it not in order]


def _oriented(df: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Rows as (first, second, first_outcome) with first/second in ``order``; self-pairs dropped."""
    rank = {it: i for i, it in enumerate(order)}
    df = df[df["item_a"] != df["item_b"]]
    swap = np.array([rank[a] > rank[b] for a, b in zip(df["item_a"], df["item_b"], strict=True)], dtype=bool)
    out = df.copy()
    out["first"] = np.where(swap, df["item_b"], df["item_a"])
    out["second"] = np.where(swap, df["item_a"], df["item_b"])
    out["first_outcome"] = np.where(swap, 1.0 - df["outcome"], df["outcome"])
    return out


PAIR_COLUMNS = [
    "item_a",
    "item_b",
    "wins_a",
    "wins_b",
    "ties",
    "n",
    "win_rate",
    "ci_low",
    "ci_high",
    "score",
    "p_value",
    "p_ties_split",
    "p_holm",
    "settled",
    "votes_needed",
    "more_votes",
    "example_reference",
    "example_sentence",
    "example_preset",
    "example_checkpoints",
]


def _example(group: pd.DataFrame) -> tuple[str, str, str, str]:
    """The clips with most votes in ``group`` (first seen on ties), for links to them.

    Returns ``(reference, sentence_id, preset, checkpoints)``: ``preset`` is the first
    side's preset and ``checkpoints`` the comma-joined checkpoints of those votes.
    """
    if group.empty:
        return ("", "", "", "")
    keys = zip(group["reference"], group["sentence_id"], group["preset_a"], strict=True)
    counts: dict[tuple, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    ref, sent, preset = max(counts, key=lambda key: counts[key])
    sel = group[(group["reference"] == ref) & (group["sentence_id"] == sent) & (group["preset_a"] == preset)]
    checkpoints = dict.fromkeys([*sel["checkpoint_a"], *sel["checkpoint_b"]])
    return (ref, sent, preset, ",".join(checkpoints))


def _pair_row(a: str, b: str, g: pd.DataFrame) -> dict:
    o = g["first_outcome"].to_numpy()
    wa, wb, t = int((o == 1).sum()), int((o == 0).sum()), int((o == 0.5).sum())
    n = wa + wb + t
    dec = wa + wb
    rate = wa / dec if dec else math.nan
    lo, hi = wilson_interval(wa, dec)
    needed = votes_needed(rate) if dec else None
    if needed is None:
        more = None
    else:
        tie_rate = t / n if n else 0.0
        short = max(0, needed - dec)
        more = int(math.ceil(short / (1 - tie_rate))) if tie_rate < 1 else None
    ref, sent, preset, checkpoints = _example(g)
    return {
        "item_a": a,
        "item_b": b,
        "wins_a": wa,
        "wins_b": wb,
        "ties": t,
        "n": n,
        "win_rate": rate,
        "ci_low": lo,
        "ci_high": hi,
        "score": (wa + t / 2) / n if n else math.nan,
        "p_value": sign_test(wa, dec),
        "p_ties_split": sign_test_ties_split(wa, wb, t) if n else math.nan,
        "votes_needed": needed,
        "more_votes": more,
        "example_reference": ref,
        "example_sentence": sent,
        "example_preset": preset,
        "example_checkpoints": checkpoints,
    }


def pair_table(votes: pd.DataFrame, *, order: list[str] | None = None, alpha: float = ALPHA) -> pd.DataFrame:
    """Head-to-head results for every pair of items that met in the votes.

    Parameters
    ----------
    votes : DataFrame
        Effective votes (raw or :func:`prepare`-d).
    order : list of str, optional
        Item order deciding each pair's orientation (default: first appearance).
    alpha : float
        Level for ``settled`` (Holm-adjusted p-value below it).

    Returns
    -------
    DataFrame
        One row per pair (columns :data:`PAIR_COLUMNS`): ``wins_a``/``wins_b``/``ties``
        and ``n`` (votes); ``win_rate`` of ``item_a`` among decisive votes with its Wilson
        95% interval ``ci_low``..``ci_high``; ``score`` = (wins + ties / 2) / n;
        ``p_value`` exact two-sided sign test without ties, ``p_ties_split`` with ties
        split; ``p_holm`` Holm-adjusted ``p_value`` across the pairs of this table;
        ``votes_needed`` decisive votes for 80% power at the observed win rate (None at
        50% or with no decisive vote) and ``more_votes`` the further votes (ties
        included at the observed tie rate) to reach it; ``example_*`` the reference,
        sentence, preset and checkpoints with most votes (for links to the clips).
    """
    df = _prep(votes)[_PAIR_INPUT]
    order = _complete(order, df)
    od = _oriented(df, order)
    rows = []
    rank = {it: i for i, it in enumerate(order)}
    if not od.empty:
        for (a, b), g in od.groupby(["first", "second"], sort=False):
            rows.append(_pair_row(a, b, g))
    rows.sort(key=lambda r: (rank.get(r["item_a"], 0), rank.get(r["item_b"], 0)))
    out = pd.DataFrame(rows, columns=[c for c in PAIR_COLUMNS if c not in ("p_holm", "settled")])
    out.insert(PAIR_COLUMNS.index("p_holm"), "p_holm", holm(out["p_value"].to_numpy()) if len(out) else [])
    out.insert(PAIR_COLUMNS.index("settled"), "settled", (out["p_holm"] < alpha).astype(bool))
    for c in ("votes_needed", "more_votes"):
        out[c] = out[c].astype("Int64")
    return out[PAIR_COLUMNS]


def win_matrix(votes: pd.DataFrame, order: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Items and the matrix ``W[i, j]`` of i's wins over j (ties count 0.5 each way)."""
    df = _prep(votes)
    order = _complete(order, df)
    idx = {it: i for i, it in enumerate(order)}
    w = np.zeros((len(order), len(order)))
    for a, b, o in zip(df["item_a"], df["item_b"], df["outcome"], strict=True):
        if a == b or a not in idx or b not in idx:
            continue
        w[idx[a], idx[b]] += o
        w[idx[b], idx[a]] += 1 - o
    return order, w


RANKING_COLUMNS = [
    "rank",
    "item",
    "strength",
    "ci_low",
    "ci_high",
    "p_best",
    "wins",
    "losses",
    "ties",
    "n",
    "score",
]


def ranking(
    votes: pd.DataFrame,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    prior: float = 1.0,
    order: list[str] | None = None,
) -> pd.DataFrame:
    """Bradley-Terry ranking with bootstrap intervals.

    Parameters
    ----------
    votes : DataFrame
        Effective votes.
    n_boot : int
        Bootstrap resamples of the votes (with replacement), 0 for none.
    seed : int
        Seed of the bootstrap's random generator (same seed, same intervals).
    confidence : float
        Coverage of the percentile intervals.
    prior : float
        Virtual ties per pair of items (see :func:`bradley_terry`).
    order : list of str, optional
        Item order (default: first appearance).

    Returns
    -------
    DataFrame
        One row per item, strongest first (columns :data:`RANKING_COLUMNS`): ``strength``
        (geometric mean of all items = 1; ``s_i / (s_i + s_j)`` is the modelled chance
        that i beats j), its bootstrap interval ``ci_low``..``ci_high``, ``p_best`` the
        share of resamples where the item ranks first, and its vote totals.
    """
    df = _prep(votes)
    items, w = win_matrix(df, order)
    k = len(items)
    if k == 0:
        return pd.DataFrame(columns=RANKING_COLUMNS)
    s = bradley_terry(w, prior=prior)
    lo = hi = np.full(k, np.nan)
    p_best = np.full(k, np.nan)
    if n_boot > 0:
        boot = _bootstrap_strengths(df, items, n_boot=n_boot, seed=seed, prior=prior)
        q = (1 - confidence) / 2
        lo, hi = np.quantile(boot, q, axis=0), np.quantile(boot, 1 - q, axis=0)
        best = np.argmax(boot, axis=1)
        p_best = np.bincount(best, minlength=k) / n_boot
    totals = _item_totals(df, items)
    out = pd.DataFrame(
        {
            "item": items,
            "strength": s,
            "ci_low": lo,
            "ci_high": hi,
            "p_best": p_best,
            "wins": [totals[it][0] for it in items],
            "losses": [totals[it][1] for it in items],
            "ties": [totals[it][2] for it in items],
        }
    )
    out["n"] = out["wins"] + out["losses"] + out["ties"]
    out["score"] = (out["wins"] + out["ties"] / 2) / out["n"].where(out["n"] > 0)
    out = out.sort_values("strength", ascending=False, kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, k + 1))
    return out[RANKING_COLUMNS]


def _bootstrap_strengths(df: pd.DataFrame, items: list[str], *, n_boot: int, seed: int, prior: float) -> np.ndarray:
    """Strengths refitted on ``n_boot`` resamples of the votes, shape (n_boot, k).

    Resampling votes with replacement is the same as drawing multinomial counts of
    each distinct (pair, outcome) cell, which keeps this fast for any number of votes.
    """
    idx = {it: i for i, it in enumerate(items)}
    k = len(items)
    keep = (df["item_a"] != df["item_b"]).to_numpy()
    cells = pd.DataFrame(
        {
            "i": [idx[a] for a in df["item_a"][keep]],
            "j": [idx[b] for b in df["item_b"][keep]],
            "o": df["outcome"][keep].to_numpy(),
        }
    )
    if cells.empty:
        return np.ones((n_boot, k))
    counts = cells.value_counts(sort=False).reset_index()
    n = int(counts["count"].sum())
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts["count"].to_numpy() / n, size=n_boot)  # (B, cells)
    contrib = np.zeros((len(counts), k, k))
    for c, (i, j, o) in enumerate(zip(counts["i"], counts["j"], counts["o"], strict=True)):
        contrib[c, i, j] += o
        contrib[c, j, i] += 1 - o
    w = np.einsum("bc,cij->bij", draws, contrib)
    return bradley_terry(w, prior=prior, max_iter=2000, tol=1e-8)


def _item_totals(df: pd.DataFrame, items: list[str]) -> dict[str, tuple[int, int, int]]:
    tot = {it: [0, 0, 0] for it in items}
    for a, b, o in zip(df["item_a"], df["item_b"], df["outcome"], strict=True):
        if a == b:
            continue
        for it, won in ((a, o), (b, 1 - o)):
            if it in tot:
                tot[it][0 if won == 1 else 1 if won == 0 else 2] += 1
    return {k: tuple(v) for k, v in tot.items()}


# --------------------------------------------------------------------------- breakdowns

#: factors a breakdown can group by, with the column (or the reason tags) behind each
FACTORS = {"reference": "reference", "sentence": "sentence_id", "rater": "rater", "reason": "tags", "clip": None}


def _level_frame(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """``df`` with a ``level`` column for factor ``by`` (a vote appears once per reason tag)."""
    if by not in FACTORS:
        raise ValueError(f"unknown breakdown {by!r}; choose from {', '.join(FACTORS)}")
    if by == "reason":
        out = df.assign(level=[list(t) or [NO_REASON] for t in df["tags"]]).explode("level")
        known = {t: i for i, t in enumerate(REASON_TAGS)}
        rank = out["level"].map(lambda t: (1, 0, "") if t == NO_REASON else (0, known.get(t, len(known)), t))
        return out.iloc[sorted(range(len(out)), key=lambda i: rank.iloc[i])].reset_index(drop=True)
    if by == "clip":
        return df.assign(level=df["reference"] + " / " + df["sentence_id"])
    return df.assign(level=df[FACTORS[by]])


def breakdown(votes: pd.DataFrame, by: str, *, order: list[str] | None = None) -> pd.DataFrame:
    """Head-to-head results of every pair within each level of a factor.

    Parameters
    ----------
    votes : DataFrame
        Effective votes.
    by : {"reference", "sentence", "rater", "reason", "clip"}
        Factor. For "reason" a vote counts once under each of its tags (and under
        :data:`NO_REASON` when it has none), so levels overlap; "clip" is the pair
        (reference, sentence), shown as "reference / sentence".
    order : list of str, optional
        Item order for pair orientation (default: first appearance in all votes).

    Returns
    -------
    DataFrame
        :func:`pair_table` columns (Holm within each level) with a leading ``level``.
    """
    df = _prep(votes)
    order = _complete(order, df)
    lv = _level_frame(df, by)[[*_PAIR_INPUT, "level"]]
    parts = [pair_table(g, order=order).assign(level=level) for level, g in lv.groupby("level", sort=False)]
    cols = ["level", *PAIR_COLUMNS]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]


def item_scores(votes: pd.DataFrame, by: str, *, order: list[str] | None = None) -> pd.DataFrame:
    """Each item's record against all others within each level of a factor (heatmap data).

    Returns
    -------
    DataFrame
        Columns ``level, item, wins, losses, ties, n, score`` with
        ``score = (wins + ties / 2) / n`` in [0, 1] (0.5 = even), plus ``example_sentence``,
        ``example_preset`` and ``example_checkpoints`` (comma-joined: the item's and its
        opponents' checkpoints there) to link a cell to its clips.
    """
    df = _prep(votes)
    order = _complete(order, df)
    lv = _level_frame(df, by)
    lv = lv[lv["item_a"] != lv["item_b"]]
    rows = []
    for level, g in lv.groupby("level", sort=False):
        for it in order:
            mine = g[(g["item_a"] == it) | (g["item_b"] == it)]
            if mine.empty:
                continue
            o = np.where(mine["item_a"] == it, mine["outcome"], 1 - mine["outcome"])
            w, l_, t = int((o == 1).sum()), int((o == 0).sum()), int((o == 0.5).sum())
            _, sent, preset, _ = _example(mine)
            sel = mine[mine["sentence_id"] == sent]
            checkpoints = ",".join(dict.fromkeys([*sel["checkpoint_a"], *sel["checkpoint_b"]]))
            rows.append(
                {
                    "level": level,
                    "item": it,
                    "wins": w,
                    "losses": l_,
                    "ties": t,
                    "n": w + l_ + t,
                    "score": (w + t / 2) / (w + l_ + t),
                    "example_sentence": sent,
                    "example_preset": preset,
                    "example_checkpoints": checkpoints,
                }
            )
    cols = [
        "level",
        "item",
        "wins",
        "losses",
        "ties",
        "n",
        "score",
        "example_sentence",
        "example_preset",
        "example_checkpoints",
    ]
    return pd.DataFrame(rows, columns=cols)


def reason_table(votes: pd.DataFrame, *, by: str | None = None, order: list[str] | None = None) -> pd.DataFrame:
    """How often each reason tag was given when an item won, lost or tied.

    Tags describe the vote, so "accent" on a win says the rater heard the winner's
    accent as better, and "dull/flat" on a loss says the loser sounded dull.

    Parameters
    ----------
    votes : DataFrame
        Effective votes.
    by : {"reference", "sentence", "rater"}, optional
        Split the counts by this factor too (column ``level``).

    Returns
    -------
    DataFrame
        Columns ``[level,] tag, item, won, lost, tied, n`` where ``won`` counts decisive
        votes the item won with that tag, ``lost`` those it lost, ``tied`` ties with the
        tag; ``share_won`` = won / (won + lost). Only tags that were used appear.
    """
    df = _prep(votes)
    order = _complete(order, df)
    df = df[(df["item_a"] != df["item_b"]) & (df["tags"].map(len) > 0)]
    groups = [(None, df)] if by is None else list(_level_frame(df, by).groupby("level", sort=False))
    rows = []
    known = {t: i for i, t in enumerate(REASON_TAGS)}
    for level, g in groups:
        tags = sorted({t for ts in g["tags"] for t in ts}, key=lambda t: (known.get(t, len(known)), t))
        for tag in tags:
            sub = g[g["tags"].map(lambda ts, tag=tag: tag in ts)]
            for it in order:
                mine = sub[(sub["item_a"] == it) | (sub["item_b"] == it)]
                if mine.empty:
                    continue
                o = np.where(mine["item_a"] == it, mine["outcome"], 1 - mine["outcome"])
                won, lost, tied = int((o == 1).sum()), int((o == 0).sum()), int((o == 0.5).sum())
                row = {"tag": tag, "item": it, "won": won, "lost": lost, "tied": tied, "n": won + lost + tied}
                row["share_won"] = won / (won + lost) if won + lost else math.nan
                if by is not None:
                    row = {"level": level, **row}
                rows.append(row)
    cols = (["level"] if by is not None else []) + ["tag", "item", "won", "lost", "tied", "n", "share_won"]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- raters


def position_bias(votes: pd.DataFrame, *, by_rater: bool = True) -> pd.DataFrame:
    """How often raters pick screen slot A among decisive votes, and whether that is chance.

    Sides are counterbalanced, so an unbiased rater picks slot A about half the time
    whatever the items; a rate far from 0.5 means the slot, not the sound, drove votes.

    Returns
    -------
    DataFrame
        Columns ``rater, decisive, chose_a, a_rate, ci_low, ci_high, p_value, ties``;
        the first row (rater "all") pools every vote, then one row per rater.
        ``p_value`` is the exact two-sided sign test of ``chose_a`` of ``decisive``.
    """
    df = _prep(votes)
    groups = [("all", df)]
    if by_rater:
        groups += list(df.groupby("rater", sort=False))
    rows = []
    for rater, g in groups:
        dec = g[g["choice"] != "none"]
        k, n = int(dec["chose_a_slot"].sum()), len(dec)
        lo, hi = wilson_interval(k, n)
        rows.append(
            {
                "rater": rater,
                "decisive": n,
                "chose_a": k,
                "a_rate": k / n if n else math.nan,
                "ci_low": lo,
                "ci_high": hi,
                "p_value": sign_test(k, n),
                "ties": int((g["choice"] == "none").sum()),
            }
        )
    return pd.DataFrame(
        rows, columns=["rater", "decisive", "chose_a", "a_rate", "ci_low", "ci_high", "p_value", "ties"]
    )


def repeat_pairs(votes: pd.DataFrame) -> pd.DataFrame:
    """Each repeated trial matched with the original it repeats (same rater and test).

    Returns
    -------
    DataFrame
        Columns ``rater, test_id, trial_id, repeat_trial_id, first, repeat, agree,
        same_slot``: the winners (item or "tie") of the original and the repeat, whether
        they agree, and whether the rater chose the same screen slot both times (sides
        are swapped on a repeat, so the same slot with a preference means a flip).
    """
    df = _prep(votes)
    key = {(r, t, tr): i for i, (r, t, tr) in enumerate(zip(df["rater"], df["test_id"], df["trial_id"], strict=True))}
    rows = []
    for i in np.flatnonzero((df["repeat_of"] != "").to_numpy()):
        j = key.get((df.at[i, "rater"], df.at[i, "test_id"], df.at[i, "repeat_of"]))
        if j is None or j == i:
            continue
        rows.append(
            {
                "rater": df.at[i, "rater"],
                "test_id": df.at[i, "test_id"],
                "trial_id": df.at[j, "trial_id"],
                "repeat_trial_id": df.at[i, "trial_id"],
                "first": df.at[j, "winner_item"],
                "repeat": df.at[i, "winner_item"],
                "agree": df.at[j, "winner_item"] == df.at[i, "winner_item"],
                "same_slot": df.at[j, "choice"] != "none" and df.at[j, "choice"] == df.at[i, "choice"],
            }
        )
    cols = ["rater", "test_id", "trial_id", "repeat_trial_id", "first", "repeat", "agree", "same_slot"]
    return pd.DataFrame(rows, columns=cols)


def rater_consistency(votes: pd.DataFrame) -> pd.DataFrame:
    """Self-consistency of each rater on repeated trials (same pair, sides swapped).

    Returns
    -------
    DataFrame
        Columns ``rater, repeats, agree, rate, ci_low, ci_high, same_slot, kappa``: the
        first row (rater "all") pools every rater. ``rate`` = agree / repeats with its
        Wilson interval; ``kappa`` is Cohen's kappa between first and repeated answers
        (chance-corrected); ``same_slot`` counts repeats answered with the same screen slot.
    """
    rp = repeat_pairs(votes)
    groups = [("all", rp)] + (list(rp.groupby("rater", sort=False)) if not rp.empty else [])
    rows = []
    for rater, g in groups:
        n, k = len(g), int(g["agree"].sum()) if len(g) else 0
        lo, hi = wilson_interval(k, n)
        rows.append(
            {
                "rater": rater,
                "repeats": n,
                "agree": k,
                "rate": k / n if n else math.nan,
                "ci_low": lo,
                "ci_high": hi,
                "same_slot": int(g["same_slot"].sum()) if n else 0,
                "kappa": cohen_kappa(g["first"], g["repeat"]) if n else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=["rater", "repeats", "agree", "rate", "ci_low", "ci_high", "same_slot", "kappa"])


def _stimulus_labels(df: pd.DataFrame) -> pd.DataFrame:
    """One answer per (rater, stimulus): the original vote, not its repeat.

    A stimulus is what a rater heard: test, reference, sentence, the two items and their
    presets. The label is "first"/"second" (the winner in sorted item order) or "tie".
    """
    df = df[df["item_a"] != df["item_b"]]
    df = df.sort_values("repeat_of", key=lambda s: s != "", kind="stable")  # originals first
    lo = np.minimum(df["item_a"], df["item_b"])
    hi = np.maximum(df["item_a"], df["item_b"])
    presets = [";".join(sorted({a, b})) for a, b in zip(df["preset_a"], df["preset_b"], strict=True)]
    stim = pd.Series(
        list(zip(df["test_id"], df["reference"], df["sentence_id"], lo, hi, presets, strict=True)), index=df.index
    )
    label = np.where(df["winner_item"] == "tie", "tie", np.where(df["winner_item"] == lo, "first", "second"))
    out = pd.DataFrame({"rater": df["rater"], "stimulus": stim, "label": label})
    return out.drop_duplicates(["rater", "stimulus"], keep="first")


def rater_agreement(votes: pd.DataFrame) -> tuple[pd.DataFrame, float, int]:
    """Agreement between raters on the stimuli they both judged.

    Returns
    -------
    pairs : DataFrame
        One row per pair of raters with a shared stimulus: ``rater_1, rater_2, shared,
        agree, rate`` (percent agreement as a fraction) and ``kappa`` (Cohen's kappa over
        the labels first-item / second-item / tie).
    fleiss : float
        Fleiss' kappa over every stimulus judged by two or more raters (``nan`` if none).
    n_stimuli : int
        Number of such stimuli.
    """
    df = _prep(votes)
    lab = _stimulus_labels(df)
    cols = ["rater_1", "rater_2", "shared", "agree", "rate", "kappa"]
    if lab.empty:
        return pd.DataFrame(columns=cols), math.nan, 0
    # one-hot answers as sparse (stimulus x rater) matrices, one per label; every pairwise
    # count is then a matrix product (fast for hundreds of raters)
    s_idx, _ = pd.factorize(lab["stimulus"])
    r_idx, raters = pd.factorize(lab["rater"])
    shape = (int(s_idx.max()) + 1, len(raters))
    onehot = []
    for c in ("first", "second", "tie"):
        m = (lab["label"] == c).to_numpy()
        onehot.append(sparse.csr_matrix((np.ones(int(m.sum())), (s_idx[m], r_idx[m])), shape=shape))
    rated = onehot[0] + onehot[1] + onehot[2]
    shared = (rated.T @ rated).toarray()
    agree = sum((o.T @ o).toarray() for o in onehot)
    # margins[c][i, j]: stimuli shared with j that i labelled c
    margins = [(o.T @ rated).toarray() for o in onehot]
    i, j = np.triu_indices(len(raters), k=1)
    keep = shared[i, j] > 0
    i, j = i[keep], j[keep]
    n = shared[i, j]
    po = agree[i, j] / n
    pe = sum(m[i, j] * m[j, i] for m in margins) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(pe < 1, (po - pe) / (1 - pe), np.nan)
    pairs = pd.DataFrame(
        {
            "rater_1": np.asarray(raters)[i],
            "rater_2": np.asarray(raters)[j],
            "shared": n.astype(int),
            "agree": agree[i, j].astype(int),
            "rate": po,
            "kappa": kappa,
        },
        columns=cols,
    )
    counts = np.stack([np.asarray(o.sum(1)).ravel() for o in onehot], axis=1)
    multi = counts.sum(1) >= 2
    return pairs, fleiss_kappa(counts[multi]), int(multi.sum())


def rater_table(votes: pd.DataFrame) -> pd.DataFrame:
    """One row per rater: votes, ties, slot-A rate, self-consistency and typical timing.

    Returns
    -------
    DataFrame
        Columns ``rater, votes, ties, a_rate, p_position, repeats, consistency,
        median_decision_s, median_played_s`` (seconds; played = both slots together).
    """
    df = _prep(votes)
    pos = position_bias(df).set_index("rater")
    con = rater_consistency(df).set_index("rater")
    rows = []
    for rater, g in df.groupby("rater", sort=False):
        played = (g["played_a_s"] + g["played_b_s"]).dropna()
        rows.append(
            {
                "rater": rater,
                "votes": len(g),
                "ties": int((g["choice"] == "none").sum()),
                "a_rate": pos.at[rater, "a_rate"],
                "p_position": pos.at[rater, "p_value"],
                "repeats": int(con.at[rater, "repeats"]) if rater in con.index else 0,
                "consistency": con.at[rater, "rate"] if rater in con.index else math.nan,
                "median_decision_s": float(g["decision_s"].median()) if g["decision_s"].notna().any() else math.nan,
                "median_played_s": float(played.median()) if len(played) else math.nan,
            }
        )
    cols = [
        "rater",
        "votes",
        "ties",
        "a_rate",
        "p_position",
        "repeats",
        "consistency",
        "median_decision_s",
        "median_played_s",
    ]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- summary


@dataclass
class Summary:
    """Every statistic of one selection of votes (a test, or all votes).

    Built by :func:`summarize`; the Results tab and the report CLI both render it, so
    they show the same numbers.
    """

    test_id: str | None  # None: all votes
    n_votes: int  # effective votes in the selection
    n_ties: int
    items: list[str]  # in first-appearance order
    kind: str  # "checkpoints", "presets", "mixed" or "none" (no votes)
    raters: list[str]
    references: list[str]
    sentences: list[str]
    tests: list[str]  # every test id present in the votes given (before selection)
    pairs: pd.DataFrame  # pair_table
    ranking: pd.DataFrame  # ranking (Bradley-Terry)
    by_reference: pd.DataFrame  # breakdown(..., "reference")
    by_sentence: pd.DataFrame
    by_rater: pd.DataFrame
    by_reason: pd.DataFrame
    by_clip: pd.DataFrame  # breakdown(..., "clip"): per reference and sentence
    heatmap: pd.DataFrame  # item_scores(..., "reference")
    reasons: pd.DataFrame  # reason_table overall
    reasons_by_reference: pd.DataFrame
    position: pd.DataFrame  # position_bias
    consistency: pd.DataFrame  # rater_consistency
    agreement: pd.DataFrame  # rater_agreement pairs
    fleiss_kappa: float
    fleiss_stimuli: int
    raters_table: pd.DataFrame  # rater_table
    n_boot: int
    seed: int
    prior: float
    extra: dict = field(default_factory=dict)  # provenance added by callers (file, superseded rows, ...)

    @property
    def empty(self) -> bool:
        return self.n_votes == 0


def select_test(votes: pd.DataFrame, test_id: str | None) -> pd.DataFrame:
    """The votes of one test (all votes when ``test_id`` is None or empty)."""
    if not test_id:
        return votes
    return votes[votes["test_id"].astype(str) == str(test_id)]


def summarize(
    votes: pd.DataFrame,
    test_id: str | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    prior: float = 1.0,
) -> Summary:
    """Compute every statistic for one test (or all votes).

    Parameters
    ----------
    votes : DataFrame
        Effective votes (``workbench.votes.effective_votes``), any number of tests.
    test_id : str, optional
        Restrict to this test; None for all votes. A test without votes gives an empty
        summary (``summary.empty``), not an error.
    n_boot, seed, prior
        Bradley-Terry bootstrap resamples, its seed and the virtual ties per pair.

    Returns
    -------
    Summary
    """
    df = prepare(votes)
    tests = list(dict.fromkeys(t for t in df["test_id"] if t))
    df = select_test(df, test_id).reset_index(drop=True)
    order = item_order(df)
    same = df["checkpoint_a"] == df["checkpoint_b"]
    kind = "none" if df.empty else "presets" if same.all() else "checkpoints" if not same.any() else "mixed"
    agreement, fk, fk_n = rater_agreement(df)
    return Summary(
        test_id=test_id or None,
        n_votes=len(df),
        n_ties=int((df["choice"] == "none").sum()),
        items=order,
        kind=kind,
        raters=list(dict.fromkeys(df["rater"])),
        references=list(dict.fromkeys(df["reference"])),
        sentences=list(dict.fromkeys(df["sentence_id"])),
        tests=tests,
        pairs=pair_table(df, order=order),
        ranking=ranking(df, n_boot=n_boot, seed=seed, prior=prior, order=order),
        by_reference=breakdown(df, "reference", order=order),
        by_sentence=breakdown(df, "sentence", order=order),
        by_rater=breakdown(df, "rater", order=order),
        by_reason=breakdown(df, "reason", order=order),
        by_clip=breakdown(df, "clip", order=order),
        heatmap=item_scores(df, "reference", order=order),
        reasons=reason_table(df, order=order),
        reasons_by_reference=reason_table(df, by="reference", order=order),
        position=position_bias(df),
        consistency=rater_consistency(df),
        agreement=agreement,
        fleiss_kappa=fk,
        fleiss_stimuli=fk_n,
        raters_table=rater_table(df),
        n_boot=n_boot,
        seed=seed,
        prior=prior,
    )
