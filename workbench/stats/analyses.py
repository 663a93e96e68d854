"""Vote analyses on DataFrames: head-to-head verdicts, rankings with tiers, exploratory breakdowns.

Input is a table with the vote CSV's columns (``workbench.votes``), effective votes
only (a changed vote counts once). :func:`prepare` validates it and adds the columns
everything else reads.

Vocabulary
----------
item
    What a trial compares: the checkpoint, or the preset when a trial compares two
    presets of one checkpoint. ``kind`` is "checkpoints" or "presets"; the two are
    analysed and ranked separately.
pair
    Two items in the order they first appear (the plan's order); ``wins_a`` counts votes
    for ``item_a``.
decisive vote
    A vote with a preference; "none" is a tie. Ties are counted and shown but carry no
    preference, so the verdict uses decisive votes.
counted vote
    ``trial_kind == "test"`` between two different items. Repeats feed rater
    consistency, controls (the same clip twice) rater screening; training never counts.
clip
    Reference x sentence: with the rater, the unit votes cluster in.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import VoteTableError
from ..votes import REASONS, TRIAL_KINDS
from . import planning
from .primitives import (
    ALPHA,
    bradley_terry,
    holm,
    holm_divisors,
    sequential_boundary,
    sign_test,
    t_quantile_for,
    wilson_bounds,
)

#: columns the analyses need (a subset of the vote CSV's required columns)
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
#: an item with fewer decisive votes than this is marked preliminary in rankings
MIN_ITEM_VOTES = 10
#: item kinds, ranked separately
KINDS = ("checkpoints", "presets")

_TEXT_COLUMNS = (
    *REQUIRED_COLUMNS,
    "vote_id",
    "reasons",
    "repeat_of",
    "winner",
    "trial_kind",
    "rater_role",
    "take_a",
    "take_b",
)


# --------------------------------------------------------------------------- preparing


def prepare(votes: pd.DataFrame) -> pd.DataFrame:
    """Validate a vote table and add the derived columns every analysis uses.

    Optional columns may be missing (``trial_kind`` is derived from ``repeat_of``,
    ``rater_role`` defaults to "rater").

    Returns
    -------
    DataFrame
        A copy (file order kept) with text columns as ``str`` and added columns
        ``kind`` ("checkpoints"/"presets"), ``item_a``/``item_b``, ``outcome`` (1.0 first
        item won, 0.0 second, 0.5 tie), ``winner_item`` (item or "tie"), ``chose_a_slot``,
        ``clip`` ("reference / sentence"), ``counted`` (a test trial between two
        different items), ``tags`` (tuple of reason tags), numeric seconds
        ``played_a_s, played_b_s, decision_s`` and counts ``fetched_a, fetched_b`` (nan
        when unknown).

    Raises
    ------
    VoteTableError
        A required column is missing, or a cell is impossible (names row and column).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in votes.columns]
    if missing:
        raise VoteTableError(
            f"vote table has no column {', '.join(missing)}; a vote table needs {', '.join(REQUIRED_COLUMNS)}"
        )
    df = votes.reset_index(drop=True).copy()
    for c in _TEXT_COLUMNS:
        if c in df.columns:
            df[c] = df[c].astype(object).where(df[c].notna(), "").astype(str).str.strip()
        else:
            df[c] = ""
    choice = df["choice"].where(df["choice"].str.lower() != "none", "none")
    choice = choice.where(choice == "none", choice.str.upper())
    side = df["a_side"].str.upper()
    kind = df["trial_kind"].str.lower()
    kind = kind.where(kind != "", np.where(df["repeat_of"] != "", "repeat", "test"))
    role = df["rater_role"].str.lower().replace("", "rater")
    for col, values, ok in (
        ("a_side", side, ("A", "B")),
        ("choice", choice, ("A", "B", "none")),
        ("trial_kind", kind, TRIAL_KINDS),
        ("rater_role", role, ("rater", "admin")),
    ):
        bad = ~values.isin(ok)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            vid = df.at[i, "vote_id"] or f"#{i + 1}"
            raise VoteTableError(
                f"vote {vid} (data row {i + 1}): column {col} is {df.at[i, col]!r}; expected one of {', '.join(ok)}"
            )
    df["a_side"], df["choice"], df["trial_kind"], df["rater_role"] = side, choice, kind, role
    same = df["checkpoint_a"] == df["checkpoint_b"]
    df["kind"] = np.where(same, "presets", "checkpoints")
    df["item_a"] = df["checkpoint_a"].where(~same, df["preset_a"])
    df["item_b"] = df["checkpoint_b"].where(~same, df["preset_b"])
    tie = choice == "none"
    first = (~tie) & (choice == side)
    df["outcome"] = np.where(tie, 0.5, np.where(first, 1.0, 0.0))
    df["winner_item"] = np.where(tie, "tie", np.where(first, df["item_a"], df["item_b"]))
    df["chose_a_slot"] = choice == "A"
    df["clip"] = df["reference"] + " / " + df["sentence_id"]
    df["counted"] = (kind == "test") & (df["item_a"] != df["item_b"])
    df["tags"] = [tuple(t for t in (p.strip() for p in r.split(";")) if t) for r in df["reasons"]]
    for c in ("played_a_s", "played_b_s", "decision_s", "fetched_a", "fetched_b"):
        df[c] = pd.to_numeric(df[c], errors="coerce") if c in df.columns else np.nan
    return df


def _prep(votes: pd.DataFrame) -> pd.DataFrame:
    return votes if "counted" in votes.columns else prepare(votes)


def item_order(votes: pd.DataFrame) -> list[str]:
    """Items of counted votes in the order they first appear (``item_a`` before ``item_b``)."""
    df = _prep(votes)
    df = df[df["counted"]]
    both = np.empty(2 * len(df), dtype=object)
    both[0::2], both[1::2] = df["item_a"].to_numpy(), df["item_b"].to_numpy()
    return list(pd.unique(both))


def _oriented(df: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Counted rows as (first, second, first_outcome) with first/second in ``order``."""
    rank = {it: i for i, it in enumerate(order)}
    df = df[df["counted"]]
    swap = (df["item_a"].map(rank) > df["item_b"].map(rank)).to_numpy(dtype=bool)
    out = df.copy()
    out["first"] = np.where(swap, df["item_b"], df["item_a"])
    out["second"] = np.where(swap, df["item_a"], df["item_b"])
    out["first_outcome"] = np.where(swap, 1.0 - df["outcome"], df["outcome"])
    return out


def _example(group: pd.DataFrame) -> tuple[str, str, str, str]:
    """The clip with most votes in ``group``: ``(reference, sentence_id, preset, checkpoints)`` for links."""
    if group.empty:
        return ("", "", "", "")
    counts = group.groupby(["reference", "sentence_id", "preset_a"], sort=False).size()
    ref, sent, preset = counts.idxmax()
    sel = group[(group["reference"] == ref) & (group["sentence_id"] == sent) & (group["preset_a"] == preset)]
    checkpoints = dict.fromkeys([*sel["checkpoint_a"], *sel["checkpoint_b"]])
    return (ref, sent, preset, ",".join(checkpoints))


# --------------------------------------------------------------------------- head to head

PAIR_COLUMNS = [
    "kind",
    "item_a",
    "item_b",
    "wins_a",
    "wins_b",
    "ties",
    "n",
    "decisive",
    "used",
    "raters",
    "clips",
    "n_eff",
    "deff",
    "win_rate",
    "ci_low",
    "ci_high",
    "p_value",
    "target",
    "target_source",
    "p_seq",
    "p_adj",
    "comparisons",
    "verdict_confidence",
    "verdict_low",
    "verdict_high",
    "verdict",
    "settled",
    "leader",
    "target_these",
    "used_these",
    "n_eff_these",
    "deff_these",
    "win_rate_these",
    "ci_low_these",
    "ci_high_these",
    "p_value_these",
    "p_seq_these",
    "p_adj_these",
    "verdict_confidence_these",
    "verdict_low_these",
    "verdict_high_these",
    "verdict_these",
    "settled_these",
    "leader_these",
    "scope",
    "min_raters",
    "example_reference",
    "example_sentence",
    "example_preset",
    "example_checkpoints",
]

#: verdicts a pair can have
VERDICTS = ("settled", "not settled", "planned target not reached")
#: scopes of inference, each with its own verdict (see :mod:`workbench.stats.planning`)
SCOPES = planning.SCOPES
#: column suffix of each scope's verdict columns
_SUFFIX = {"raters_in_general": "", "these_raters": "_these"}


def _pair_row(a: str, b: str, kind: str, g: pd.DataFrame, targets: dict, source: str) -> dict:
    o = g["first_outcome"].to_numpy()
    wa, wb, t = int((o == 1).sum()), int((o == 0).sum()), int((o == 0.5).sum())
    dec = g[o != 0.5]
    target = targets["raters_in_general"]
    cl, p_seq = planning.look(dec["first_outcome"], dec["rater"], dec["clip"], target)
    used = dec.iloc[: cl.n]
    fx, p_fx = planning.look(dec["first_outcome"], dec["rater"], dec["clip"], targets["these_raters"], "these_raters")
    ref, sent, preset, checkpoints = _example(g)
    return {
        "kind": kind,
        "item_a": a,
        "item_b": b,
        "wins_a": wa,
        "wins_b": wb,
        "ties": t,
        "n": wa + wb + t,
        "decisive": wa + wb,
        "used": len(used),
        "raters": cl.raters,
        "clips": cl.clips,
        "n_eff": cl.n_eff,
        "deff": cl.deff,
        "win_rate": cl.estimate,
        "ci_low": cl.ci_low,
        "ci_high": cl.ci_high,
        "p_value": cl.p_value,
        "target": target,
        "target_source": source,
        "p_seq": p_seq,
        "df_t": cl.df,
        "target_these": targets["these_raters"],
        "used_these": fx.n,
        "n_eff_these": fx.n_eff,
        "deff_these": fx.deff,
        "win_rate_these": fx.estimate,
        "ci_low_these": fx.ci_low,
        "ci_high_these": fx.ci_high,
        "p_value_these": fx.p_value,
        "p_seq_these": p_fx,
        "df_t_these": fx.df,
        "example_reference": ref,
        "example_sentence": sent,
        "example_preset": preset,
        "example_checkpoints": checkpoints,
    }


def pair_table(
    votes: pd.DataFrame,
    *,
    order: list[str] | None = None,
    target=None,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Head-to-head verdicts for every pair of items that met in counted votes.

    Parameters
    ----------
    votes : DataFrame
        Effective votes (raw or :func:`prepare`-d).
    order : list of str, optional
        Item order deciding each pair's orientation (default: first appearance).
    target : int, SamplePlan or None
        Planned decisive votes per pair. None: computed with
        :func:`workbench.stats.planning.planned_votes` from the defaults, the number of
        pairs and the raters and clips seen (``target_source`` "defaults").
    alpha : float
        Family-wise level (Holm across the pairs of this table).

    Returns
    -------
    DataFrame
        One row per pair (columns :data:`PAIR_COLUMNS`). On the decisive votes used
        (the first ``target`` in file order): ``win_rate`` of ``item_a`` with its
        two-way cluster-robust 95% interval ``ci_low..ci_high`` and ``p_value``
        (fixed-sample), ``n_eff`` / ``deff`` effective votes and design effect,
        ``raters`` / ``clips`` the clusters. ``p_seq`` is the repeated p-value at
        ``used / target`` of the plan (valid at any look), ``p_adj`` its Holm
        adjustment over ``comparisons`` pairs; ``verdict_low..verdict_high`` the
        repeated interval at ``verdict_confidence`` (the level Holm applies to the
        pair), which excludes 50% when that step rejects; ``verdict`` one of
        :data:`VERDICTS`; ``leader`` the item ahead ("" when level). All of that is the
        "raters in general" scope. The columns ending ``_these`` repeat it for the
        "these raters" scope (raters fixed, clustered by clip only, its own target
        ``target_these``, its own Holm family and its own ``leader_these``); ``scope`` is the headline:
        "raters_in_general" when that verdict is settled, else "these_raters" when only
        that one is, else None; ``min_raters`` the fewest raters that could settle a pair
        for raters in general with the plan's clips.
    """
    df = _prep(votes)
    df = df[df["counted"]]
    order = list(order or []) + [it for it in item_order(df) if it not in (order or [])]
    od = _oriented(df, order)
    groups = list(od.groupby(["kind", "first", "second"], sort=False)) if not od.empty else []
    if isinstance(target, planning.SamplePlan):
        plan = planning.with_these_raters(target)
    elif target is None and groups:
        plan = planning.planned_votes(
            len(groups), n_raters=df["rater"].nunique(), n_clips=df["clip"].nunique(), source="defaults"
        )
    else:
        plan = None
    if plan is not None:
        targets = {scope: plan.target(scope) for scope in SCOPES}
    else:
        targets = dict.fromkeys(SCOPES, int(target) if target else None)
    source = plan.source if plan is not None else "plan"
    rows = [_pair_row(a, b, kind, g, targets, source) for (kind, a, b), g in groups]
    rank = {it: i for i, it in enumerate(order)}
    rows.sort(key=lambda r: (KINDS.index(r["kind"]), rank.get(r["item_a"], 0), rank.get(r["item_b"], 0)))
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    out["comparisons"] = len(out)
    for scope in SCOPES:
        _decide(out, _SUFFIX[scope], alpha)
    for sfx in _SUFFIX.values():
        rate = out[f"win_rate{sfx}"]
        out[f"leader{sfx}"] = np.where(rate > 0.5, out["item_a"], np.where(rate < 0.5, out["item_b"], ""))
    # the headline scope: raters in general when that is settled; "these raters" only as a
    # labelled, narrower claim when it alone is settled (it never stands in for the other)
    out["scope"] = [
        SCOPES[0] if general else SCOPES[1] if these else None
        for general, these in zip(out["settled"], out["settled_these"], strict=True)
    ]
    out["min_raters"] = plan.min_raters if plan is not None else None
    out["min_raters"] = out["min_raters"].astype("Int64")
    return out[PAIR_COLUMNS].reset_index(drop=True)


def _decide(out: pd.DataFrame, sfx: str, alpha: float) -> None:
    """Holm across pairs, the verdict interval and the verdict of one scope (columns ending ``sfx``), in place."""
    p_seq = out[f"p_seq{sfx}"].to_numpy(float)
    out[f"p_adj{sfx}"] = holm(p_seq)
    div = holm_divisors(p_seq)
    targets = out[f"target{sfx}"].tolist()
    out[f"verdict_confidence{sfx}"] = [1 - alpha / d if d and t else 0.95 for d, t in zip(div, targets, strict=True)]
    lows, highs, verdicts = [], [], []
    for (_, r), d in zip(out.iterrows(), div, strict=True):
        target, used, df_t = r[f"target{sfx}"], r[f"used{sfx}"], r[f"df_t{sfx}"]
        if d and target and df_t >= 1:
            z = sequential_boundary(alpha / d) / math.sqrt(min(1.0, used / target))
            lo, hi = wilson_bounds(r[f"win_rate{sfx}"], r[f"n_eff{sfx}"], t_quantile_for(z, df_t))
        else:
            # no verdict possible (no feasible plan, too few raters or clips): the estimate's own interval
            lo, hi = r[f"ci_low{sfx}"], r[f"ci_high{sfx}"]
        lows.append(lo)
        highs.append(hi)
    out[f"verdict_low{sfx}"], out[f"verdict_high{sfx}"] = lows, highs
    settled = (out[f"p_adj{sfx}"] < alpha).fillna(False).astype(bool)
    out[f"settled{sfx}"] = settled
    for s, target, dec in zip(settled, targets, out["decisive"], strict=True):
        if s:
            verdicts.append("settled")
        elif target and dec < target:
            verdicts.append("planned target not reached")
        else:
            verdicts.append("not settled")
    out[f"verdict{sfx}"] = verdicts
    out[f"target{sfx}"] = pd.array([None if t is None or t != t else int(t) for t in targets], dtype="Int64")


# --------------------------------------------------------------------------- ranking

RANKING_COLUMNS = [
    "kind",
    "group",
    "tier",
    "rank",
    "tier_these",
    "item",
    "strength",
    "ci_low",
    "ci_high",
    "wins",
    "losses",
    "ties",
    "n",
    "preliminary",
]


def _components(items: list[str], pairs: pd.DataFrame) -> list[list[str]]:
    """Items split into groups connected by pairs that met (order kept)."""
    parent = {it: it for it in items}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(pairs["item_a"], pairs["item_b"], strict=True):
        if a in parent and b in parent:
            parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for it in items:
        groups.setdefault(find(it), []).append(it)
    return list(groups.values())


def settled_beats(pairs: pd.DataFrame, scope: str = "raters_in_general") -> set[tuple[str, str]]:
    """``(winner, loser)`` for every pair of ``pairs`` (:func:`pair_table`) settled in ``scope``.

    Each scope reads only its own columns (``settled`` / ``leader``, or ``settled_these`` /
    ``leader_these``): a verdict for these raters never stands in for one about raters
    in general.
    """
    sfx = _SUFFIX[scope]
    out = set()
    for settled, leader, a, b in zip(
        pairs[f"settled{sfx}"], pairs[f"leader{sfx}"], pairs["item_a"], pairs["item_b"], strict=True
    ):
        if settled and leader:
            out.add((leader, b if leader == a else a))
    return out


def tier_numbers(sorted_items: list[str], beats: set[tuple[str, str]]) -> dict[str, int]:
    """Tier of each item (1 = top) along ``sorted_items``, best first.

    A tier boundary ("|") is drawn only where every item above it beats every item
    below it with a settled verdict (``beats``, :func:`settled_beats`); a pair that never
    met or is not settled keeps its two items in one tier, with everything sorted
    between them. So "a ~ b | c" always means both a and b were shown to beat c, never
    that b beats c because a does.
    """
    tiers: list[list[str]] = []
    for it in sorted_items:
        tiers.append([it])
        # merge upwards until every item of the earlier tiers beats every item of the last one
        while len(tiers) > 1 and not all((m, x) in beats for t in tiers[:-1] for m in t for x in tiers[-1]):
            last = tiers.pop()
            tiers[-1].extend(last)
    return {it: k for k, t in enumerate(tiers, start=1) for it in t}


def cluster_bootstrap_strengths(df: pd.DataFrame, items: list[str], *, n_boot: int, seed: int, prior: float):
    """Bradley-Terry strengths refitted on two-way cluster bootstrap resamples, shape (n_boot, k).

    Each resample draws raters with replacement and, independently, clips with
    replacement; a vote counts (times its rater was drawn) x (times its clip was drawn)
    (the "pigeonhole" bootstrap for crossed designs, Owen 2007).
    """
    idx = {it: i for i, it in enumerate(items)}
    k = len(items)
    if df.empty or n_boot <= 0:
        return np.ones((max(n_boot, 0), k))
    r, raters = pd.factorize(df["rater"])
    c, clips = pd.factorize(df["clip"])
    cells = pd.DataFrame(
        {
            "r": r,
            "c": c,
            "i": [idx[a] for a in df["item_a"]],
            "j": [idx[b] for b in df["item_b"]],
            "o": df["outcome"].to_numpy(float),
        }
    )
    agg = cells.groupby(["r", "c", "i", "j"], sort=False)["o"].agg(["sum", "count"]).reset_index()
    contrib = np.zeros((len(agg), k, k))
    ar = np.arange(len(agg))
    contrib[ar, agg["i"], agg["j"]] += agg["sum"].to_numpy()
    contrib[ar, agg["j"], agg["i"]] += (agg["count"] - agg["sum"]).to_numpy()
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n_boot, 100):
        b = min(100, n_boot - start)
        wr = rng.multinomial(len(raters), np.full(len(raters), 1 / len(raters)), size=b)
        wc = rng.multinomial(len(clips), np.full(len(clips), 1 / len(clips)), size=b)
        weight = wr[:, agg["r"].to_numpy()] * wc[:, agg["c"].to_numpy()]
        w = np.einsum("bc,cij->bij", weight, contrib)
        out.append(bradley_terry(w, prior=prior, max_iter=2000, tol=1e-8))
    return np.concatenate(out)


def ranking(
    votes: pd.DataFrame,
    *,
    pairs: pd.DataFrame | None = None,
    n_boot: int = 400,
    seed: int = 0,
    confidence: float = 0.95,
    prior: float = 1.0,
    order: list[str] | None = None,
) -> pd.DataFrame:
    """Bradley-Terry rankings with tiers in both scopes, one ranking per kind (checkpoints, presets).

    Items are sorted by the lower bound of their strength interval (two-way cluster
    bootstrap, :func:`cluster_bootstrap_strengths`). Tiers come from the settled
    verdicts of ``pairs`` (:func:`pair_table`), once per scope (:func:`tier_numbers`):
    ``tier`` from the verdicts for raters in general, ``tier_these`` from the verdicts
    for these raters only. Items linked by no chain of pairs that met are ranked in
    separate groups. Items with fewer than :data:`MIN_ITEM_VOTES` decisive votes are
    ``preliminary``.

    Returns
    -------
    DataFrame
        Columns :data:`RANKING_COLUMNS`; ``rank`` equals ``tier`` (the raters-in-general
        tier within the group, equal for every item of a tier), ``tier_these`` the tier
        for these raters only, ``strength`` has geometric mean 1 within the group,
        ``ci_low..ci_high`` its bootstrap interval.
    """
    df = _prep(votes)
    df = df[df["counted"]]
    if pairs is None:
        pairs = pair_table(df, order=order)
    rows = []
    for kind in KINDS:
        sub = df[df["kind"] == kind]
        if sub.empty:
            continue
        items = list(order or []) + [it for it in item_order(sub) if it not in (order or [])]
        items = [it for it in items if it in set(sub["item_a"]) | set(sub["item_b"])]
        kp = pairs[pairs["kind"] == kind]
        beats = {scope: settled_beats(kp, scope) for scope in SCOPES}
        for g, group in enumerate(_components(items, kp), start=1):
            gs = sub[sub["item_a"].isin(group) & sub["item_b"].isin(group)]
            idx = {it: i for i, it in enumerate(group)}
            w = np.zeros((len(group), len(group)))
            np.add.at(w, (gs["item_a"].map(idx).to_numpy(), gs["item_b"].map(idx).to_numpy()), gs["outcome"])
            np.add.at(w, (gs["item_b"].map(idx).to_numpy(), gs["item_a"].map(idx).to_numpy()), 1 - gs["outcome"])
            s = bradley_terry(w, prior=prior)
            boot = cluster_bootstrap_strengths(gs, group, n_boot=n_boot, seed=seed, prior=prior)
            q = (1 - confidence) / 2
            lo = np.quantile(boot, q, axis=0) if len(boot) else np.full(len(group), np.nan)
            hi = np.quantile(boot, 1 - q, axis=0) if len(boot) else np.full(len(group), np.nan)
            # sort by lower bound, then strength; exact ties keep no listing-order advantage (same rank below)
            sort = sorted(range(len(group)), key=lambda i: (-np.nan_to_num(lo[i], nan=-1), -s[i], group[i]))
            sorted_items = [group[i] for i in sort]
            tier = {scope: tier_numbers(sorted_items, beats[scope]) for scope in SCOPES}
            for i in sort:
                it = group[i]
                mine = gs[(gs["item_a"] == it) | (gs["item_b"] == it)]
                o = np.where(mine["item_a"] == it, mine["outcome"], 1 - mine["outcome"])
                wins, losses, ties = int((o == 1).sum()), int((o == 0).sum()), int((o == 0.5).sum())
                rows.append(
                    {
                        "kind": kind,
                        "group": g,
                        "tier": tier["raters_in_general"][it],
                        "rank": tier["raters_in_general"][it],
                        "tier_these": tier["these_raters"][it],
                        "item": it,
                        "strength": float(s[i]),
                        "ci_low": float(lo[i]),
                        "ci_high": float(hi[i]),
                        "wins": wins,
                        "losses": losses,
                        "ties": ties,
                        "n": wins + losses + ties,
                        "preliminary": wins + losses < MIN_ITEM_VOTES,
                    }
                )
    return pd.DataFrame(rows, columns=RANKING_COLUMNS)


def tiers_text(rank: pd.DataFrame, kind: str, scope: str = "raters_in_general") -> str:
    """Tiers of one scope as one line: "feb1 | apr27 ~ apr24".

    ``|`` separates tiers, ``~`` joins items of one tier, ``;`` separates groups never
    compared; ``*`` marks a preliminary item. ``scope`` picks the column: ``tier``
    (raters in general) or ``tier_these`` (these raters only).
    """
    column = f"tier{_SUFFIX[scope]}"
    sub = rank[rank["kind"] == kind]
    parts = []
    for _, g in sub.groupby("group", sort=True):
        tiers = [
            " ~ ".join(f"{it}{'*' if pre else ''}" for it, pre in zip(t["item"], t["preliminary"], strict=True))
            for _, t in g.groupby(column, sort=True)
        ]
        parts.append(" | ".join(tiers))
    return "; ".join(parts)


# --------------------------------------------------------------------------- exploratory

#: factors a breakdown can group by
FACTORS = {"reference": "reference", "sentence": "sentence_id", "rater": "rater", "clip": "clip"}

BREAKDOWN_COLUMNS = ["level", "kind", "item_a", "item_b", "wins_a", "wins_b", "ties", "n", "win_rate", "p_adj"]


def breakdown(votes: pd.DataFrame, by: str, *, order: list[str] | None = None) -> pd.DataFrame:
    """Exploratory: each pair's counts within each level of a factor.

    ``p_adj`` is the exact sign test of each row (votes taken as independent within a
    level) Holm-adjusted across every row of the table; a pattern here suggests where
    to look, it is not a verdict.

    Parameters
    ----------
    by : {"reference", "sentence", "rater", "clip"}
    """
    if by not in FACTORS:
        raise ValueError(f"unknown breakdown {by!r}; choose from {', '.join(FACTORS)}")
    df = _prep(votes)
    df = df[df["counted"]]
    order = list(order or []) + [it for it in item_order(df) if it not in (order or [])]
    od = _oriented(df, order)
    rows = []
    if not od.empty:
        for (level, kind, a, b), g in od.groupby([FACTORS[by], "kind", "first", "second"], sort=False):
            o = g["first_outcome"].to_numpy()
            wa, wb, t = int((o == 1).sum()), int((o == 0).sum()), int((o == 0.5).sum())
            rows.append(
                {
                    "level": level,
                    "kind": kind,
                    "item_a": a,
                    "item_b": b,
                    "wins_a": wa,
                    "wins_b": wb,
                    "ties": t,
                    "n": wa + wb + t,
                    "win_rate": wa / (wa + wb) if wa + wb else math.nan,
                    "_p": sign_test(wa, wa + wb),
                }
            )
    out = pd.DataFrame(rows, columns=[*BREAKDOWN_COLUMNS[:-1], "_p"])
    out["p_adj"] = holm(out["_p"].to_numpy(float)) if len(out) else []
    return out[BREAKDOWN_COLUMNS]


def item_scores(votes: pd.DataFrame, by: str, *, order: list[str] | None = None) -> pd.DataFrame:
    """Each item's record against all others within each level of a factor (heatmap data).

    Returns columns ``level, item, wins, losses, ties, n, score`` (``(wins + ties/2) / n``)
    plus ``example_sentence, example_preset, example_checkpoints`` for links to the clips.
    """
    df = _prep(votes)
    df = df[df["counted"]]
    order = list(order or []) + [it for it in item_order(df) if it not in (order or [])]
    rows = []
    for level, g in df.groupby(FACTORS[by], sort=False):
        for it in order:
            mine = g[(g["item_a"] == it) | (g["item_b"] == it)]
            if mine.empty:
                continue
            o = np.where(mine["item_a"] == it, mine["outcome"], 1 - mine["outcome"])
            w, l_, t = int((o == 1).sum()), int((o == 0).sum()), int((o == 0.5).sum())
            _, sent, preset, _ = _example(mine)
            sel = mine[mine["sentence_id"] == sent]
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
                    "example_checkpoints": ",".join(dict.fromkeys([*sel["checkpoint_a"], *sel["checkpoint_b"]])),
                }
            )
    cols = ["level", "item", "wins", "losses", "ties", "n", "score"]
    return pd.DataFrame(rows, columns=[*cols, "example_sentence", "example_preset", "example_checkpoints"])


def reason_table(votes: pd.DataFrame, *, by: str | None = None, order: list[str] | None = None) -> pd.DataFrame:
    """How often each reason tag was given when an item won, lost or tied (counts and shares, no tests).

    Tags are ticked after the vote, so they describe the decision rather than test it.

    Returns
    -------
    DataFrame
        Columns ``[level,] tag, item, won, lost, tied, n, share_won`` (``share_won`` =
        won / (won + lost)) and ``share_of_votes`` (n / the item's counted votes).
    """
    df = _prep(votes)
    df = df[df["counted"]]
    order = list(order or []) + [it for it in item_order(df) if it not in (order or [])]
    totals = {it: int(((df["item_a"] == it) | (df["item_b"] == it)).sum()) for it in order}
    tagged = df[df["tags"].map(len) > 0]
    groups = [(None, tagged)] if by is None else list(tagged.groupby(FACTORS[by], sort=False))
    known = {t: i for i, t in enumerate(REASON_TAGS)}
    rows = []
    for level, g in groups:
        for tag in sorted({t for ts in g["tags"] for t in ts}, key=lambda t: (known.get(t, len(known)), t)):
            sub = g[g["tags"].map(lambda ts, tag=tag: tag in ts)]
            for it in order:
                mine = sub[(sub["item_a"] == it) | (sub["item_b"] == it)]
                if mine.empty:
                    continue
                o = np.where(mine["item_a"] == it, mine["outcome"], 1 - mine["outcome"])
                won, lost, tied = int((o == 1).sum()), int((o == 0).sum()), int((o == 0.5).sum())
                row = {"tag": tag, "item": it, "won": won, "lost": lost, "tied": tied, "n": won + lost + tied}
                row["share_won"] = won / (won + lost) if won + lost else math.nan
                row["share_of_votes"] = row["n"] / totals[it] if totals.get(it) else math.nan
                rows.append({"level": level, **row} if by is not None else row)
    cols = (["level"] if by is not None else []) + ["tag", "item", "won", "lost", "tied", "n", "share_won"]
    return pd.DataFrame(rows, columns=[*cols, "share_of_votes"])
