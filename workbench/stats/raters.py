"""Rater quality: position bias, self-consistency on repeats, identical-pair controls, listening, agreement.

Screening rule (:func:`rater_table`, columns ``flagged`` and ``flags``), in the spirit of
MUSHRA's post-screening (ITU-R BS.1534): a rater is flagged when

- they repeat themselves less often than chance: at least :data:`MIN_REPEATS` repeats
  and agreement with their own first answer below 50%;
- they keep choosing one slot between two identical clips: at least
  :data:`MIN_CONTROLS` decisive control trials, and an exact two-sided binomial test of
  the share of the more chosen slot below :data:`FLAG_P`;
- their slot choice ignores the sound: at least 10 decisive votes and an exact sign test
  of choosing slot A below :data:`FLAG_P`;
- they did not listen: median listening time (both slots) below :data:`MIN_LISTEN_S`,
  or the server never delivered one of the two clips on more than half their votes.

Flagged raters are never dropped silently: the results are shown with and without them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import sparse
from scipy import stats as sps

from .analyses import _prep
from .primitives import cohen_kappa, fleiss_kappa, sign_test, wilson_interval

#: repeats a rater needs before the consistency rule applies
MIN_REPEATS = 4
#: decisive control trials a rater needs before the control rule applies
MIN_CONTROLS = 5
#: level of the screening tests (per rater, deliberately strict: a flag must mean something)
FLAG_P = 0.01
#: decisive votes before the position rule applies
MIN_POSITION_VOTES = 10
#: median seconds of listening (both slots together) below which a rater did not listen
MIN_LISTEN_S = 1.0


def position_bias(votes: pd.DataFrame, *, by_rater: bool = True) -> pd.DataFrame:
    """How often raters pick screen slot A among decisive counted votes (sides are counterbalanced).

    Returns columns ``rater, decisive, chose_a, a_rate, ci_low, ci_high, p_value, ties``;
    the first row (rater "all") pools every vote.
    """
    df = _prep(votes)
    df = df.loc[df["counted"], ["rater", "choice", "chose_a_slot"]]
    groups = [("all", df)] + (list(df.groupby("rater", sort=False)) if by_rater else [])
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
    """Each repeat matched with the trial it replays (same rater and test).

    Returns columns ``rater, test_id, trial_id, repeat_trial_id, first, repeat, agree,
    same_slot`` (winners of both; ``same_slot``: the same screen slot chosen both times,
    a flip of preference since sides are swapped on a repeat).
    """
    df = _prep(votes)
    key = {(r, t, tr): i for i, (r, t, tr) in enumerate(zip(df["rater"], df["test_id"], df["trial_id"], strict=True))}
    rows = []
    for i in np.flatnonzero(((df["repeat_of"] != "") & (df["trial_kind"] == "repeat")).to_numpy()):
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
    """Self-consistency on repeats: ``rater, repeats, agree, rate, ci_low, ci_high, same_slot, kappa`` ("all" first)."""
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


def control_table(votes: pd.DataFrame) -> pd.DataFrame:
    """Identical-pair control trials per rater.

    Returns columns ``rater, controls, preferred, preference_rate, slot_share,
    p_slot``: ``preferred`` controls answered with a preference (there was none to
    hear), ``slot_share`` the share of those given to the more chosen slot and
    ``p_slot`` its exact two-sided binomial p against 50%.
    """
    df = _prep(votes)
    ctl = df[df["trial_kind"] == "control"]
    rows = []
    for rater, g in ctl.groupby("rater", sort=False):
        dec = g[g["choice"] != "none"]
        k = int(max(dec["chose_a_slot"].sum(), (~dec["chose_a_slot"]).sum())) if len(dec) else 0
        n = len(dec)
        rows.append(
            {
                "rater": rater,
                "controls": len(g),
                "preferred": n,
                "preference_rate": n / len(g) if len(g) else math.nan,
                "slot_share": k / n if n else math.nan,
                "p_slot": float(min(1.0, 2 * sps.binom.sf(k - 1, n, 0.5))) if n else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=["rater", "controls", "preferred", "preference_rate", "slot_share", "p_slot"])


def _stimulus_labels(df: pd.DataFrame) -> pd.DataFrame:
    """One answer per (rater, stimulus) from counted votes: "first"/"second" (sorted items) or "tie"."""
    df = df[df["counted"]]
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
    """Agreement between raters on stimuli they both judged.

    Returns ``(pairs, fleiss, n_stimuli)``: one row per pair of raters (``rater_1,
    rater_2, shared, agree, rate, kappa``), Fleiss' kappa over stimuli judged by two or
    more raters, and how many such stimuli.
    """
    df = _prep(votes)
    lab = _stimulus_labels(df)
    cols = ["rater_1", "rater_2", "shared", "agree", "rate", "kappa"]
    if lab.empty:
        return pd.DataFrame(columns=cols), math.nan, 0
    # one-hot (stimulus x rater) matrices per label: every pairwise count is a product
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


RATER_COLUMNS = [
    "rater",
    "votes",
    "ties",
    "a_rate",
    "p_position",
    "repeats",
    "consistency",
    "controls",
    "control_preference",
    "control_slot_share",
    "median_decision_s",
    "median_played_s",
    "unheard_share",
    "flagged",
    "flags",
]


def rater_table(votes: pd.DataFrame) -> pd.DataFrame:
    """One row per rater: counts, screening measures and the screening verdict (see module docstring).

    Returns
    -------
    DataFrame
        Columns :data:`RATER_COLUMNS`: ``votes`` counted votes; ``a_rate``/``p_position``
        slot-A share and its sign test; ``consistency`` agreement on repeats;
        ``control_preference`` share of identical-pair controls answered with a
        preference and ``control_slot_share`` the more chosen slot's share of those;
        timings in seconds (played = both slots); ``unheard_share`` votes where the
        server never delivered one of the clips (nan when not recorded); ``flags`` the
        rules broken ("" when none).
    """
    df = _prep(votes)
    pos = position_bias(df).set_index("rater")
    con = rater_consistency(df).set_index("rater")
    ctl = control_table(df).set_index("rater")
    rows = []
    cols = ["rater", "counted", "choice", "played_a_s", "played_b_s", "decision_s", "fetched_a", "fetched_b"]
    for rater, g in df.loc[df["trial_kind"] != "training", cols].groupby("rater", sort=False):
        counted = g[g["counted"]]
        played = (g["played_a_s"] + g["played_b_s"]).dropna()
        fetched = g[["fetched_a", "fetched_b"]].dropna()
        unheard = (
            float(((fetched["fetched_a"] == 0) | (fetched["fetched_b"] == 0)).mean()) if len(fetched) else math.nan
        )
        row = {
            "rater": rater,
            "votes": len(counted),
            "ties": int((counted["choice"] == "none").sum()),
            "a_rate": pos.at[rater, "a_rate"] if rater in pos.index else math.nan,
            "p_position": pos.at[rater, "p_value"] if rater in pos.index else math.nan,
            "repeats": int(con.at[rater, "repeats"]) if rater in con.index else 0,
            "consistency": con.at[rater, "rate"] if rater in con.index else math.nan,
            "controls": int(ctl.at[rater, "controls"]) if rater in ctl.index else 0,
            "control_preference": ctl.at[rater, "preference_rate"] if rater in ctl.index else math.nan,
            "control_slot_share": ctl.at[rater, "slot_share"] if rater in ctl.index else math.nan,
            "median_decision_s": float(g["decision_s"].median()) if g["decision_s"].notna().any() else math.nan,
            "median_played_s": float(played.median()) if len(played) else math.nan,
            "unheard_share": unheard,
        }
        flags = []
        if row["repeats"] >= MIN_REPEATS and row["consistency"] < 0.5:
            flags.append("inconsistent on repeats")
        if rater in ctl.index and ctl.at[rater, "preferred"] >= MIN_CONTROLS and ctl.at[rater, "p_slot"] < FLAG_P:
            flags.append("prefers one of two identical clips")
        decisive = pos.at[rater, "decisive"] if rater in pos.index else 0
        if decisive >= MIN_POSITION_VOTES and row["p_position"] < FLAG_P:
            flags.append("position bias")
        if row["median_played_s"] < MIN_LISTEN_S or row["unheard_share"] > 0.5:
            flags.append("did not listen to both clips")
        row["flagged"] = bool(flags)
        row["flags"] = "; ".join(flags)
        rows.append(row)
    return pd.DataFrame(rows, columns=RATER_COLUMNS)
