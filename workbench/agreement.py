"""Do the measurements agree with the ears? Metric-vote agreement on blind-test votes.

For every decisive vote (one clip preferred) whose two clips have different values of a
metric (DNSMOS OVRL, speaker similarity, ...), the metric *agrees* when the preferred clip
is the one with the higher value. The share of agreeing votes, with its Wilson interval,
says whether that metric could stand in for listening on this data: 50% is a coin flip,
and only a share whose whole interval lies at or above :data:`STAND_IN_SHARE` is taken as
good enough to replace listening.

Pure functions on DataFrames; :func:`attach_metrics` is the only one that needs a lookup
of the clips' measurements (e.g. from :class:`workbench.quality.QualityStore`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from .stats import wilson_interval

#: decisive, comparable votes a pair needs before its agreement is reported
MIN_VOTES = 10
#: the lower end of the 95% interval a metric's agreement must reach to stand in for listening
STAND_IN_SHARE = 0.8
#: columns of :func:`metric_agreement`'s table
AGREEMENT_COLUMNS = ["a", "b", "votes", "comparable", "agree", "share", "ci_low", "ci_high"]


def vote_items(votes: pd.DataFrame) -> pd.DataFrame:
    """The two compared items of each vote: checkpoints, or presets when one checkpoint is compared with itself.

    Returns a frame with ``item_a``, ``item_b`` and ``winner`` (an item or ``tie``), same index.
    """
    same_ck = votes["checkpoint_a"] == votes["checkpoint_b"]
    return pd.DataFrame(
        {
            "item_a": np.where(same_ck, votes["preset_a"], votes["checkpoint_a"]),
            "item_b": np.where(same_ck, votes["preset_b"], votes["checkpoint_b"]),
            "winner": votes["winner"],
        },
        index=votes.index,
    )


def metric_agreement(
    votes: pd.DataFrame, *, value_a: str = "value_a", value_b: str = "value_b", min_votes: int = MIN_VOTES
) -> pd.DataFrame:
    """Share of decisive votes where the clip with the higher metric value was preferred.

    Parameters
    ----------
    votes : one row per effective vote with ``item_a``, ``item_b`` (the two compared items),
        ``winner`` (``item_a``, ``item_b`` or ``tie``) and the metric of each side's clip in
        columns ``value_a`` / ``value_b`` (names configurable)
    min_votes : pairs with fewer decisive, comparable votes are left out of the per-pair rows
        (they still count in the overall row)

    Returns
    -------
    pandas.DataFrame
        Columns :data:`AGREEMENT_COLUMNS`: per pair (``a`` < ``b`` alphabetically) the votes,
        the decisive votes whose two values are both known and differ (``comparable``), how
        many of those preferred the higher value (``agree``), ``share`` = agree / comparable
        and its Wilson 95% interval. The last row has ``a`` = ``all pairs``.
    """
    df = votes.copy()
    va = pd.to_numeric(df[value_a], errors="coerce")
    vb = pd.to_numeric(df[value_b], errors="coerce")
    decisive = (df["winner"] == df["item_a"]) | (df["winner"] == df["item_b"])
    known = va.notna() & vb.notna() & (va != vb)
    comparable = decisive & known
    higher = np.where(va > vb, df["item_a"], df["item_b"])
    df["_comparable"] = comparable
    df["_agree"] = comparable & (df["winner"] == higher)
    df["_a"] = np.minimum(df["item_a"].astype(str), df["item_b"].astype(str))
    df["_b"] = np.maximum(df["item_a"].astype(str), df["item_b"].astype(str))
    rows = []
    for (a, b), g in df.groupby(["_a", "_b"], sort=True):
        n, k = int(g["_comparable"].sum()), int(g["_agree"].sum())
        if n >= min_votes:
            rows.append(_row(a, b, len(g), n, k))
    rows.append(_row("all pairs", "", len(df), int(df["_comparable"].sum()), int(df["_agree"].sum())))
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def _row(a: str, b: str, votes: int, n: int, k: int) -> dict:
    lo, hi = wilson_interval(k, n)
    return {
        "a": a,
        "b": b,
        "votes": votes,
        "comparable": n,
        "agree": k,
        "share": k / n if n else math.nan,
        "ci_low": lo,
        "ci_high": hi,
    }


def stand_in_note(table: pd.DataFrame, metric: str) -> str:
    """One sentence on whether ``metric`` could stand in for listening, from the overall row."""
    overall = table[table["a"] == "all pairs"].iloc[0]
    n = int(overall["comparable"])
    if n == 0:
        return f"{metric}: no decisive votes with two measured clips yet."
    share, lo, hi = overall["share"], overall["ci_low"], overall["ci_high"]
    what = (
        f"{metric} picked the preferred clip in {int(overall['agree'])} of {n} decisive votes "
        f"({share:.0%}, 95% CI {lo:.0%}-{hi:.0%})"
    )
    if lo >= STAND_IN_SHARE:
        return f"{what}: on this data it could stand in for listening."
    if lo > 0.5:
        return f"{what}: better than chance, but not reliable enough to replace listening."
    if hi < 0.5:
        return f"{what}: it tends to prefer the clip the raters did not; it cannot stand in for listening."
    return f"{what}: not distinguishable from a coin flip; it cannot stand in for listening."


def attach_metrics(
    votes: pd.DataFrame, lookup: Callable[[str, str, str, str, int], float | None], *, take_default: int = 1
) -> pd.DataFrame:
    """Add ``item_a``, ``item_b`` and the metric of each side's clip to a votes frame.

    ``lookup(checkpoint, preset, reference, sentence_id, take)`` returns the metric of that
    clip (None or NaN when unknown). Votes without take columns use ``take_default``.
    """
    out = pd.concat([votes.drop(columns=["winner"]), vote_items(votes)], axis=1)

    def take(row, side: str) -> int:
        v = row.get(f"take_{side}", "")
        try:
            return int(float(v))
        except (TypeError, ValueError):
            return take_default

    def value(row, side: str) -> float:
        v = lookup(
            row[f"checkpoint_{side}"], row[f"preset_{side}"], row["reference"], row["sentence_id"], take(row, side)
        )
        return math.nan if v is None else float(v)

    out["value_a"] = [value(r, "a") for _, r in out.iterrows()]
    out["value_b"] = [value(r, "b") for _, r in out.iterrows()]
    return out


#: metrics compared with the votes: column -> name shown
METRICS = {"dnsmos_ovrl": "DNSMOS OVRL", "speaker_similarity": "speaker similarity"}
#: trial kinds that carry a preference (controls and training trials do not)
PREFERENCE_TRIALS = ("test", "repeat")


def agreement_report(
    votes: pd.DataFrame,
    lookup: Callable[[str, str, str, str, int], dict | None],
    *,
    include_admin: bool = False,
    min_votes: int = MIN_VOTES,
) -> list[tuple[str, pd.DataFrame, str]]:
    """For each of :data:`METRICS`: its name, :func:`metric_agreement` table and :func:`stand_in_note`.

    ``votes`` are effective votes (:func:`workbench.votes.effective_votes`); controls,
    training trials and (unless ``include_admin``) admins' votes are left out, as in Results.
    ``lookup(checkpoint, preset, reference, sentence_id, take)`` gives a clip's measurements.
    """
    v = votes
    if "trial_kind" in v:
        v = v[v["trial_kind"].isin(PREFERENCE_TRIALS) | (v["trial_kind"] == "")]
    if not include_admin and "rater_role" in v:
        v = v[v["rater_role"] != "admin"]
    out = []
    for col, name in METRICS.items():

        def metric(ck, preset, ref, sent, take, col=col):
            m = lookup(ck, preset, ref, sent, take)
            return None if m is None else m.get(col)

        table = metric_agreement(attach_metrics(v, metric), min_votes=min_votes) if len(v) else _empty()
        out.append((name, table, stand_in_note(table, name)))
    return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame([_row("all pairs", "", 0, 0, 0)], columns=AGREEMENT_COLUMNS)
