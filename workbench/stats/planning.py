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

Two scopes of inference
-----------------------
Every plan carries a target for each scope (:data:`SCOPES`): ``votes_per_pair`` for
"raters in general" (raters and clips both random, :func:`clustered_preference`) and
``votes_these_raters`` for "these raters" (raters fixed, clips random,
:func:`clip_clustered_preference`). The second needs only clips, so a 3-rater test has a
reachable target for it even when no number of votes can speak for raters in general;
``min_raters`` says how many raters that would take with these clips.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as sps

from .primitives import (
    ALPHA,
    POWER,
    Clustered,
    clip_clustered_preference,
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
#: scopes of inference: raters random (a claim about raters in general) or fixed (these raters only)
SCOPES = ("raters_in_general", "these_raters")


@dataclass(frozen=True)
class SamplePlan:
    """A planned sample size per pair, with the assumptions behind it.

    ``votes_per_pair``: decisive votes per pair at which the verdict is final (None
    when no number of votes reaches the power with these raters and clips; ``note``
    says why). ``trials_per_pair``: trials to schedule so that, at ``tie_rate``, about
    ``votes_per_pair`` are decisive. ``deff``: design effect at the planned size;
    ``n_eff``: effective independent votes it needs. ``source``: "plan" (recorded when
    the test was made) or "defaults" (computed by the report for a test without one).
    ``votes_these_raters`` / ``trials_these_raters``: the same for the "these raters"
    scope (raters fixed, clips random; None with ``note_these_raters`` when unreachable);
    ``min_raters``: fewest raters with which ``votes_per_pair`` is reachable with these
    clips (None: more than 200).
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
    votes_these_raters: int | None = None
    trials_these_raters: int | None = None
    min_raters: int | None = None
    note_these_raters: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SamplePlan:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def describe(self) -> str:
        """One sentence: what the target is and where it comes from."""
        origin = (
            "recorded in the plan" if self.source == "plan" else "computed from defaults, as no target was recorded"
        )
        these = self.describe_these_raters()
        if self.votes_per_pair is None:
            these = "" if "for these raters only" in self.note else f" {these}"
            return f"No planned size for raters in general is feasible ({origin}): {self.note}.{these}"
        if math.isnan(self.deff):  # only the target was recorded
            return f"Planned {self.votes_per_pair} decisive votes per pair ({origin}). {these}"
        return (
            f"Planned {self.votes_per_pair} decisive votes per pair ({origin}): power {self.power:.0%} to detect "
            f"a {self.min_effect:.0%} preference at alpha {self.alpha:g} adjusted for {self.n_comparisons} "
            f"comparison{'s' if self.n_comparisons != 1 else ''}, with looks allowed, assuming "
            f"{self.n_raters} raters, {self.n_clips} clips and rater/clip correlation "
            f"{self.icc_rater:g}/{self.icc_clip:g}. {these}"
        )

    def describe_these_raters(self) -> str:
        """One sentence on the "these raters" target."""
        if self.votes_these_raters is None:
            return f"For these raters only: {self.note_these_raters or 'no feasible planned size'}."
        return (
            f"For these raters only (raters fixed, clips as the population): {self.votes_these_raters} decisive "
            "votes per pair."
        )

    def target(self, scope: str) -> int | None:
        """The target of one scope (:data:`SCOPES`)."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; choose from {', '.join(SCOPES)}")
        return self.votes_per_pair if scope == "raters_in_general" else self.votes_these_raters


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
    these, these_trials, these_note = _these_raters_size(c, min_effect, alpha / m, power, icc_clip, tie_rate)
    base.update(
        votes_these_raters=these,
        trials_these_raters=these_trials,
        note_these_raters=these_note,
        min_raters=_min_raters(c, min_effect, alpha / m, power, icc_rater, icc_clip),
    )
    df = min(r, c) - 1
    if df < 1:
        return SamplePlan(
            None,
            None,
            deff=math.nan,
            n_eff=math.nan,
            note=f"no verdict is possible with {r} rater(s) and {c} clip(s): at least 2 of each are needed"
            + _these_clause(these),
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
                + _these_clause(these)
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


def _these_clause(votes: int | None) -> str:
    if votes is None:
        return ""
    return f"; for these raters only (not raters in general), {votes} decisive votes per pair are planned"


def _these_raters_size(
    c: int, effect: float, alpha: float, power: float, icc_clip: float, tie_rate: float
) -> tuple[int | None, int | None, str]:
    """Target of the "these raters" scope: (decisive votes, trials, note when unreachable).

    Raters are fixed, so only clips cluster: t on ``c - 1`` df and design effect
    ``1 + (votes per clip - 1) icc_clip``, with the same allowance :data:`PLAN_MARGIN`.
    """
    if c < 2:
        return None, None, f"no verdict is possible with {c} clip(s): at least 2 are needed"
    df = c - 1
    n0 = _effective_needed(effect, t_quantile_for(sequential_boundary(alpha), df), df, power)
    den = 1 - n0 * icc_clip / c
    if den <= 0:
        return None, None, f"with {c} clips no number of votes reaches {power:.0%} power; add clips (sentences)"
    votes = int(math.ceil(max(n0, n0 * (1 - icc_clip) / den) * PLAN_MARGIN - 1e-9))
    return votes, int(math.ceil(votes / (1 - tie_rate) - 1e-9)), ""


def _min_raters(c: int, effect: float, alpha: float, power: float, icc_r: float, icc_c: float) -> int | None:
    """Fewest raters (up to 200) with which some number of votes settles a pair for raters in general."""
    return next((x for x in range(2, 201) if _feasible(x, c, effect, alpha, power, icc_r, icc_c)), None)


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
        return with_these_raters(plan)
    size = plan.get("sample_size") if isinstance(plan, dict) else getattr(plan, "sample_size", None)
    if isinstance(size, SamplePlan):
        return with_these_raters(size)
    if isinstance(size, dict) and "votes_per_pair" in size:
        try:
            return with_these_raters(SamplePlan.from_dict({**size, "source": "plan"}))
        except TypeError:
            pass
    target = plan if isinstance(plan, int) and not isinstance(plan, bool) else target_from_plan(plan)
    if target:
        effect = plan.get("min_effect") if isinstance(plan, dict) else getattr(plan, "min_effect", None)
        nan = math.nan
        return SamplePlan(
            target, target, max(1, n_pairs), max(1, n_pairs), float(effect or MIN_EFFECT), alpha, POWER,
            n_raters, n_clips, nan, nan, 0.0, nan, nan, source="plan",
            # one recorded target: the verdict is final there in both scopes
            votes_these_raters=target, trials_these_raters=target,
            min_raters=_min_raters(n_clips, float(effect or MIN_EFFECT), alpha / max(1, n_pairs), POWER,
                                   ICC_RATER, ICC_CLIP),
        )  # fmt: skip
    if not n_pairs:
        return None
    return planned_votes(n_pairs, alpha=alpha, n_raters=n_raters, n_clips=n_clips, source="defaults")


def with_these_raters(plan: SamplePlan) -> SamplePlan:
    """A plan recorded before the "these raters" scope existed, with that target filled in
    from its own assumptions (clips, effect, level, comparisons, power, clip correlation).
    """
    if plan.votes_these_raters is not None or plan.note_these_raters:
        return plan
    icc = plan.icc_clip if math.isfinite(plan.icc_clip) else ICC_CLIP
    icc_r = plan.icc_rater if math.isfinite(plan.icc_rater) else ICC_RATER
    a = plan.alpha / max(1, plan.n_comparisons)
    votes, trials, note = _these_raters_size(plan.n_clips, plan.min_effect, a, plan.power, icc, plan.tie_rate)
    min_r = _min_raters(plan.n_clips, plan.min_effect, a, plan.power, icc_r, icc)
    return replace(plan, votes_these_raters=votes, trials_these_raters=trials, note_these_raters=note, min_raters=min_r)


def look(y, rater, clip, target: int | None, scope: str = "raters_in_general") -> tuple[Clustered, float]:
    """One look at a pair: the clustered estimate on the votes that count and its repeated p-value.

    Parameters
    ----------
    y, rater, clip : array-like, shape (n,)
        Decisive votes in arrival order (1: the first item won) and their clusters.
    target : int or None
        Planned decisive votes. Only the first ``target`` votes count (the verdict at
        the target is final); the look is at information fraction ``used / target``.
    scope : {"raters_in_general", "these_raters"}
        Raters random (:func:`clustered_preference`) or fixed
        (:func:`clip_clustered_preference`); pass the scope's own target.

    Returns
    -------
    (Clustered, float)
        The estimate on the votes used, and the repeated p-value (nan without a target
        or when fewer than 2 raters or clips leave no inference).
    """
    y = np.asarray(y, dtype=float)
    n = y.size if target is None else min(y.size, int(target))
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose from {', '.join(SCOPES)}")
    estimate = clustered_preference if scope == "raters_in_general" else clip_clustered_preference
    cl = estimate(y[:n], np.asarray(rater)[:n], np.asarray(clip)[:n])
    if target is None or cl.df < 1:
        return cl, math.nan
    return cl, repeated_p_value(normal_equivalent(cl.p_value), n / target)


def progress_line(decisive: int, target: int | None) -> str:
    """Say "not settled yet: 23 of 60 planned votes" (or why there is no target)."""
    if target is None:
        return "no feasible planned size"
    return f"not settled yet: {min(decisive, target)} of {target} planned votes"
