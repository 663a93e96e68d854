"""Statistics on votes: known values (scipy, textbook examples) and synthetic raters.

``vote_rows`` / ``simulate_votes`` / ``write_votes_csv`` build vote tables with the
vote CSV's exact header; the report and Results-tab tests import them from here.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy import stats as sps

from workbench import stats
from workbench.errors import VoteTableError

#: the vote CSV header, in order (shared contract with workbench/votes.py)
VOTE_HEADER = [
    "vote_id",
    "time_utc",
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
    "winner",
    "reasons",
    "comment",
    "played_a_s",
    "played_b_s",
    "decision_s",
    "repeat_of",
    "supersedes",
    "app_version",
]


def vote(
    n: int,
    *,
    a: str = "feb1",
    b: str = "apr27",
    a_side: str = "A",
    choice: str = "A",
    rater: str = "ann",
    test_id: str = "t1",
    trial_id: str | None = None,
    reference: str = "surya_1",
    sentence: str = "pangram",
    preset_a: str = "none",
    preset_b: str = "none",
    reasons: str = "",
    repeat_of: str = "",
    supersedes: str = "",
) -> dict:
    """One vote row; ``winner`` is derived like the vote store does."""
    same = a == b
    item_a, item_b = (preset_a, preset_b) if same else (a, b)
    winner = "tie" if choice == "none" else item_a if choice == a_side else item_b
    return {
        "vote_id": f"v{n:05d}",
        "time_utc": f"2026-05-01T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
        "rater": rater,
        "test_id": test_id,
        "trial_id": trial_id or f"tr{n:04d}",
        "reference": reference,
        "sentence_id": sentence,
        "checkpoint_a": a,
        "checkpoint_b": b,
        "preset_a": preset_a,
        "preset_b": preset_b,
        "a_side": a_side,
        "choice": choice,
        "winner": winner,
        "reasons": reasons,
        "comment": "",
        "played_a_s": 3.0,
        "played_b_s": 3.5,
        "decision_s": 8.0 + n % 5,
        "repeat_of": repeat_of,
        "supersedes": supersedes,
        "app_version": "0.1.0",
    }


def vote_rows(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=VOTE_HEADER)


def simulate_votes(
    rng: np.random.Generator,
    *,
    items=("feb1", "apr24", "apr27"),
    strength=None,
    raters=("ann", "bob", "cyd"),
    references=("surya_1", "surya_2", "paul_1"),
    sentences=("pangram", "numbers"),
    tie_rate: float = 0.1,
    a_bias: dict | None = None,
    repeats: int = 2,
    test_id: str = "t1",
    start: int = 0,
) -> pd.DataFrame:
    """A balanced blind test: every pair on every reference and sentence for every rater.

    ``strength`` maps item -> Bradley-Terry strength (default: apr27 strongest);
    ``a_bias`` maps rater -> probability of answering slot A whatever was played.
    Sides are counterbalanced; each rater repeats ``repeats`` trials with sides swapped.
    """
    strength = strength or {"feb1": 1.0, "apr24": 0.6, "apr27": 2.0}
    a_bias = a_bias or {}
    rows: list[dict] = []
    n = start
    reasons_for = {"apr27": "accent", "feb1": "naturalness", "apr24": "dull/flat"}
    for rater in raters:
        trials = []
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                for ref in references:
                    for sent in sentences:
                        trials.append((a, b, ref, sent))
        mine: list[dict] = []
        for t, (a, b, ref, sent) in enumerate(trials):
            a_side = "A" if (t + len(mine)) % 2 == 0 else "B"
            mine.append(dict(a=a, b=b, reference=ref, sentence=sent, a_side=a_side, trial_id=f"{rater}-{t}"))
        for r in range(repeats):
            orig = mine[r]
            mine.append({**orig, "a_side": "B" if orig["a_side"] == "A" else "A", "trial_id": f"{rater}-rep{r}"})
            mine[-1]["repeat_of"] = orig["trial_id"]
        for spec in mine:
            a, b = spec["a"], spec["b"]
            if rater in a_bias:
                choice = "A" if rng.random() < a_bias[rater] else "B"
            elif rng.random() < tie_rate:
                choice = "none"
            else:
                a_wins = rng.random() < strength[a] / (strength[a] + strength[b])
                choice = spec["a_side"] if a_wins else ("B" if spec["a_side"] == "A" else "A")
            winner = None if choice == "none" else a if choice == spec["a_side"] else b
            rows.append(
                vote(
                    n,
                    rater=rater,
                    test_id=test_id,
                    choice=choice,
                    reasons=reasons_for.get(winner, "") if n % 3 else "",
                    **spec,
                )
            )
            n += 1
    return vote_rows(rows)


def write_votes_csv(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` as a vote CSV with the exact header (formula-like cells quoted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(VOTE_HEADER)
        for row in df[VOTE_HEADER].itertuples(index=False):
            w.writerow(["'" + c if isinstance(c, str) and c and c[0] in "=+-@" else c for c in row])
    return path


# --------------------------------------------------------------------------- primitives


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (3, 10), (7, 10), (14, 20), (0, 30), (55, 100), (500, 1000)])
def test_wilson_interval_matches_scipy(k, n):
    expected = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = stats.wilson_interval(k, n)
    assert lo == pytest.approx(expected.low, abs=1e-12)
    assert hi == pytest.approx(expected.high, abs=1e-12)


def test_wilson_interval_other_level_and_empty():
    expected = sps.binomtest(8, 12).proportion_ci(confidence_level=0.8, method="wilson")
    assert stats.wilson_interval(8, 12, 0.8) == pytest.approx((expected.low, expected.high))
    assert all(math.isnan(x) for x in stats.wilson_interval(0, 0))


@pytest.mark.parametrize("k,n", [(0, 1), (1, 2), (9, 10), (5, 10), (3, 17), (12, 17), (40, 100), (0, 12)])
def test_sign_test_matches_scipy(k, n):
    assert stats.sign_test(k, n) == pytest.approx(sps.binomtest(k, n, 0.5).pvalue, rel=1e-9)


def test_sign_test_known_value_and_ties_split():
    assert stats.sign_test(9, 10) == pytest.approx(22 / 1024)  # 2 * (1 + 10) / 2**10
    assert math.isnan(stats.sign_test(0, 0))
    # 8 wins, 2 losses, 5 ties -> ties split as 2 + 2 and one dropped: 10 of 14
    assert stats.sign_test_ties_split(8, 2, 5) == pytest.approx(sps.binomtest(10, 14).pvalue)


def test_holm_known_values():
    got = stats.holm([0.01, 0.04, 0.03])
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06])
    got = stats.holm([0.2, np.nan, 0.01])
    np.testing.assert_allclose(got, [0.2, np.nan, 0.02])
    assert stats.holm([]).shape == (0,)
    assert stats.holm([0.6, 0.7])[1] == 1.0  # capped


def test_votes_needed_is_the_smallest_n_with_enough_power():
    def exact_power(n, p):
        ks = np.arange(n + 1)
        reject = np.array([sps.binomtest(int(k), n).pvalue <= 0.05 for k in ks])
        return sps.binom.pmf(ks[reject], n, p).sum()

    for p in (0.75, 0.3, 0.9):
        n = stats.votes_needed(p)
        assert exact_power(n, p) >= 0.8
        assert all(exact_power(m, p) < 0.8 for m in range(max(1, n - 3), n))
    # normal approximation for 0.75: about 29 decisive votes
    assert 25 <= stats.votes_needed(0.75) <= 35
    assert stats.votes_needed(1.0) == 6  # 6-0 is the first unanimous result with p < 0.05
    assert stats.votes_needed(0.5) is None
    assert stats.votes_needed(float("nan")) is None
    assert stats.votes_needed(0.52) > stats.votes_needed(0.6) > stats.votes_needed(0.7)


def test_bradley_terry_textbook_example():
    # Wikipedia's worked example ("Bradley-Terry model"): 4 teams, 22 games, row beat column.
    wins = np.array([[0, 2, 0, 1], [3, 0, 5, 0], [0, 3, 0, 1], [4, 0, 3, 0]])
    s = stats.bradley_terry(wins)
    np.testing.assert_allclose(s, [0.640, 1.043, 0.660, 2.270], atol=1e-3)
    assert np.prod(s) == pytest.approx(1.0)

    # and it is the maximum of the likelihood (checked with a generic optimiser)
    def nll(beta):
        d = beta[:, None] - beta[None, :]
        return -(wins * (d - np.logaddexp(0, d))).sum()

    res = optimize.minimize(nll, np.zeros(4), method="BFGS")
    beta = res.x - res.x.mean()
    np.testing.assert_allclose(np.log(s), beta, atol=1e-4)


def test_bradley_terry_prior_keeps_unbeaten_items_finite():
    wins = np.array([[0, 3], [0, 0]])
    plain = stats.bradley_terry(wins)
    assert plain[1] == 0 or plain[0] / plain[1] > 1e6
    s = stats.bradley_terry(wins, prior=1.0)
    assert np.all(np.isfinite(s)) and s[0] / s[1] == pytest.approx(7.0, rel=1e-6)  # 3.5 : 0.5


def test_bradley_terry_batched_equals_single():
    rng = np.random.default_rng(1)
    w = rng.integers(0, 9, size=(5, 3, 3)) * (1 - np.eye(3))
    batched = stats.bradley_terry(w, prior=0.5)
    for i in range(5):
        np.testing.assert_allclose(batched[i], stats.bradley_terry(w[i], prior=0.5), rtol=1e-6)


def test_cohen_kappa_known_value():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.7, p_e 0.5, kappa 0.4
    x = ["y"] * 25 + ["n"] * 25
    y = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert stats.cohen_kappa(x, y) == pytest.approx(0.4)
    assert math.isnan(stats.cohen_kappa([], []))
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    assert stats.cohen_kappa(a, b) == pytest.approx(sk.cohen_kappa_score(a, b))


def test_fleiss_kappa_known_value():
    # Fleiss (1971) / Wikipedia example: 10 subjects, 14 raters, 5 categories -> 0.210
    counts = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert stats.fleiss_kappa(counts) == pytest.approx(0.2099, abs=1e-4)
    assert math.isnan(stats.fleiss_kappa(np.zeros((0, 3))))


# --------------------------------------------------------------------------- vote tables


def test_sequential_boundary_known_values():
    # two-sided continuous-monitoring boundary for alpha 0.05 (Jennison & Turnbull: 2.2414)
    assert stats.sequential_boundary(0.05) == pytest.approx(2.2414, abs=1e-4)
    # reflection principle: P(sup|B| >= c) ~ 4 (1 - Phi(c)) for large c
    assert stats.primitives.prob_sup_abs_brownian(3.0) == pytest.approx(4 * sps.norm.sf(3.0), rel=1e-3)
    assert stats.repeated_p_value(stats.sequential_boundary(0.01), 1.0) == pytest.approx(0.01, rel=1e-6)
    # the same statistic seen earlier (smaller fraction) is weaker evidence
    assert stats.repeated_p_value(3.0, 0.25) > stats.repeated_p_value(3.0, 1.0)
    # a look at the planned size is stricter than the fixed-sample test it replaces
    assert stats.repeated_p_value(2.0, 1.0) > 2 * sps.norm.sf(2.0)


def test_clustered_reduces_to_wilson_without_clustering():
    # every vote from its own rater and clip: the two-way variance is the binomial one (times n/(n-1))
    y = np.r_[np.ones(30), np.zeros(12)]
    n = len(y)
    c = stats.clustered_preference(y, np.arange(n), np.arange(n))
    assert c.deff == pytest.approx(n / (n - 1))
    assert c.n_eff == pytest.approx(n - 1)
    assert c.df == n - 1
    q = sps.t.isf(0.025, n - 1)
    assert (c.ci_low, c.ci_high) == pytest.approx(stats.primitives.wilson_bounds(30 / n, n - 1, q))
    assert c.p_value == pytest.approx(2 * sps.t.sf(2 * (30 / n - 0.5) * math.sqrt(n - 1), n - 1))
    # and close to scipy's Wilson interval for the same counts
    ci = sps.binomtest(30, n).proportion_ci(method="wilson")
    assert c.ci_low == pytest.approx(ci.low, abs=0.02) and c.ci_high == pytest.approx(ci.high, abs=0.02)


def test_twenty_votes_from_four_groups_are_not_settled():
    # 2 raters x 2 clips, 5 votes each, all for feb1: 20 votes, but only 4 rater x clip groups
    rows = []
    n = 0
    for rater in ("ann", "bob"):
        for ref in ("surya_1", "paul_1"):
            for _ in range(5):
                side = "A" if n % 2 else "B"
                rows.append(vote(n, rater=rater, reference=ref, a_side=side, choice=side))
                n += 1
    s = stats.summarize(vote_rows(rows), n_boot=50)
    r = s.pairs.iloc[0]
    assert (r.wins_a, r.wins_b, r.raters, r.clips) == (20, 0, 2, 2)
    assert sps.binomtest(20, 20).pvalue < 1e-5  # what counting votes as independent would say
    assert r.n_eff <= 2  # worth at most one vote per rater (or clip)
    assert r.p_value > 0.1
    assert r.verdict != "settled" and not r.settled


def test_repeats_controls_and_training_do_not_count_as_preference():
    base = [vote(i, a_side="A" if i % 2 else "B", choice="A" if i % 3 else "B", rater=f"r{i % 4}") for i in range(12)]
    extra = [
        vote(100, a_side="B", choice="B", trial_id="tr0000x", repeat_of="tr0000", rater="r0"),
        {**vote(101, a_side="A", choice="A", rater="r1"), "trial_kind": "training"},
        {**vote(102, a="feb1", b="feb1", a_side="A", choice="A", rater="r2"), "trial_kind": "control"},
    ]
    t1 = stats.pair_table(vote_rows(base))
    df = pd.DataFrame([*base, *extra])
    t2 = stats.pair_table(df)
    cols = ["wins_a", "wins_b", "ties", "win_rate", "ci_low", "ci_high", "p_value"]
    pd.testing.assert_frame_equal(t1[cols], t2[cols])
    s = stats.summarize(df, n_boot=20)
    assert s.kind_counts == {"test": 12, "repeat": 1, "control": 1, "training": 1}
    assert s.n_counted == 12


def test_pair_table_counts_orientation_and_plan():
    rows = []
    # feb1 (item a) vs apr27: apr27 wins 8, feb1 wins 2, 3 ties; sides alternate; 4 raters, 3 clips
    for i in range(13):
        side = "A" if i % 2 else "B"
        other = "B" if side == "A" else "A"
        choice = "none" if i >= 10 else (other if i < 8 else side)
        rows.append(vote(i, a_side=side, choice=choice, rater=f"r{i % 4}", reference=f"ref{i % 3}"))
    # the same pair listed the other way round in a second plan still counts for the pair
    rows.append(vote(20, a="apr27", b="feb1", a_side="A", choice="A", test_id="t2", rater="r0", reference="ref0"))
    t = stats.pair_table(vote_rows(rows), target=60)
    assert len(t) == 1
    r = t.iloc[0]
    assert (r.item_a, r.item_b) == ("feb1", "apr27")
    assert (r.wins_a, r.wins_b, r.ties, r.n, r.decisive, r.used) == (2, 9, 3, 14, 11, 11)
    assert r.win_rate == pytest.approx(2 / 11)
    assert (r.raters, r.clips) == (4, 3)
    assert r.ci_low < r.win_rate < r.ci_high
    assert r.verdict == "planned target not reached" and r.target == 60 and r.target_source == "plan"
    assert r.comparisons == 1 and r.p_adj == pytest.approx(r.p_seq)
    assert r.leader == "apr27"
    assert (r.example_reference, r.example_sentence, r.example_preset) == ("ref0", "pangram", "none")
    # a target below the votes: the first `target` decisive votes decide, the rest are not used
    r5 = stats.pair_table(vote_rows(rows), target=5).iloc[0]
    assert r5.used == 5 and r5.decisive == 11 and r5.verdict in ("settled", "not settled")
    # no target: computed from defaults and said so
    rd = stats.pair_table(vote_rows(rows)).iloc[0]
    assert rd.target_source == "defaults"


def test_holm_applied_across_pairs(rng):
    df = simulate_votes(rng, raters=("ann", "bob", "cyd", "dan", "eve"))
    t = stats.pair_table(df, target=40)
    assert len(t) == 3 and (t["comparisons"] == 3).all()
    np.testing.assert_allclose(t["p_adj"], stats.holm(t["p_seq"]))
    assert list(t["settled"]) == list(t["p_adj"] < 0.05)
    # the verdict interval excludes 50% exactly when its Holm step rejects on its own
    div = stats.holm_divisors(t["p_seq"])
    for r, d in zip(t.itertuples(), div, strict=True):
        excludes = r.verdict_low > 0.5 or r.verdict_high < 0.5
        assert excludes == (r.p_seq < 0.05 / d)
        assert r.verdict_confidence == pytest.approx(1 - 0.05 / d)


def test_planned_votes():
    p = stats.planned_votes(1, n_raters=20, n_clips=12)
    assert p.votes_per_pair > 0 and p.deff >= 1 and p.source == "plan"
    # more comparisons, a smaller effect or more clustering all need more votes
    assert stats.planned_votes(3, n_raters=20, n_clips=12).votes_per_pair > p.votes_per_pair
    assert stats.planned_votes(1, n_raters=20, n_clips=12, min_effect=0.6).votes_per_pair > p.votes_per_pair
    assert stats.planned_votes(1, n_raters=20, n_clips=12, icc_rater=0.04).votes_per_pair > p.votes_per_pair
    # ties only change the trials to schedule
    pt = stats.planned_votes(1, n_raters=20, n_clips=12, tie_rate=0.2)
    assert pt.votes_per_pair == p.votes_per_pair and pt.trials_per_pair == math.ceil(p.votes_per_pair / 0.8)
    # with no clustering and one look the size is the normal-approximation size (t with many df)
    flat = stats.planned_votes(1, n_raters=10**6, n_clips=10**6, icc_rater=0, icc_clip=0)
    c = stats.sequential_boundary(0.05)
    expect = ((c * 0.5 + sps.norm.isf(0.2) * math.sqrt(0.65 * 0.35)) / 0.15) ** 2
    assert flat.votes_per_pair == pytest.approx(expect * stats.planning.PLAN_MARGIN, rel=0.02)
    # too few raters: no feasible size, and the note says what to do
    few = stats.planned_votes(3, n_raters=3, n_clips=8)
    assert few.votes_per_pair is None and "add raters" in few.note
    # ... and how many would do (checked: that many raters is feasible, one fewer is not)
    more = int(re.search(r"e\.g\. (\d+) raters with these 8 clips", few.note).group(1))
    assert stats.planned_votes(3, n_raters=more, n_clips=8).votes_per_pair is not None
    assert stats.planned_votes(3, n_raters=more - 1, n_clips=8).votes_per_pair is None
    assert stats.planned_votes(1, n_raters=1, n_clips=8).votes_per_pair is None
    with pytest.raises(ValueError, match="min_effect"):
        stats.planned_votes(1, min_effect=0.4)
    # the plan stores to_dict(); the target reads back from a dict, an object or the plan itself
    d = {"test_id": "ab-1", "sample_size": p.to_dict()}
    assert stats.target_from_plan(d) == p.votes_per_pair
    assert stats.target_from_plan(p) == p.votes_per_pair
    assert stats.target_from_plan({"test_id": "old"}) is None
    assert stats.SamplePlan.from_dict(p.to_dict()) == p
    assert stats.progress_line(23, 60) == "not settled yet: 23 of 60 planned votes"


def test_presets_are_items_when_the_checkpoint_is_the_same():
    rows = [
        vote(i, a="apr27", b="apr27", preset_a="none", preset_b="denoise", a_side="A", choice="B" if i < 4 else "A")
        for i in range(6)
    ]
    s = stats.summarize(vote_rows(rows), n_boot=50)
    assert s.kind == "presets"
    assert s.items == ["none", "denoise"]
    r = s.pairs.iloc[0]
    assert (r.kind, r.item_a, r.item_b, r.wins_a, r.wins_b) == ("presets", "none", "denoise", 2, 4)
    assert set(s.ranking["kind"]) == {"presets"}


def test_checkpoints_and_presets_are_ranked_separately(rng):
    ck = simulate_votes(rng, raters=("ann", "bob", "cyd", "dan"))
    pr = [
        vote(5000 + i, a="apr27", b="apr27", preset_a="none", preset_b="denoise", a_side="A", choice="B")
        for i in range(6)
    ]
    s = stats.summarize(pd.concat([ck, vote_rows(pr)], ignore_index=True), n_boot=50)
    assert s.kind == "mixed"
    assert set(s.tiers) == {"checkpoints", "presets"}
    rk = s.ranking
    assert set(rk[rk["kind"] == "checkpoints"]["item"]) == {"feb1", "apr24", "apr27"}
    assert set(rk[rk["kind"] == "presets"]["item"]) == {"none", "denoise"}


def test_ranking_recovers_simulated_strengths(rng):
    raters = tuple(f"r{i}" for i in range(12))
    df = pd.concat([simulate_votes(rng, raters=raters, start=i * 1000, test_id="t1") for i in range(2)])
    r = stats.ranking(df, n_boot=200, seed=7)
    assert list(r["item"]) == ["apr27", "feb1", "apr24"]
    assert (r["ci_low"] <= r["strength"]).all() and (r["strength"] <= r["ci_high"]).all()
    assert r.iloc[0]["rank"] == 1 and not r["preliminary"].any()
    ratio = r.iloc[0]["strength"] / r.iloc[2]["strength"]  # true 2 / 0.6 = 3.3
    assert 2.0 < ratio < 6.0
    again = stats.ranking(df, n_boot=200, seed=7)
    pd.testing.assert_frame_equal(r, again)
    other = stats.ranking(df, n_boot=200, seed=8)
    assert not np.allclose(r["ci_low"], other["ci_low"])
    assert (r["n"] == r["wins"] + r["losses"] + r["ties"]).all()


def test_ranking_admits_ties_and_marks_thin_items():
    # all ties: nobody is better; no listing-order winner
    rows = [vote(i, a=a, b=b, choice="none", rater=f"r{i % 3}") for i, (a, b) in enumerate([("feb1", "apr27")] * 9)]
    s = stats.summarize(vote_rows(rows), n_boot=50)
    assert set(s.ranking["rank"]) == {1}
    assert s.tiers["checkpoints"].count("~") == 1 and "|" not in s.tiers["checkpoints"]
    assert s.ranking["preliminary"].all()  # no decisive vote at all
    assert (s.pairs["verdict"] != "settled").all()
    # a checkpoint seen once is preliminary, whatever its strength
    one = [*rows, vote(50, a="feb1", b="apr24", a_side="A", choice="B")]
    rk = stats.summarize(vote_rows(one), n_boot=50).ranking.set_index("item")
    assert bool(rk.at["apr24", "preliminary"])
    # pairs that never met: two separate groups, not ranked against each other
    apart = [vote(60 + i, a="x1", b="x2", choice="A", rater=f"r{i % 3}") for i in range(4)]
    s2 = stats.summarize(vote_rows([*rows, *apart]), n_boot=50)
    assert s2.ranking["group"].nunique() == 2
    assert ";" in s2.tiers["checkpoints"]
    assert len(s2.pairs) == 2  # only pairs that met


def test_bootstrap_interval_narrows_with_more_votes(rng):
    small = simulate_votes(rng, raters=("ann",))
    big = pd.concat([simulate_votes(rng, start=i * 1000) for i in range(6)], ignore_index=True)
    ws = stats.ranking(small, n_boot=200).set_index("item")
    wb = stats.ranking(big, n_boot=200).set_index("item")
    width = lambda t: np.log(t["ci_high"] / t["ci_low"])  # noqa: E731
    assert (width(wb).sort_index() < width(ws).sort_index()).all()


def test_position_bias_detected_on_a_biased_rater(rng):
    df = pd.concat(
        [
            simulate_votes(rng, raters=("ann", "bob"), tie_rate=0.0),
            simulate_votes(rng, raters=("zed",), a_bias={"zed": 0.9}, start=5000),
            simulate_votes(rng, raters=("zed",), a_bias={"zed": 0.9}, start=6000, test_id="t1b"),
        ],
        ignore_index=True,
    )
    pb = stats.position_bias(df).set_index("rater")
    assert pb.at["zed", "p_value"] < 0.01
    assert pb.at["zed", "a_rate"] > 0.7
    assert pb.at["zed", "ci_low"] > 0.5
    for honest in ("ann", "bob"):
        assert pb.at[honest, "p_value"] > 0.01
    k, n = int(pb.at["zed", "chose_a"]), int(pb.at["zed", "decisive"])
    assert pb.at["zed", "p_value"] == pytest.approx(sps.binomtest(k, n).pvalue)
    assert pb.loc["all", "decisive"] == pb.drop(index="all")["decisive"].sum()


def test_rater_consistency_on_repeats():
    rows = [
        vote(0, rater="ann", trial_id="x1", a_side="A", choice="B"),  # apr27 wins
        vote(1, rater="ann", trial_id="x2", a_side="B", choice="A", repeat_of="x1"),  # apr27 again: agrees
        vote(2, rater="ann", trial_id="x3", a_side="A", choice="A"),  # feb1 wins
        vote(3, rater="ann", trial_id="x4", a_side="B", choice="A", repeat_of="x3"),  # same slot A: flip
        vote(4, rater="bob", trial_id="x1", a_side="A", choice="none"),
        vote(5, rater="bob", trial_id="x2", a_side="B", choice="none", repeat_of="x1"),  # tie, tie: agrees
        vote(6, rater="bob", trial_id="x9", a_side="B", choice="none", repeat_of="missing"),  # no original
    ]
    c = stats.rater_consistency(vote_rows(rows)).set_index("rater")
    assert c.at["ann", "repeats"] == 2 and c.at["ann", "agree"] == 1 and c.at["ann", "same_slot"] == 1
    assert c.at["bob", "repeats"] == 1 and c.at["bob", "rate"] == 1.0 and c.at["bob", "same_slot"] == 0
    assert c.at["all", "repeats"] == 3 and c.at["all", "agree"] == 2
    assert c.at["all", "rate"] == pytest.approx(2 / 3)


def test_rater_agreement_on_shared_stimuli():
    rows = []
    n = 0
    # three raters judge the same 4 stimuli (different trial ids and sides per rater)
    answers = {
        "ann": ["apr27", "apr27", "feb1", "tie"],
        "bob": ["apr27", "apr27", "apr27", "tie"],
        "cyd": ["apr27", "feb1", "feb1", "feb1"],
    }
    sentences = ["pangram", "numbers", "names", "question"]
    for rater, wins in answers.items():
        for s, w in zip(sentences, wins, strict=True):
            side = "A" if n % 2 else "B"
            other = "B" if side == "A" else "A"
            choice = "none" if w == "tie" else side if w == "feb1" else other
            rows.append(vote(n, rater=rater, sentence=s, a_side=side, choice=choice, trial_id=f"{rater}{s}"))
            n += 1
    pairs, fk, n_stim = stats.rater_agreement(vote_rows(rows))
    p = pairs.set_index(["rater_1", "rater_2"])
    assert p.at[("ann", "bob"), "shared"] == 4 and p.at[("ann", "bob"), "agree"] == 3
    assert p.at[("ann", "cyd"), "agree"] == 2
    assert p.at[("ann", "bob"), "kappa"] == pytest.approx(stats.cohen_kappa(["a", "a", "f", "t"], ["a", "a", "a", "t"]))
    # Fleiss on the category counts per stimulus (apr27 / feb1 / tie)
    counts = [[3, 0, 0], [2, 1, 0], [1, 2, 0], [0, 1, 2]]
    assert n_stim == 4
    assert fk == pytest.approx(stats.fleiss_kappa(counts))


def test_breakdowns_and_heatmap(rng):
    df = simulate_votes(rng)
    counted = int((df["repeat_of"] == "").sum())  # repeats feed consistency, not the tables
    by_ref = stats.breakdown(df, "reference")
    assert set(by_ref["level"]) == {"surya_1", "surya_2", "paul_1"}
    # every counted vote lands in exactly one reference
    assert by_ref["n"].sum() == counted
    # exploratory p-values are Holm-adjusted across the whole table
    raw = [sps.binomtest(int(r.wins_a), int(r.wins_a + r.wins_b)).pvalue for r in by_ref.itertuples()]
    np.testing.assert_allclose(by_ref["p_adj"], stats.holm(raw))
    by_rater = stats.breakdown(df, "rater")
    assert by_rater["n"].sum() == counted
    by_clip = stats.breakdown(df, "clip")
    assert by_clip["n"].sum() == counted
    assert by_clip.iloc[0]["level"] == "surya_1 / pangram"
    with pytest.raises(ValueError, match="unknown breakdown"):
        stats.breakdown(df, "reason")  # reason tags are counts only
    heat = stats.item_scores(df, "reference")
    assert set(heat["item"]) == {"feb1", "apr24", "apr27"}
    # each vote involves two items, so the item records count each vote twice
    assert heat["n"].sum() == 2 * counted
    assert heat["score"].between(0, 1).all()
    with pytest.raises(ValueError, match="unknown breakdown"):
        stats.breakdown(df, "colour")


def test_reason_table_counts_wins_and_losses():
    rows = [
        vote(0, a_side="A", choice="B", reasons="accent;inflection"),  # apr27 wins
        vote(1, a_side="A", choice="B", reasons="accent"),  # apr27 wins
        vote(2, a_side="B", choice="B", reasons="inflection"),  # feb1 wins
        vote(3, a_side="B", choice="none", reasons="dull/flat"),
        vote(4, a_side="B", choice="A"),
    ]
    r = stats.reason_table(vote_rows(rows)).set_index(["tag", "item"])
    assert r.at[("accent", "apr27"), "won"] == 2 and r.at[("accent", "feb1"), "lost"] == 2
    assert r.at[("inflection", "apr27"), "won"] == 1 and r.at[("inflection", "apr27"), "lost"] == 1
    assert r.at[("dull/flat", "feb1"), "tied"] == 1
    assert list(dict.fromkeys(r.index.get_level_values("tag"))) == ["accent", "inflection", "dull/flat"]
    by_ref = stats.reason_table(vote_rows(rows), by="reference")
    assert set(by_ref["level"]) == {"surya_1"}
    assert not any("p" in c.split("_") for c in r.columns)  # counts and shares, no tests
    assert r.at[("accent", "apr27"), "share_of_votes"] == pytest.approx(2 / 5)


def test_empty_test_gives_an_empty_summary(rng):
    df = simulate_votes(rng)
    s = stats.summarize(df, "no-votes-yet")
    assert s.empty and s.n_votes == 0 and s.kind == "none"
    assert s.pairs.empty and s.ranking.empty and s.heatmap.empty and s.by_reference.empty
    assert s.tests == ["t1"]
    assert s.position.iloc[0]["decisive"] == 0
    e = stats.summarize(vote_rows([]))
    assert e.empty and e.items == [] and list(e.pairs.columns) == stats.PAIR_COLUMNS


def test_summary_selects_a_test(rng):
    df = pd.concat([simulate_votes(rng, test_id="t1"), simulate_votes(rng, test_id="t2", start=9000)])
    s1, s_all = stats.summarize(df, "t1", n_boot=20), stats.summarize(df, n_boot=20)
    assert s1.n_votes == (df["test_id"] == "t1").sum()
    assert s_all.n_votes == len(df)
    assert s_all.tests == ["t1", "t2"]


def test_bad_values_are_named(rng):
    df = simulate_votes(rng).head(5).copy()
    df.loc[3, "choice"] = "C"
    with pytest.raises(VoteTableError, match=r"v00003.*choice.*'C'"):
        stats.summarize(df)
    with pytest.raises(VoteTableError, match="no column choice"):
        stats.pair_table(df.drop(columns=["choice"]))


def test_choice_spelling_and_missing_optional_cells():
    df = vote_rows([vote(0, choice="None"), vote(1, a_side="b", choice="a")])
    df["reasons"] = [None, np.nan]
    p = stats.prepare(df)
    assert list(p["outcome"]) == [0.5, 0.0]
    assert list(p["tags"]) == [(), ()]


def test_rater_agreement_matches_pairwise_kappa(rng):
    # raters judge overlapping subsets of the same clips
    df = simulate_votes(rng, raters=("ann", "bob", "cyd", "dan", "eve"), tie_rate=0.2, repeats=0)
    df = df[rng.random(len(df)) < 0.7]
    pairs, fk, n_stim = stats.rater_agreement(df)
    lab = stats.raters._stimulus_labels(stats.prepare(df)).pivot(index="stimulus", columns="rater", values="label")
    assert len(pairs) == 10
    for r in pairs.itertuples():
        both = lab[[r.rater_1, r.rater_2]].dropna()
        assert r.shared == len(both)
        assert r.agree == (both[r.rater_1] == both[r.rater_2]).sum()
        assert r.kappa == pytest.approx(stats.cohen_kappa(both[r.rater_1], both[r.rater_2]), nan_ok=True)
    counts = np.stack([(lab == c).sum(1).to_numpy() for c in ("first", "second", "tie")], axis=1)
    assert n_stim == (counts.sum(1) >= 2).sum()
    assert fk == pytest.approx(stats.fleiss_kappa(counts))


def test_rater_screening_flags_and_results_without_flagged(rng):
    honest = simulate_votes(rng, raters=("ann", "bob", "cyd"), tie_rate=0.0)
    zed = simulate_votes(rng, raters=("zed",), a_bias={"zed": 0.97}, start=5000)
    # zed also "prefers" slot A between identical clips; ann never does
    controls = [
        {**vote(7000 + i, a="feb1", b="feb1", rater=r, a_side="A", choice="A" if r == "zed" else "none")}
        | {"trial_kind": "control"}
        for r in ("zed", "ann")
        for i in range(8)
    ]
    for i, c in enumerate(controls):
        c["vote_id"], c["trial_id"] = f"c{i}", f"ctl{i}"
    df = pd.concat([honest, zed, pd.DataFrame(controls)], ignore_index=True)
    s = stats.summarize(df, n_boot=20)
    rt = s.raters_table.set_index("rater")
    assert s.flagged == ["zed"]
    assert "position bias" in rt.at["zed", "flags"] and "identical" in rt.at["zed", "flags"]
    assert rt.at["ann", "controls"] == 8 and rt.at["ann", "control_preference"] == 0
    assert rt.at["zed", "control_preference"] == 1.0
    # shown with and without: the second table has none of zed's votes
    assert s.pairs_screened is not None
    assert s.pairs["n"].sum() - s.pairs_screened["n"].sum() == int((zed["repeat_of"] == "").sum())
    # listening: a rater who never heard clip B is flagged when the server recorded it
    deaf = simulate_votes(rng, raters=("dee",), start=8000).assign(fetched_a="1", fetched_b="0")
    rt2 = stats.rater_table(pd.concat([honest, deaf], ignore_index=True)).set_index("rater")
    assert "did not listen" in rt2.at["dee", "flags"] and not rt2.at["ann", "flagged"]


def test_admin_votes_are_left_out_by_default(rng):
    df = simulate_votes(rng, raters=("ann", "bob"))
    df["rater_role"] = np.where(df["rater"] == "bob", "admin", "rater")
    s = stats.summarize(df, n_boot=20)
    assert s.raters == ["ann"] and s.admin_votes == int((df["rater"] == "bob").sum())
    s2 = stats.summarize(df, n_boot=20, include_admin=True)
    assert s2.raters == ["ann", "bob"] and s2.admin_votes == 0


def test_two_way_variance_matches_a_direct_computation():
    # a small crossed design, computed here from the definition with explicit loops
    rng = np.random.default_rng(11)
    n = 60
    rater = rng.integers(0, 5, n)
    clip = rng.integers(0, 4, n)
    y = (rng.random(n) < 0.3 + 0.1 * rater / 4 + 0.1 * (clip % 2)).astype(float)
    p = y.mean()
    e = y - p

    def meat(labels):
        groups = {}
        for lab, r in zip(labels, e, strict=True):
            groups[lab] = groups.get(lab, 0.0) + r
        g = len(groups)
        return g / (g - 1) * sum(v * v for v in groups.values())

    v = meat(rater) + meat(clip) - meat(list(zip(rater, clip, strict=True)))
    deff = max(1.0, (v / n**2) / (p * (1 - p) / n))
    c = stats.clustered_preference(y, rater, clip)
    assert c.deff == pytest.approx(deff)
    assert c.n_eff == pytest.approx(n / deff)
    assert (c.raters, c.clips, c.df) == (5, 4, 3)
    z = 2 * (p - 0.5) * math.sqrt(n / deff)
    assert c.z == pytest.approx(z) and c.p_value == pytest.approx(2 * sps.t.sf(abs(z), 3))
    # labels of any type give the same answer
    named = stats.clustered_preference(y, [f"r{x}" for x in rater], [f"c{x}" for x in clip])
    assert named.deff == pytest.approx(c.deff)
    # one rater: nothing can be said beyond that rater
    one = stats.clustered_preference(y, np.zeros(n), clip)
    assert one.df == 0 and math.isnan(one.p_value)
    empty = stats.clustered_preference([], [], [])
    assert empty.n == 0 and math.isnan(empty.estimate)


def test_controls_or_training_only_give_an_empty_head_to_head():
    rows = [{**vote(i, a="feb1", b="feb1", choice="A"), "trial_kind": "control"} for i in range(3)]
    rows += [{**vote(10 + i, choice="B"), "trial_kind": "training"} for i in range(3)]
    s = stats.summarize(pd.DataFrame(rows), n_boot=20)
    assert s.n_counted == 0 and s.pairs.empty and s.ranking.empty and s.tiers == {}
    assert s.kind_counts["control"] == 3 and s.kind_counts["training"] == 3
    assert s.plan is None


def test_these_raters_variance_matches_a_direct_computation():
    # raters fixed: one-way jackknife (CR3) clusters by clip on residuals around each rater's own share
    rng = np.random.default_rng(12)
    n = 80
    rater = rng.integers(0, 3, n)
    clip = rng.integers(0, 10, n)
    y = (rng.random(n) < 0.35 + 0.15 * rater + 0.05 * (clip % 3)).astype(float)
    p = y.mean()
    share = {r: y[rater == r].mean() for r in set(rater)}

    def cr3(values, shares):
        sums, sizes = {}, {}
        for c_, r_, v_ in zip(clip, rater, values, strict=True):
            sums[c_] = sums.get(c_, 0.0) + v_ - shares(r_)
            sizes[c_] = sizes.get(c_, 0) + 1
        meat = sum((sums[k] / (1 - sizes[k] / n)) ** 2 for k in sums)
        return meat * n / (n - 3) / n**2  # n / (n - raters): the raters' shares are estimated

    v = cr3(y, share.get)
    assert len(set(clip)) == 10
    deff = max(1.0, v / (p * (1 - p) / n))
    c = stats.clip_clustered_preference(y, rater, clip)
    assert c.deff == pytest.approx(deff) and c.n_eff == pytest.approx(n / deff)
    assert (c.raters, c.clips, c.df) == (3, 10, 9)  # t on clips - 1 df, whatever the number of raters
    z = 2 * (p - 0.5) * math.sqrt(n / deff)
    assert c.p_value == pytest.approx(2 * sps.t.sf(abs(z), 9))
    # two raters and many clips: inference for these raters, none for raters in general
    two = np.arange(n) % 2
    assert stats.clip_clustered_preference(y, two, clip).df == 9
    assert stats.clustered_preference(y, two, clip).df == 1
    # a rater's own level is not noise: a rater who always picks the first item adds no variance
    y2 = np.where(rater == 0, 1.0, y)
    lone = stats.clip_clustered_preference(y2, rater, clip)
    v2 = cr3(y2, lambda r_: y2[rater == r_].mean())
    assert lone.deff == pytest.approx(max(1.0, v2 / (y2.mean() * (1 - y2.mean()) / n)))
    # one clip: nothing can be said; unanimous votes: each clip counts once
    assert math.isnan(stats.clip_clustered_preference(y, rater, np.zeros(n)).p_value)
    assert stats.clip_clustered_preference(np.ones(n), rater, clip).n_eff == pytest.approx(10)


def test_planned_votes_gives_a_target_for_each_scope():
    from workbench.stats.planning import PLAN_MARGIN, _effective_needed, sequential_boundary, t_quantile_for

    # the team's design: 3 raters, 16 clips: unreachable for raters in general, reachable for these raters
    sp = stats.planned_votes(1, n_raters=3, n_clips=16)
    assert sp.votes_per_pair is None and sp.votes_these_raters and sp.min_raters > 3
    assert "for these raters only" in sp.note and str(sp.votes_these_raters) in sp.note
    assert stats.planned_votes(1, n_raters=sp.min_raters, n_clips=16).votes_per_pair is not None
    assert stats.planned_votes(1, n_raters=sp.min_raters - 1, n_clips=16).votes_per_pair is None
    # the target solves the same power equation, on clips - 1 df, with the clip design effect
    n0 = _effective_needed(0.65, t_quantile_for(sequential_boundary(0.05), 15), 15, 0.8)
    n = sp.votes_these_raters / PLAN_MARGIN
    assert n / (1 + (n / 16 - 1) * 0.02) == pytest.approx(n0, rel=0.02)
    assert sp.target("these_raters") == sp.votes_these_raters and sp.target("raters_in_general") is None
    with pytest.raises(ValueError, match="unknown scope"):
        sp.target("everyone")
    # more comparisons, a smaller effect or fewer clips ask for more
    assert stats.planned_votes(3, n_raters=3, n_clips=16).votes_these_raters > sp.votes_these_raters
    assert stats.planned_votes(1, n_raters=3, n_clips=16, min_effect=0.7).votes_these_raters < sp.votes_these_raters
    assert stats.planned_votes(1, n_raters=3, n_clips=1).votes_these_raters is None


def test_these_raters_verdict_is_separate_and_labelled(rng):
    # 2 raters who agree strongly, many clips: settled for these raters, never for raters in general
    rows = []
    for i in range(120):
        side = "AB"[i % 2]
        other = "B" if side == "A" else "A"
        win = rng.random() < 0.85
        rows.append(vote(i, rater=("ann", "bob")[i % 2], reference=f"ref{i % 12}", a_side=side,
                         choice=side if win else other))  # fmt: skip
    t = stats.pair_table(vote_rows(rows), target=120)
    [r] = t.itertuples(index=False)
    assert r.verdict == "not settled" and not r.settled  # t with 1 df: nothing for raters in general
    assert r.verdict_these == "settled" and r.settled_these and r.scope == "these_raters"
    assert r.verdict_low_these > 0.5 and r.target_these == 120 and r.used_these == 120
    # one pair: Holm and the boundary as for the other scope
    assert r.p_adj_these == pytest.approx(r.p_seq_these) and r.verdict_confidence_these == pytest.approx(0.95)


def three_checkpoints(rng: np.random.Generator, *, p_first: float, takes: int = 2) -> pd.DataFrame:
    """feb1 vs apr24, feb1 vs apr27 (feb1 wins each with ``p_first``) and apr24 vs apr27 (level), from 3 raters
    on 16 clips (paul_1, paul_2 x 8 sentences), ``takes`` votes per rater, clip and pair: 96 votes per pair by default.
    """
    rows, n = [], 0
    for a, b, p in (("feb1", "apr24", p_first), ("feb1", "apr27", p_first), ("apr24", "apr27", 0.5)):
        for c in range(16):
            for rater in ("ann", "bob", "cy"):
                for _ in range(takes):
                    side = "AB"[n % 2]
                    other = "B" if side == "A" else "A"
                    where = {"reference": f"paul_{1 + c // 8}", "sentence": f"s{c % 8}"}
                    choice = side if rng.random() < p else other
                    rows.append(vote(n, a=a, b=b, rater=rater, a_side=side, choice=choice, **where))
                    n += 1
    return vote_rows(rows)


def test_tier_numbers_draw_a_boundary_only_where_every_item_above_beats_every_item_below():
    order = ["a", "b", "c"]
    assert stats.tier_numbers(order, set()) == {"a": 1, "b": 1, "c": 1}
    assert stats.tier_numbers([], set()) == {}
    # a beats c, nobody beats b: "a ~ b ~ c", not "a ~ b | c" (that would claim b beats c)
    assert stats.tier_numbers(order, {("a", "c")}) == {"a": 1, "b": 1, "c": 1}
    # a beats both: "a | b ~ c"
    assert stats.tier_numbers(order, {("a", "b"), ("a", "c")}) == {"a": 1, "b": 2, "c": 2}
    # every pair settled in sort order: three tiers
    assert stats.tier_numbers(order, {("a", "b"), ("a", "c"), ("b", "c")}) == {"a": 1, "b": 2, "c": 3}
    # a beats b, b beats c, a vs c never settled (or never met): no boundary can hold
    assert stats.tier_numbers(order, {("a", "b"), ("b", "c")}) == {"a": 1, "b": 1, "c": 1}
    # a win against the sort order draws no boundary
    assert stats.tier_numbers(order, {("b", "a"), ("c", "a")}) == {"a": 1, "b": 1, "c": 1}
    # four items: a and b both beat c and d, c vs d level: "a ~ b | c ~ d"
    four = {(x, y) for x in "ab" for y in "cd"}
    assert stats.tier_numbers(["a", "b", "c", "d"], four) == {"a": 1, "b": 1, "c": 2, "d": 2}


def test_settled_beats_reads_only_its_own_scope():
    pairs = pd.DataFrame(
        {
            "item_a": ["x", "x", "y"],
            "item_b": ["y", "z", "z"],
            "settled": [True, False, False],
            "leader": ["y", "x", ""],
            "settled_these": [True, True, False],
            "leader_these": ["y", "x", "y"],
        }
    )
    assert stats.settled_beats(pairs) == {("y", "x")}
    assert stats.settled_beats(pairs, "these_raters") == {("y", "x"), ("x", "z")}
    with pytest.raises(KeyError):
        stats.settled_beats(pairs, "everyone")


def test_ranking_has_tiers_for_each_scope(rng):
    # 3 raters: feb1 beats both others for these raters; nothing can be said for raters in general
    df = three_checkpoints(rng, p_first=0.9)
    pairs = stats.pair_table(df, target=96)
    p = pairs.set_index(["item_a", "item_b"])
    assert not pairs["settled"].any()
    assert p.at[("feb1", "apr24"), "settled_these"] and p.at[("feb1", "apr27"), "settled_these"]
    assert not p.at[("apr24", "apr27"), "settled_these"]
    assert (pairs["leader_these"].iloc[:2] == "feb1").all()
    rk = stats.ranking(df, pairs=pairs, n_boot=50).set_index("item")
    assert (rk["tier"] == 1).all() and (rk["rank"] == rk["tier"]).all()
    assert rk.at["feb1", "tier_these"] == 1 and rk.at["apr24", "tier_these"] == rk.at["apr27", "tier_these"] == 2
    assert "|" not in stats.tiers_text(rk.reset_index(), "checkpoints")
    these = stats.tiers_text(rk.reset_index(), "checkpoints", "these_raters")
    assert these.startswith("feb1 | ") and these.count("|") == 1 and these.count("~") == 1
    # the summary carries both lines; verdicts settled only for these raters never move the other tier
    s = stats.summarize(df, plan=96, n_boot=50)
    assert "|" not in s.tiers["checkpoints"] and s.tiers_these["checkpoints"] == these
    # the sort stays by lower bound, whatever the scope
    lo = rk["ci_low"].loc[list(stats.ranking(df, pairs=pairs, n_boot=50)["item"])]
    assert lo.is_monotonic_decreasing
    # no preference at all: one tier in both scopes
    level = three_checkpoints(np.random.default_rng(4), p_first=0.5)
    flat = stats.ranking(level, pairs=stats.pair_table(level, target=96), n_boot=50)
    assert (flat["tier"] == 1).all() and (flat["tier_these"] == 1).all()
