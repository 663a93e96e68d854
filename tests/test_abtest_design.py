"""Blind-test designs: properties of plan generation (hypothesis), the ``plan`` CLI, controls and takes."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from workbench.abtest import (
    PlanSpec,
    design_summary,
    draw_schedule,
    make_plan,
    plan_from_yaml,
    plan_requests,
)
from workbench.abtest.schedule import MIN_REPEAT_GAP, summary_lines
from workbench.catalog import load_catalog
from workbench.cli import main
from workbench.errors import PlanError

CATALOG = load_catalog(ROOT / "checkpoints.yaml")  # read only: plans only look up ids


# ---------------------------------------------------------------------------- properties


@st.composite
def specs(draw) -> PlanSpec:
    presets = draw(st.sampled_from([["none"], ["none"], ["none", "denoise"]]))
    cks = ["apr27"] if len(presets) > 1 else draw(st.sampled_from([["feb1", "apr27"], ["feb1", "apr24", "apr27"]]))
    refs = draw(st.lists(st.sampled_from(list(CATALOG.references)), min_size=1, max_size=2, unique=True))
    sents = draw(st.lists(st.sampled_from(list(CATALOG.sentences)), min_size=1, max_size=4, unique=True))
    raters = draw(st.one_of(st.none(), st.integers(2, 6)))
    return PlanSpec(
        title="Round",
        checkpoints=cks,
        references=refs,
        sentences=sents,
        presets=presets,
        takes=draw(st.integers(1, 2)),
        controls=draw(st.integers(0, 3)),
        repeats=draw(st.integers(0, 4)),
        training=draw(st.integers(0, 2)),
        raters=raters,
        raters_per_trial=draw(st.integers(1, raters)) if raters else 2,
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def build(spec: PlanSpec):
    try:
        return make_plan(CATALOG, spec)
    except PlanError:
        assume(False)  # e.g. more repeats than trials: refused, covered by the example tests


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_every_schedule_keeps_the_design(spec):
    plan = build(spec)
    n_raters = plan.raters or 3
    scheds = [draw_schedule(plan, f"rater{j}", slot=j) for j in range(n_raters)]
    base = plan.per_pair * len(plan.pairs)
    coverage = Counter()
    plan_sides = defaultdict(Counter)
    for sched in scheds:
        kinds = Counter(s.trial.kind for s in sched.trials)
        assert len(sched.trials) == plan.per_rater
        assert kinds == Counter(
            {
                k: v
                for k, v in {
                    "test": base,
                    "repeat": min(plan.repeats, base),
                    "control": plan.controls,
                    "training": plan.training,
                }.items()
                if v
            }
        )
        # training first; every pair equally often among the test trials
        assert all(s.trial.kind == "training" for s in sched.trials[: plan.training])
        assert Counter(s.trial.pair for s in sched.trials if s.trial.kind == "test") == {
            p: plan.per_pair for p in plan.pairs
        }
        coverage.update(s.trial.trial_id for s in sched.trials if s.trial.kind == "test")
        # sides: per pair, checkpoint_a on A and on B differ by at most one (repeats included)
        sides = defaultdict(Counter)
        for s in sched.trials:
            if s.trial.kind in ("test", "repeat"):
                sides[s.trial.pair][s.a_side] += 1
                plan_sides[s.trial.pair][s.a_side] += 1
        assert all(abs(c["A"] - c["B"]) <= 1 for c in sides.values()), sides
        # repeats: after their original, spread evenly over the pairs
        pos = {s.trial.trial_id: s.position for s in sched.trials}
        reps = [s for s in sched.trials if s.trial.kind == "repeat"]
        for r in reps:
            assert r.trial.trial_id == r.trial.repeat_of + "r"
            gap = r.position - pos[r.trial.repeat_of]
            assert gap > 0 and (gap > MIN_REPEAT_GAP or r.position >= len(sched.trials) - MIN_REPEAT_GAP - 1)
        per_pair = Counter(r.trial.pair for r in reps)
        if reps:
            assert max(per_pair.values()) - min(per_pair.get(p, 0) for p in plan.pairs) <= 1
        # controls: the same clip on both sides
        for s in sched.trials:
            if s.trial.kind == "control":
                assert s.slot("A") == s.slot("B")
            else:
                assert s.slot("A") != s.slot("B")
    if plan.raters:  # subset design: every trial rated by at least k raters, within one of each other
        assert len(coverage) == len(plan.trials)
        assert min(coverage.values()) >= plan.raters_per_trial
        assert max(coverage.values()) - min(coverage.values()) <= 1
    if not plan.repeats:  # the odd trial of a pair alternates between A and B over raters
        assert all(abs(c["A"] - c["B"]) <= 1 for c in plan_sides.values()), plan_sides
    # reproducible from the seed
    assert make_plan(CATALOG, spec).trials == plan.trials
    assert make_plan(CATALOG, spec).control_trials == plan.control_trials
    assert draw_schedule(plan, "rater0", slot=0) == scheds[0]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_some_repeats_keep_their_sides_and_some_swap(repeats, seed):
    plan = make_plan(
        CATALOG,
        PlanSpec(
            title="R",
            checkpoints=["feb1", "apr24", "apr27"],
            references=["surya_1", "paul_1"],
            sentences=["pangram", "names", "question"],
            repeats=repeats,
            seed=seed,
        ),
    )
    same = swapped = 0
    for j in range(6):
        sched = draw_schedule(plan, f"r{j}", slot=j)
        side = {s.trial.trial_id: s.a_side for s in sched.trials}
        for s in sched.trials:
            if s.trial.kind == "repeat":
                same += s.a_side == side[s.trial.repeat_of]
                swapped += s.a_side != side[s.trial.repeat_of]
    assert same + swapped == 6 * repeats
    assert same >= 1 and swapped >= same  # about a third keep their sides


def test_the_issue_design_feb1_vs_apr27(tmp_path):
    """feb1 vs apr27 on paul_1 and paul_2, 2 takes, 4 controls, 4 repeats, each trial by 2 of 3 raters."""
    plan = make_plan(
        CATALOG,
        PlanSpec(
            title="Accent check",
            question="Which accent is closer to the reference?",
            checkpoints=["feb1", "apr27"],
            references=["paul_1", "paul_2"],
            sentences=list(CATALOG.sentences),
            takes=2,
            play_reference=True,
            controls=4,
            repeats=4,
            raters=3,
            seed=11,
        ),
    )
    s = design_summary(plan)
    assert s["trials"] == 32 and s["raters"] == 3 and s["raters_per_trial"] == {"min": 2, "max": 3}
    assert s["trials_per_rater"] == {
        "total": 30,
        "counted": 30,
        "test": 22,
        "repeats": 4,
        "controls": 4,
        "training": 0,
    }
    assert s["controls"]["total"] == 12 and s["repeats"]["total"] == 12
    assert s["repeats"]["same_side"] == 4 and s["repeats"]["swapped"] == 8
    assert s["side_balance"]["A"] == s["side_balance"]["B"]
    # the planned size comes from the statistics package, with this design's raters and clips
    from workbench.stats import planned_votes

    expected = planned_votes(1, min_effect=0.65, n_raters=3, n_clips=16)
    assert s["planned_votes_per_pair"] == expected.votes_per_pair and plan.sample_size == expected.to_dict()
    # 3 raters never settle a pair for raters in general; "these raters" has a reachable target, and the
    # summary says this design's votes fall short of it
    assert s["planned_votes_per_pair"] is None and s["planned_votes_these_raters"] == expected.votes_these_raters
    assert any(
        f"{expected.votes_these_raters} decisive votes per pair are planned and 3 raters" in n for n in s["notes"]
    )
    assert any("planned for these raters only" in line for line in summary_lines(s))
    assert s["play_reference"] and s["question"] == "Which accent is closer to the reference?"
    assert {t[4] for t in plan_requests(plan)} == {1, 2}  # both takes rendered
    controls = [t for t in plan.control_trials]
    assert {(t.checkpoint_a, t.checkpoint_b) for t in controls} == {("feb1", "feb1"), ("apr27", "apr27")}


def test_the_planned_size_follows_pairs_and_raters():
    def plan(**kw):
        base = dict(title="x", checkpoints=["feb1", "apr27"], references=["paul_1", "paul_2"], sentences=["names"])
        return make_plan(CATALOG, PlanSpec(**{**base, **kw}))

    three = plan(checkpoints=["feb1", "apr24", "apr27"], raters=12, sentences=list(CATALOG.sentences))
    assert three.sample_size["n_pairs"] == 3 and three.sample_size["n_raters"] == 12
    assert three.sample_size["n_clips"] == 16 and three.planned_votes_per_pair > 0
    assert plan(raters=12, sentences=list(CATALOG.sentences), min_effect=0.75).planned_votes_per_pair < (
        plan(raters=12, sentences=list(CATALOG.sentences)).planned_votes_per_pair
    )
    few = design_summary(plan(raters=2))  # 2 raters, 2 clips: no number of votes is enough
    assert few["planned_votes_per_pair"] is None and any("add raters or clips" in n for n in few["notes"])


def test_old_stored_plans_still_load():
    from workbench.abtest import TestPlan

    plan = make_plan(
        CATALOG, PlanSpec(title="x", checkpoints=["feb1", "apr27"], references=["paul_1"], sentences=["names"])
    )
    d = plan.to_dict()
    for k in ("question", "takes", "controls", "training", "raters", "control_trials", "planned_votes_per_pair"):
        d.pop(k)
    for t in d["trials"]:
        for k in ("kind", "take_a", "take_b"):
            t.pop(k)
    old = TestPlan.from_dict(d)
    assert old.question == "Which voice sounds better?" and old.takes == 1 and old.trials[0].kind == "test"


# ---------------------------------------------------------------------------- plan CLI

GOOD = """\
title: Accent check
question: Which accent is closer to the reference?
checkpoints: [feb1, apr27]
references: [paul_1, paul_2]
sentences: all
takes: 2
play_reference: true
controls: 4
repeats: 4
raters: 3
seed: 3
"""


def run_plan(tmp_path, capsys, text: str, *args: str) -> tuple[int, str, str]:
    f = tmp_path / "accent.yaml"
    f.write_text(text)
    code = main(["plan", str(f), "--config", str(ROOT / "checkpoints.yaml"), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plan_cli_prints_the_design(tmp_path, capsys):
    code, out, err = run_plan(tmp_path, capsys, GOOD)
    assert code == 0 and err == ""
    assert "question: Which accent is closer to the reference?" in out
    assert "trials: 32 = 1 pair(s) x 2 reference(s) x 8 sentence(s) x 2 takes" in out
    assert "raters: 3 raters, each trial rated by 2-3" in out
    assert "per rater: 30 trials = 22 test + 4 repeats + 4 identical-pair controls" in out
    assert "reference playable: yes" in out and "speaking rate" in out
    assert "flagged takes replaced at Open: no" in out
    assert "flagged takes replaced at Open: yes" in run_plan(tmp_path, capsys, GOOD + "exclude_flagged: true\n")[1]
    code, out, _ = run_plan(tmp_path, capsys, GOOD, "--json")
    s = json.loads(out)
    assert code == 0 and s["raters_per_trial"] == {"min": 2, "max": 3} and s["controls"]["per_rater"] == 4
    assert s["trials_per_rater"]["total"] == 30 and s["seed"] == 3 and "planned_votes_per_pair" in s
    assert s["exclude_flagged"] is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("title: x\nrepeats: [unclosed\n", "accent.yaml:3: not valid YAML: expected ',' or ']'"),
        (GOOD + "repeat: 2\n", "accent.yaml:12: repeat is not a known field; did you mean 'repeats'?"),
        (GOOD.replace("takes: 2", "takes: 0"), "accent.yaml:6: takes must be >= 1, got 0"),
        (GOOD.replace("[feb1, apr27]", "[feb1, apr28]"), "accent.yaml:3: checkpoints.1 'apr28' not found; available:"),
        (GOOD.replace("Accent check", "feb1 or not"), "accent.yaml:1: title 'feb1 or not' names 'feb1'"),
        (GOOD.replace("raters: 3", "raters: 3\ntrials_per_rater: 8"), "give either raters"),
        (GOOD.replace("controls: 4", "controls: lots"), "accent.yaml:8: controls Input should be a valid integer"),
        (GOOD.replace("title: Accent check\n", ""), "accent.yaml:1: title is required"),
        ("- just\n- a list\n", "accent.yaml:1: a plan must be a mapping"),
    ],
)
def test_plan_cli_names_each_mistake(tmp_path, capsys, text, expected):
    code, out, err = run_plan(tmp_path, capsys, text)
    assert code == 1 and out == ""
    assert "in the test plan" in err and "catalog" not in err.splitlines()[0]
    assert expected in err, err


def test_plan_cli_reports_several_mistakes_at_once(tmp_path, capsys):
    text = GOOD.replace("takes: 2", "takes: -1").replace("[paul_1, paul_2]", "[paul_1, paul_9]") + "contols: 2\n"
    code, _, err = run_plan(tmp_path, capsys, text)
    assert code == 1 and err.startswith("error: 3 problems in the test plan:")
    lines = [ln.strip() for ln in err.splitlines()[1:]]
    assert lines == [
        "accent.yaml:4: references.1 'paul_9' not found; available: surya_1, surya_2, paul_1, paul_2",
        "accent.yaml:6: takes must be >= 1, got -1",
        "accent.yaml:12: contols is not a known field; did you mean 'controls'?",
    ]


def test_plan_cli_missing_file(tmp_path, capsys):
    code = main(["plan", str(tmp_path / "nope.yaml"), "--config", str(ROOT / "checkpoints.yaml")])
    assert code == 1 and "nope.yaml: cannot read the plan file" in capsys.readouterr().err


def test_plan_yaml_builds_the_same_plan_as_the_form():
    plan = plan_from_yaml(CATALOG, GOOD)
    assert plan.takes == 2 and plan.controls == 4 and plan.raters == 3 and plan.play_reference
    assert len(plan.sentences) == len(CATALOG.sentences)
