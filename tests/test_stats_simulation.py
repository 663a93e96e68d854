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
