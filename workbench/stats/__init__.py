# ruff: noqa: F401  (re-exports: the public surface of the package)
"""Statistics on blind A/B votes.

- :mod:`.primitives`: intervals, exact and clustered tests, Holm, sequential boundary,
  Bradley-Terry, kappas (numbers in, numbers out; scipy where it has the function).
- :mod:`.planning`: planned sample sizes (``planned_votes``, ``SamplePlan``,
  ``target_from_plan``, ``progress_line``), called by the plan code.
- :mod:`.analyses`: vote tables -> verdicts per pair, rankings with tiers, exploratory
  breakdowns, reason-tag counts.
- :mod:`.raters`: rater screening and agreement.
- :mod:`.summary`: :class:`Summary` / :func:`summarize`, what every report renders.

>>> s = summarize(votes, "t1")          # doctest: +SKIP
>>> s.pairs[["item_a", "item_b", "win_rate", "n_eff", "verdict"]]  # doctest: +SKIP
"""

from .analyses import (
    FACTORS,
    KINDS,
    MIN_ITEM_VOTES,
    PAIR_COLUMNS,
    RANKING_COLUMNS,
    REASON_TAGS,
    REQUIRED_COLUMNS,
    SCOPES,
    VERDICTS,
    breakdown,
    cluster_bootstrap_strengths,
    item_order,
    item_scores,
    pair_table,
    prepare,
    ranking,
    reason_table,
    settled_beats,
    tier_numbers,
    tiers_text,
)
from .planning import SamplePlan, planned_votes, progress_line, resolve_plan, target_from_plan
from .primitives import (
    ALPHA,
    POWER,
    Clustered,
    binomial_power,
    bradley_terry,
    clip_clustered_preference,
    clustered_preference,
    cohen_kappa,
    fleiss_kappa,
    holm,
    holm_divisors,
    repeated_p_value,
    sequential_boundary,
    sign_test,
    sign_test_ties_split,
    votes_needed,
    wilson_interval,
)
from .raters import (
    control_table,
    position_bias,
    rater_agreement,
    rater_consistency,
    rater_table,
    repeat_pairs,
)
from .summary import METHOD, Summary, select_test, summarize

__all__ = [name for name in dir() if not name.startswith("_")]
