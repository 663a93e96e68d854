"""Everything about one selection of votes (a test, or all votes) in one :class:`Summary`.

The Results tab, ``python -m workbench report`` (text, markdown, HTML, JSON) all render
the same Summary, so they show the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from . import planning
from .analyses import (
    KINDS,
    breakdown,
    item_order,
    item_scores,
    pair_table,
    prepare,
    ranking,
    reason_table,
    tiers_text,
)
from .primitives import ALPHA
from .raters import control_table, position_bias, rater_agreement, rater_consistency, rater_table

#: how the headline verdicts are computed (shown in every report)
METHOD = (
    "two-way cluster-robust score test (rater x clip, Cameron-Gelbach-Miller variance, t with "
    "min(raters, clips) - 1 df) on the planned decisive votes, judged against a continuous "
    "O'Brien-Fleming boundary so that early looks are allowed; Holm across pairs. That verdict is "
    "for raters in general. A second verdict, for these raters only (raters fixed), clusters by clip alone "
    "(t with clips - 1 df) against its own planned size, with the same boundary and Holm; it describes the "
    "raters who voted and is never a claim about raters in general"
)


@dataclass
class Summary:
    """Every statistic of one selection of votes; built by :func:`summarize`."""

    test_id: str | None  # None: all votes
    n_votes: int  # effective votes in the selection (every kind, admins per include_admin)
    n_counted: int  # test trials between two different items (what the preference uses)
    n_ties: int  # ties among counted votes
    kind_counts: dict  # trial_kind -> votes
    items: list[str]  # in first-appearance order
    kind: str  # "checkpoints", "presets", "mixed" or "none"
    raters: list[str]
    references: list[str]
    sentences: list[str]
    tests: list[str]  # every test id present in the votes given (before selection)
    plan: planning.SamplePlan | None  # the target behind the verdicts
    pairs: pd.DataFrame  # pair_table
    pairs_screened: pd.DataFrame | None  # pair_table without flagged raters (None: nobody flagged)
    ranking: pd.DataFrame
    tiers: dict  # kind -> tiers_text, raters in general
    tiers_these: dict  # kind -> tiers_text, these raters only (what the raters who voted prefer)
    by_reference: pd.DataFrame
    by_sentence: pd.DataFrame
    by_rater: pd.DataFrame
    by_clip: pd.DataFrame
    heatmap: pd.DataFrame
    reasons: pd.DataFrame
    reasons_by_reference: pd.DataFrame
    position: pd.DataFrame
    consistency: pd.DataFrame
    controls: pd.DataFrame
    agreement: pd.DataFrame
    fleiss_kappa: float
    fleiss_stimuli: int
    raters_table: pd.DataFrame
    flagged: list[str]
    admin_votes: int  # admin votes left out (0 when included)
    include_admin: bool
    alpha: float
    n_boot: int
    seed: int
    prior: float
    method: str = METHOD
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
    plan=None,
    include_admin: bool = False,
    alpha: float = ALPHA,
    n_boot: int = 400,
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
        summary, not an error.
    plan : SamplePlan, dict, plan object or int, optional
        The test's recorded target (see :func:`workbench.stats.planning.target_from_plan`).
        None: computed from defaults (``summary.plan.source == "defaults"``).
    include_admin : bool
        Count admins' votes (left out by default: admins know the key).
    alpha : float
        Family-wise level of the verdicts.
    n_boot, seed, prior
        Cluster-bootstrap resamples for ranking intervals, their seed, virtual ties per pair.
    """
    df = prepare(votes)
    tests = [t for t in pd.unique(df["test_id"]) if t]
    df = select_test(df, test_id).reset_index(drop=True)
    admin = df["rater_role"] == "admin"
    admin_votes = 0 if include_admin else int(admin.sum())
    if not include_admin:
        df = df[~admin].reset_index(drop=True)
    counted = df[df["counted"]]
    order = item_order(df)
    kinds = [k for k in KINDS if (counted["kind"] == k).any()]
    kind = "none" if not kinds else kinds[0] if len(kinds) == 1 else "mixed"
    a, b = counted["item_a"], counted["item_b"]
    swap = a > b
    n_pairs = len(
        pd.DataFrame({"k": counted["kind"], "lo": a.where(~swap, b), "hi": b.where(~swap, a)}).drop_duplicates()
    )
    sp = planning.resolve_plan(
        plan, n_pairs=n_pairs, n_raters=counted["rater"].nunique(), n_clips=counted["clip"].nunique(), alpha=alpha
    )
    pairs = pair_table(df, order=order, target=sp, alpha=alpha)
    raters_tab = rater_table(df)
    flagged = list(raters_tab.loc[raters_tab["flagged"], "rater"])
    screened = None
    if flagged:
        screened = pair_table(df[~df["rater"].isin(flagged)], order=order, target=sp, alpha=alpha)
    rank = ranking(df, pairs=pairs, n_boot=n_boot, seed=seed, prior=prior, order=order)
    agreement, fk, fk_n = rater_agreement(df)
    return Summary(
        test_id=test_id or None,
        n_votes=len(df),
        n_counted=len(counted),
        n_ties=int((counted["choice"] == "none").sum()),
        kind_counts={k: int((df["trial_kind"] == k).sum()) for k in ("test", "repeat", "control", "training")},
        items=order,
        kind=kind,
        raters=list(pd.unique(df["rater"])),
        references=list(pd.unique(df["reference"])),
        sentences=list(pd.unique(df["sentence_id"])),
        tests=tests,
        plan=sp,
        pairs=pairs,
        pairs_screened=screened,
        ranking=rank,
        tiers={k: tiers_text(rank, k) for k in kinds},
        tiers_these={k: tiers_text(rank, k, "these_raters") for k in kinds},
        by_reference=breakdown(df, "reference", order=order),
        by_sentence=breakdown(df, "sentence", order=order),
        by_rater=breakdown(df, "rater", order=order),
        by_clip=breakdown(df, "clip", order=order),
        heatmap=item_scores(df, "reference", order=order),
        reasons=reason_table(df, order=order),
        reasons_by_reference=reason_table(df, by="reference", order=order),
        position=position_bias(df),
        consistency=rater_consistency(df),
        controls=control_table(df),
        agreement=agreement,
        fleiss_kappa=fk,
        fleiss_stimuli=fk_n,
        raters_table=raters_tab,
        flagged=flagged,
        admin_votes=admin_votes,
        include_admin=include_admin,
        alpha=alpha,
        n_boot=n_boot,
        seed=seed,
        prior=prior,
    )
