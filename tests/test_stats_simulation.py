"""The verdict rule's simulation study (bench/bench_verdicts.py) with fewer runs.

Seeded, so the figures are reproducible; each check allows for Monte Carlo error by
using the share's 95% Monte Carlo interval.
"""

from __future__ import annotations

import pytest

from bench import bench_verdicts as bv


@pytest.mark.slow
def test_verdict_rule_simulation_study():
    s = bv.study(runs=200, seed=3)
    # (a) no true preference, strong rater and clip effects, repeats: rarely settled
    assert s["null_3x8_repeats"]["end"][1] <= 0.05
    assert s["null_12x8"]["end"][1] <= 0.05
    # counting every vote (repeats too) as independent is what the old report did: far more often
    assert s["null_3x8_repeats"]["naive_all_votes"][0] > 0.1
    # (b) looking every 5 votes under the sequential rule
    assert s["null_3x8"]["looks"][1] <= 0.05 and s["null_12x8"]["looks"][1] <= 0.05
    assert s["null_12x8"]["naive_looks"][0] > 0.15  # a fixed-sample test at every look
    # (c) a true 70% preference: the planned size reaches the planned power
    assert s["alt_20x12"]["looks"][2] >= 0.8
    # (d) the 95% interval covers the true preference
    for key in ("alt_20x12", "alt_3x8", "null_12x8"):
        assert s[key]["coverage"][0] >= 0.93, key


@pytest.mark.slow
def test_these_raters_scope_simulation_study():
    """The "these raters" scope's own known-truth checks, and what it is not."""
    s = bv.study_these_raters(runs=200, seed=3)
    # (a') each of 3 fixed raters without preference, strong clip effects, repeats and controls, the
    # team's design through the report's table: rarely "settled for these raters", never for raters in general
    assert s["these_null_team"]["these"][1] <= 0.05
    assert s["these_null_team"]["general"][0] == 0.0
    # (b') a look after every 5 votes up to the scope's planned size
    assert s["these_null_looks"]["looks"][1] <= 0.05
    # (c') these raters prefer the first item 70%: the scope's planned size reaches the planned power
    assert s["these_alt"]["looks"][2] >= 0.8
    # (d') the scope's 95% interval covers these raters' preference
    for key in ("these_alt", "these_alt_strong", "these_null_looks"):
        assert s[key]["coverage"][2] >= 0.93, key
    # not a claim about raters in general: with random rater effects and no preference among raters in
    # general it fires far more often than 5%, while the raters-in-general verdict stays within 5%
    assert s["population_null_these"]["looks"][0] > 0.1
    assert s["population_null_general"]["looks"][1] <= 0.05


@pytest.mark.slow
def test_these_raters_tiers_simulation():
    """(e') Tiers for these raters: A > B = C (A vs B and A vs C at 70%, B vs C level), 3 raters x 16 clips,
    each pair at the scope's planned size, through the report's pair table and ranking.
    """
    e = bv.run_ranking_these(runs=200, seed=3)
    # the pairwise verdict reaches its planned power
    assert e["ab_settled"][2] >= 0.8
    # a tier boundary needs settled verdicts: A above B only when A-B (and A-C) are settled,
    # so the ranking's power is below the pair's, but far from nothing
    assert e["a_over_b"][0] <= e["ab_settled"][0] and e["a_over_b"][0] > 0.5
    # equal items are rarely split: no more often than a false settled B-C verdict allows
    assert e["bc_split"][1] <= 0.05 and e["bc_split"][0] <= e["bc_settled"][0]
    # the earlier rule (a new tier where one item of the tier beats the next) split them far more often
    assert e["greedy_bc_split"][0] > 0.1
    # 3 raters never separate anything for raters in general
    assert e["general_split"][0] == 0.0
