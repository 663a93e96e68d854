"""Planned sample sizes and the verdict rule that goes with them (no peeking).

A blind test's size is fixed when it is created, from the smallest preference that
matters, the number of comparisons, the wanted power and the expected clustering;
results then say "not settled yet: 23 of 60 planned votes" until the target is reached,
and the verdict at the target is final (votes beyond it are reported, not used). Anyone
may look early: every look is judged against the sequential boundary of
:func:`workbench.stats.primitives.repeated_p_value`, so looking does not inflate the
chance of a false verdict. The plan is sized for that boundary.

Names shared with the plan code (``workbench.abtest``)
------------------------------------------------------
``planned_votes(n_pairs, min_effect=0.65, alpha=0.05, power=0.8, n_comparisons=None,
n_raters=None, n_clips=None, icc_rater=0.02, icc_clip=0.02, tie_rate=0.0)``
    returns a :class:`SamplePlan`; a plan records its ``votes_per_pair`` (the target:
    decisive votes per pair) as ``planned_votes_per_pair``, and may store the whole
    ``SamplePlan.to_dict()`` under ``"sample_size"`` to keep the assumptions.
:func:`target_from_plan` ``(plan_or_dict)``
    reads that target back (``None`` for an older plan without one).
:func:`progress_line` ``(decisive, target)``
    the "not settled yet: 23 of 60 planned votes" sentence.

When a test has no recorded target (older plans, a CSV on its own) the report computes
one with :func:`planned_votes` from the defaults and the raters and clips seen, and says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as sps

from .primitives import (
    ALPHA,
    POWER,
    Clustered,
    clustered_preference,
    normal_equivalent,
    repeated_p_value,
    sequential_boundary,
    t_quantile_for,
)

#: smallest preference worth detecting (share of decisive votes for the better item)
MIN_EFFECT = 0.65
#: expected correlation of two votes by the same rater (vote scale, same pair)
ICC_RATER = 0.02
#: expected correlation of two votes on the same clip (reference x sentence)
ICC_CLIP = 0.02
#: allowance on the planned size for estimating the clustering from the votes themselves
#: (the estimated design effect is noisy and never taken below 1); bench_verdicts checks
#: that the planned size reaches the planned power with it
PLAN_MARGIN = 1.1
#: raters assumed when the plan does not say
DEFAULT_RATERS = 10
#: clips assumed when the plan does not say
DEFAULT_CLIPS = 8


@dataclass(frozen=True)
class SamplePlan:
    """A planned sample size per pair, with the assumptions behind it.

    ``votes_per_pair``: decisive votes per pair at which the verdict is final (None
    when no number of votes reaches the power with these raters and clips; ``note``
    says why). ``trials_per_pair``: trials to schedule so that, at ``tie_rate``, about
    ``votes_per_pair`` are decisive. ``deff``: design effect at the planned size;
    ``n_eff``: effective independent votes it needs. ``source``: "plan" (recorded when
    the test was made) or "defaults" (computed by the report for a test without one).
    """

    votes_per_pair: int | None
    trials_per_pair: int | None
    n_pairs: int
    n_comparisons: int
    min_effect: float
    alpha: float
    power: float
    n_raters: int
    n_clips: int
    icc_rater: float
    icc_clip: float
    tie_rate: float
    deff: float
    n_eff: float
    source: str = "plan"
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SamplePlan:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def describe(self) -> str:
        """One sentence: what the target is and where it comes from."""
        origin = "recorded in the plan" if self.source == "plan" else "computed from defaults (no target recorded)"
        if self.votes_per_pair is None:
            return f"No planned size is feasible ({origin}): {self.note}."
        if math.isnan(self.deff):  # only the target was recorded
            return f"Planned {self.votes_per_pair} decisive votes per pair ({origin})."
        return (
            f"Planned {self.votes_per_pair} decisive votes per pair ({origin}): power {self.power:.0%} to detect "
            f"a {self.min_effect:.0%} preference at alpha {self.alpha:g} adjusted for {self.n_comparisons} "
            f"comparison{'s' if self.n_comparisons != 1 else ''}, with looks allowed, assuming "
            f"{self.n_raters} raters, {self.n_clips} clips and rater/clip correlation "
            f"{self.icc_rater:g}/{self.icc_clip:g}."
        )


@lru_cache(maxsize=4096)
def _effective_needed(p: float, crit: float, df: float, power: float) -> float:
    """Effective votes for which the score statistic crosses ``crit`` (t scale) with ``power``.

    The statistic ``2 (phat - 1/2) sqrt(n_eff)`` has mean ``delta = 2 (p - 1/2) sqrt(n_eff)``
    and standard deviation ``s = 2 sqrt(p (1 - p))``; its variance is estimated from
    ``df`` clusters, hence a noncentral t.
    """
    s = 2 * math.sqrt(p * (1 - p))
    if math.isinf(df):
        delta = crit + sps.norm.isf(1 - power) * s
    else:
        delta = optimize.brentq(lambda d: sps.nct.sf(crit / s, df, d / s) - power, 1e-6, 1e3)
    return (delta / (2 * (p - 0.5))) ** 2


def planned_votes(
    n_pairs: int = 1,
    *,
    min_effect: float = MIN_EFFECT,
    alpha: float = ALPHA,
    power: float = POWER,
    n_comparisons: int | None = None,
    n_raters: int | None = None,
    n_clips: int | None = None,
    icc_rater: float = ICC_RATER,
    icc_clip: float = ICC_CLIP,
    tie_rate: float = 0.0,
    source: str = "plan",
) -> SamplePlan:
    """Decisive votes per pair for a blind test (pure function; the plan code calls it).

    Parameters
    ----------
    n_pairs : int
        Pairs the test compares.
    min_effect : float
        Smallest preference that matters, as the better item's share of decisive votes
        (0.65 means 65% vs 35%); in (0.5, 1).
    alpha, power : float
        Level of the whole test (family-wise) and wanted power per pair.
    n_comparisons : int, optional
        Comparisons corrected for (Holm; planned at its strictest step, alpha / m).
        Default ``n_pairs``.
    n_raters, n_clips : int, optional
        Raters expected and clips (reference x sentence) in the test; default
        :data:`DEFAULT_RATERS` / :data:`DEFAULT_CLIPS`. Few of either limit what any
        number of votes can show.
    icc_rater, icc_clip : float
        Expected correlation between two votes of one rater / on one clip; they set the
        design effect ``1 + (votes per rater - 1) icc_rater + (votes per clip - 1) icc_clip``.
    tie_rate : float
        Expected share of "no preference" answers (only sizes ``trials_per_pair``).
    source : str
        Recorded in the result ("plan" or "defaults").

    Returns
    -------
    SamplePlan
        ``votes_per_pair`` None (with a note) when no number of votes is enough.
    """
    if not 0.5 < min_effect < 1:
        raise ValueError(f"min_effect must be between 0.5 and 1 (e.g. 0.65), got {min_effect}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha}, {power}")
    if not 0 <= tie_rate < 1:
        raise ValueError(f"tie_rate must be in [0, 1), got {tie_rate}")
    n_pairs = max(1, int(n_pairs))
    m = max(1, int(n_comparisons or n_pairs))
    r = int(n_raters or DEFAULT_RATERS)
    c = int(n_clips or DEFAULT_CLIPS)
    base: dict[str, Any] = dict(
        n_pairs=n_pairs,
        n_comparisons=m,
        min_effect=min_effect,
        alpha=alpha,
        power=power,
        n_raters=r,
        n_clips=c,
        icc_rater=icc_rater,
        icc_clip=icc_clip,
        tie_rate=tie_rate,
        source=source,
    )
    df = min(r, c) - 1
    if df < 1:
        return SamplePlan(
            None,
            None,
            deff=math.nan,
            n_eff=math.nan,
            note=f"no verdict is possible with {r} rater(s) and {c} clip(s): at least 2 of each are needed",
            **base,
        )
    crit = t_quantile_for(sequential_boundary(alpha / m), df)
    n0 = _effective_needed(min_effect, crit, df, power)
    den = 1 - n0 * (icc_rater / r + icc_clip / c)
    if den <= 0:
        return SamplePlan(
            None,
            None,
            deff=math.inf,
            n_eff=n0,
            note=(
                f"with {r} raters and {c} clips no number of votes reaches {power:.0%} power for a "
                f"{min_effect:.0%} preference (votes of one rater or clip are correlated); add raters or clips"
                + _suggestion(r, c, min_effect, alpha / m, power, icc_rater, icc_clip)
            ),
            **base,
        )
    n = max(n0, n0 * (1 - icc_rater - icc_clip) / den) * PLAN_MARGIN
    votes = int(math.ceil(n - 1e-9))
    deff = 1 + max(0.0, votes / r - 1) * icc_rater + max(0.0, votes / c - 1) * icc_clip
    return SamplePlan(
        votes,
        int(math.ceil(votes / (1 - tie_rate) - 1e-9)),
        deff=deff,
        n_eff=n0,
        **base,
    )


def _feasible(r: int, c: int, effect: float, alpha: float, power: float, icc_r: float, icc_c: float) -> bool:
    df = min(r, c) - 1
    if df < 1:
        return False
    n0 = _effective_needed(effect, t_quantile_for(sequential_boundary(alpha), df), df, power)
    return n0 * (icc_r / r + icc_c / c) < 1


def _suggestion(r: int, c: int, effect: float, alpha: float, power: float, icc_r: float, icc_c: float) -> str:
    """Suggest "(e.g. 14 raters, or 12 clips)": the fewest raters (clips kept) or clips (raters kept) that would do."""
    options = []
    more_r = next((x for x in range(r + 1, 201) if _feasible(x, c, effect, alpha, power, icc_r, icc_c)), None)
    more_c = next((x for x in range(c + 1, 201) if _feasible(r, x, effect, alpha, power, icc_r, icc_c)), None)
    if more_r:
        options.append(f"{more_r} raters with these {c} clips")
    if more_c:
        options.append(f"{more_c} clips with these {r} raters")
    return f" (e.g. {' or '.join(options)})" if options else ""


def target_from_plan(plan) -> int | None:
    """The target (decisive votes per pair) recorded in a plan, or None.

    Accepts a plan object or dict with ``planned_votes_per_pair`` (an int > 0) or
    ``sample_size`` (a :class:`SamplePlan` or its dict), or the SamplePlan / its dict itself.
    """
    if plan is None:
        return None
    if isinstance(plan, SamplePlan):
        return plan.votes_per_pair
    flat = (
        plan.get("planned_votes_per_pair") if isinstance(plan, dict) else getattr(plan, "planned_votes_per_pair", None)
    )
    if isinstance(flat, int) and not isinstance(flat, bool) and flat > 0:
        return flat
    size = plan.get("sample_size", plan) if isinstance(plan, dict) else getattr(plan, "sample_size", None)
    if size is None:
        return None
    if isinstance(size, SamplePlan):
        return size.votes_per_pair
    value: Any = size.get("votes_per_pair") if isinstance(size, dict) else getattr(size, "votes_per_pair", None)
    try:
        value = int(value)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def resolve_plan(plan, *, n_pairs: int, n_raters: int, n_clips: int, alpha: float = ALPHA) -> SamplePlan | None:
    """The :class:`SamplePlan` behind a test's verdicts.

    ``plan`` is whatever a test recorded (a SamplePlan, a plan dict or object, an int
    target) or None; without a recorded target one is computed with
    :func:`planned_votes` from the defaults and the pairs, raters and clips seen
    (``source == "defaults"``). None when there is nothing to compare.
    """
    if isinstance(plan, SamplePlan):
        return plan
    size = plan.get("sample_size") if isinstance(plan, dict) else getattr(plan, "sample_size", None)
    if isinstance(size, SamplePlan):
        return size
    if isinstance(size, dict) and "votes_per_pair" in size:
        try:
            return SamplePlan.from_dict({**size, "source": "plan"})
        except TypeError:
            pass
    target = plan if isinstance(plan, int) and not isinstance(plan, bool) else target_from_plan(plan)
    if target:
        effect = plan.get("min_effect") if isinstance(plan, dict) else getattr(plan, "min_effect", None)
        nan = math.nan
        return SamplePlan(
            target, target, max(1, n_pairs), max(1, n_pairs), float(effect or MIN_EFFECT), alpha, POWER,
            n_raters, n_clips, nan, nan, 0.0, nan, nan, source="plan",
        )  # fmt: skip
    if not n_pairs:
        return None
    return planned_votes(n_pairs, alpha=alpha, n_raters=n_raters, n_clips=n_clips, source="defaults")


def look(y, rater, clip, target: int | None) -> tuple[Clustered, float]:
    """One look at a pair: the clustered estimate on the votes that count and its repeated p-value.

    Parameters
    ----------
    y, rater, clip : array-like, shape (n,)
        Decisive votes in arrival order (1: the first item won) and their clusters.
    target : int or None
        Planned decisive votes. Only the first ``target`` votes count (the verdict at
        the target is final); the look is at information fraction ``used / target``.

    Returns
    -------
    (Clustered, float)
        The estimate on the votes used, and the repeated p-value (nan without a target
        or when fewer than 2 raters or clips leave no inference).
    """
    y = np.asarray(y, dtype=float)
    n = y.size if target is None else min(y.size, int(target))
    cl = clustered_preference(y[:n], np.asarray(rater)[:n], np.asarray(clip)[:n])
    if target is None or cl.df < 1:
        return cl, math.nan
    return cl, repeated_p_value(normal_equivalent(cl.p_value), n / target)


def progress_line(decisive: int, target: int | None) -> str:
    """Say "not settled yet: 23 of 60 planned votes" (or why there is no target)."""
    if target is None:
        return "no feasible planned size"
    return f"not settled yet: {min(decisive, target)} of {target} planned votes"
