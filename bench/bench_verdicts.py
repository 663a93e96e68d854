"""Simulation study of the verdict rule (``workbench.stats``), plus the 20,000-vote report time.

Votes are drawn from a logistic model with rater and clip random effects,
``logit P(first item wins) = beta + u_rater + v_clip`` (``u ~ N(0, s_r)``,
``v ~ N(0, s_c)``), arriving in random order, and judged with the exact functions the
report uses (:func:`workbench.stats.planning.look`: the two-way cluster-robust estimate
and the repeated p-value against the planned size, :func:`planned_votes` for the size).

- (a) no true preference, 3 raters x 8 clips, strong rater and clip effects (s = 1 on the
  logit scale), each rater hears each clip twice plus 4 repeats that agree with the
  original 90% of the time, judged through the report's own pair table: share of runs
  declared settled. No feasible plan exists for 3 raters, so the target is set to the 48
  votes collected (the rule is still applied). A 12 x 8 design at its planned size too.
- (b) the same with a look after every 5 votes (the sequential rule): share ever settled.
  For contrast, the old rule (exact sign test on votes as if independent) at the same looks.
- (c) a true 70% preference, 20 raters x 12 clips with the clustering the plan assumes
  (vote-scale correlation 0.02 per rater and per clip): power at the planned size
  (looks every 5 votes, and one look at the end).
- (d) coverage of the 95% interval of the preference (fixed-sample interval on the votes
  used) in the scenarios above with a true preference.

Each share is printed with its Monte Carlo 95% interval (Wilson). Seeded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from workbench.stats import planning, primitives


@dataclass(frozen=True)
class Scenario:
    raters: int
    clips: int
    sd_rater: float  # logit scale
    sd_clip: float
    preference: float  # true marginal share of decisive votes for the first item
    votes: int | None = None  # votes drawn (None: the planned size)


def _beta_for(preference: float, sd: float, rng: np.random.Generator) -> float:
    """Logit intercept giving the wanted marginal preference over rater and clip effects."""
    if abs(preference - 0.5) < 1e-12:
        return 0.0
    z = rng.normal(0.0, sd, 200_000)
    return float(optimize.brentq(lambda b: (1 / (1 + np.exp(-(b + z)))).mean() - preference, -8, 8))


def vote_scale_icc(beta: float, sd_own: float, sd_other: float, rng: np.random.Generator) -> float:
    """Correlation of two votes sharing one random effect (vote scale), by simulation."""
    u = rng.normal(0, sd_own, (4000, 1))
    p = 1 / (1 + np.exp(-(beta + u + rng.normal(0, sd_other, (4000, 400)))))
    mu = p.mean(1)
    m = mu.mean()
    return float(mu.var() / (m * (1 - m)))


def draw(rng: np.random.Generator, sc: Scenario, n: int, beta: float):
    """``n`` decisive votes in arrival order: (y, rater, clip); raters and clips balanced."""
    u = rng.normal(0, sc.sd_rater, sc.raters)
    v = rng.normal(0, sc.sd_clip, sc.clips)
    k = np.arange(n)
    rater = k % sc.raters
    clip = (k // sc.raters + k) % sc.clips
    order = rng.permutation(n)
    rater, clip = rater[order], clip[order]
    y = (rng.random(n) < 1 / (1 + np.exp(-(beta + u[rater] + v[clip])))).astype(float)
    return y, rater, clip


def vote_table(rng: np.random.Generator, sc: Scenario, beta: float, *, per_cell: int, repeats: int):
    """A vote CSV-like table: every rater hears every clip ``per_cell`` times, then ``repeats``
    replays of their first trials (sides swapped, the same answer 90% of the time).
    """
    import pandas as pd

    u = rng.normal(0, sc.sd_rater, sc.raters)
    v = rng.normal(0, sc.sd_clip, sc.clips)
    rows = []
    for r in range(sc.raters):
        mine = []
        for k in range(sc.clips * per_cell):
            c = k % sc.clips
            first = rng.random() < 1 / (1 + np.exp(-(beta + u[r] + v[c])))
            side = "AB"[k % 2]
            choice = side if first else "AB"[(k + 1) % 2]
            mine.append((f"r{r}-{k}", c, side, choice, "", "test"))
        for k in range(repeats):
            tid, c, side, choice, _, _ = mine[k]
            swapped = "B" if side == "A" else "A"
            same = rng.random() < 0.9
            again = (swapped if choice == side else side) if same else choice
            mine.append((f"r{r}-rep{k}", c, swapped, again, tid, "repeat"))
        for tid, c, side, choice, rep, kind in mine:
            rows.append(
                {
                    "rater": f"r{r}",
                    "test_id": "sim",
                    "trial_id": tid,
                    "reference": f"ref{c}",
                    "sentence_id": "s",
                    "checkpoint_a": "feb1",
                    "checkpoint_b": "apr27",
                    "preset_a": "none",
                    "preset_b": "none",
                    "a_side": side,
                    "choice": choice,
                    "repeat_of": rep,
                    "trial_kind": kind,
                }
            )
    df = pd.DataFrame(rows)
    return df.sample(frac=1.0, random_state=int(rng.integers(2**31))).reset_index(drop=True)


def run_with_repeats(sc: Scenario, *, runs: int, seed: int, per_cell: int = 2, repeats: int = 4) -> dict:
    """Through the report's own table (:func:`workbench.stats.pair_table`): settled share at the
    end, and what counting every vote (repeats too) as independent would have said.
    """
    from workbench.stats import pair_table

    rng = np.random.default_rng(seed)
    beta = _beta_for(sc.preference, math.hypot(sc.sd_rater, sc.sd_clip), rng)
    n = sc.raters * sc.clips * per_cell
    settled = naive = 0
    for _ in range(runs):
        df = vote_table(rng, sc, beta, per_cell=per_cell, repeats=repeats)
        r = pair_table(df, target=n).iloc[0]
        settled += bool(r.settled)
        won = (df["choice"] == df["a_side"]).sum()
        naive += primitives.sign_test(int(won), len(df)) < 0.05
    return {"votes": n, "end": mc_share(settled, runs), "naive_all_votes": mc_share(naive, runs)}


def mc_share(hits: int, runs: int) -> tuple[float, float, float]:
    """Share with its Monte Carlo 95% interval (Wilson)."""
    lo, hi = primitives.wilson_interval(hits, runs)
    return hits / runs, lo, hi


def run_scenario(sc: Scenario, *, runs: int, seed: int, target: int | None, look_every: int = 5, alpha=0.05) -> dict:
    """Settled share at the end, with looks every ``look_every`` votes, the naive rule, and coverage."""
    rng = np.random.default_rng(seed)
    beta = _beta_for(sc.preference, math.hypot(sc.sd_rater, sc.sd_clip), rng)
    n = sc.votes or target
    end = looks = naive = covered = 0
    for _ in range(runs):
        y, r, c = draw(rng, sc, n, beta)
        cl, p = planning.look(y, r, c, target)
        end += bool(p < alpha)
        covered += bool(cl.ci_low <= sc.preference <= cl.ci_high)
        hit = bool(p < alpha)
        hit_naive = False
        for m in range(look_every, n + 1, look_every):
            if not hit:
                hit = bool(planning.look(y[:m], r[:m], c[:m], target)[1] < alpha)
            if not hit_naive:
                k = int(y[:m].sum())
                hit_naive = primitives.sign_test(k, m) < alpha
            if hit and hit_naive:
                break
        looks += hit
        naive += hit_naive
    return {
        "votes": n,
        "end": mc_share(end, runs),
        "looks": mc_share(looks, runs),
        "naive_looks": mc_share(naive, runs),
        "coverage": mc_share(covered, runs),
    }


def _fmt(share: tuple[float, float, float]) -> str:
    return f"{100 * share[0]:.1f}% (MC 95% {100 * share[1]:.1f}-{100 * share[2]:.1f}%)"


#: the clustering the default plan assumes, on the logit scale (vote-scale correlation about 0.02)
SD_PLANNED = 0.31


def study(*, runs: int = 1000, seed: int = 0) -> dict:
    """Every figure of the study (see the module docstring) as a dict of results."""
    rng = np.random.default_rng(seed)
    out = {}
    # (a) null, 3 raters x 8 clips, strong effects, 2 votes per rater and clip plus 4 repeats
    # per rater, through the report's own pair table
    null_small = Scenario(3, 8, 1.0, 1.0, 0.5, votes=48)
    out["null_3x8_repeats"] = run_with_repeats(null_small, runs=max(100, runs // 2), seed=seed + 5)
    # (b) the same design, looks every 5 votes (arrays through the same verdict function)
    out["null_3x8"] = run_scenario(null_small, runs=runs, seed=seed + 1, target=48)
    # null at a feasible planned size: 12 raters x 8 clips, moderate effects
    plan12 = planning.planned_votes(1, min_effect=0.7, n_raters=12, n_clips=8)
    null_12 = Scenario(12, 8, 0.5, 0.5, 0.5)
    out["null_12x8"] = run_scenario(null_12, runs=runs, seed=seed + 2, target=plan12.votes_per_pair)
    # (c, d) a true 70% preference with the clustering the plan assumes
    beta = _beta_for(0.7, math.hypot(SD_PLANNED, SD_PLANNED), rng)
    icc = vote_scale_icc(beta, SD_PLANNED, SD_PLANNED, rng)
    plan = planning.planned_votes(1, min_effect=0.7, n_raters=20, n_clips=12, icc_rater=icc, icc_clip=icc)
    alt = Scenario(20, 12, SD_PLANNED, SD_PLANNED, 0.7)
    out["alt_20x12"] = run_scenario(alt, runs=runs, seed=seed + 3, target=plan.votes_per_pair)
    out["alt_20x12"]["icc"] = icc
    # coverage under strong clustering and few raters too
    out["alt_3x8"] = run_scenario(Scenario(3, 8, 1.0, 1.0, 0.7, votes=48), runs=runs, seed=seed + 4, target=48)
    return out


def report_time(votes: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """Seconds (wall, CPU) to read a ``votes``-row CSV and print its full text report."""
    import tempfile
    from pathlib import Path

    import pandas as pd

    from tests.test_stats import simulate_votes, write_votes_csv
    from workbench import report

    rng = np.random.default_rng(seed)
    raters = tuple(f"r{i}" for i in range(40))
    parts, k = [], 0
    while sum(len(p) for p in parts) < votes:
        parts.append(
            simulate_votes(rng, raters=raters, start=k * 10_000, repeats=0).assign(
                trial_id=lambda d, k=k: d.trial_id + f"-{k}"
            )
        )
        k += 1
    df = pd.concat(parts, ignore_index=True).head(votes)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_votes_csv(df, Path(tmp) / "votes.csv")
        t0, c0 = time.perf_counter(), time.process_time()
        report.render_text(report.build_summary(path))
        return time.perf_counter() - t0, time.process_time() - c0


def run(quick: bool = False) -> list[dict]:
    runs = 200 if quick else 1000
    s = study(runs=runs)
    rows = []
    a, a12, c, c3 = s["null_3x8"], s["null_12x8"], s["alt_20x12"], s["alt_3x8"]
    ar = s["null_3x8_repeats"]
    rows.append(
        {
            "name": "verdicts (a) null, 3x8 strong effects + repeats",
            "figure": f"settled {_fmt(ar['end'])}; all votes as independent: {_fmt(ar['naive_all_votes'])}",
            "value": ar["end"][0],
            "target": "<= 5%",
            "passed": ar["end"][0] <= 0.05,
        }
    )
    rows.append(
        {
            "name": f"verdicts (a) null, 12x8 at planned {a12['votes']}",
            "figure": f"settled {_fmt(a12['end'])}",
            "value": a12["end"][0],
            "target": "<= 5%",
            "passed": a12["end"][0] <= 0.05,
        }
    )
    for res, what in ((a, "3x8"), (a12, "12x8")):
        rows.append(
            {
                "name": f"verdicts (b) null {what}, look every 5 votes",
                "figure": f"settled {_fmt(res['looks'])}; votes as independent: {_fmt(res['naive_looks'])}",
                "value": res["looks"][0],
                "target": "<= 5%",
                "passed": res["looks"][0] <= 0.05,
            }
        )
    rows.append(
        {
            "name": f"verdicts (c) true 70%, 20x12, planned {c['votes']} votes",
            "figure": f"power with looks {_fmt(c['looks'])}; one look at the end {_fmt(c['end'])}",
            "value": c["looks"][0],
            "target": ">= 80% (MC)",
            "passed": c["looks"][2] >= 0.8,
        }
    )
    cov = min((c["coverage"], c3["coverage"]), key=lambda x: x[0])
    rows.append(
        {
            "name": "verdicts (d) 95% interval coverage",
            "figure": f"20x12: {_fmt(c['coverage'])}; 3x8 strong: {_fmt(c3['coverage'])}",
            "value": cov[0],
            "target": ">= 93%",
            "passed": cov[0] >= 0.93,
        }
    )
    wall, cpu = report_time(5_000 if quick else 20_000)
    rows.append(
        {
            "name": f"report of {5_000 if quick else 20_000} votes",
            "figure": f"{wall:.1f} s wall, {cpu:.1f} s CPU",
            "value": wall,
            "target": "< 10 s",
            "passed": wall < 10,
        }
    )
    return rows


if __name__ == "__main__":
    import sys

    sys.path.insert(0, ".")
    from bench.__main__ import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
