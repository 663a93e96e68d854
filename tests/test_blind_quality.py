"""Blind tests that exclude flagged takes: at Open a flagged clip plays a clean new take instead."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from tiny_models import write_tiny_catalog

from workbench.abtest import PlanSpec, make_plan
from workbench.catalog import load_catalog
from workbench.quality import QualityStore, exclude_flagged_takes
from workbench.render import Renderer, RenderRequest
from workbench.ui import blind_admin
from workbench.ui.blind import services
from workbench.ui.common import AppContext

PROGRAMS = Path(__file__).resolve().parent / "programs"


@pytest.fixture
def flaky_catalog(tmp_path, tiny_xtts_dir):
    """Tiny XTTS plus a preset whose chain puts a 2 s pause into take 1 only (seed 1234): a flaky bad take."""
    gap = f'[{sys.executable}, {PROGRAMS / "gap.py"}, "{{input}}", "{{output}}", "2.0", "{{seed}}", "1234"]'
    extra = f"  flaky:\n    steps:\n      - {{type: command, argv: {gap}}}\n      - {{type: loudness}}\n"
    return load_catalog(write_tiny_catalog(tmp_path / "cat", {"tiny": tiny_xtts_dir}, extra_yaml=extra))


def spec(**kw) -> PlanSpec:
    fields = dict(title="Post-processing check", checkpoints=["tiny"], presets=["none", "flaky"],
                  references=["ref_a"], sentences=["short"], controls=1, seed=7)  # fmt: skip
    return PlanSpec(**{**fields, **kw})


def test_a_flagged_take_is_swapped_for_the_next_clean_one(flaky_catalog):
    r = Renderer(flaky_catalog)
    store = QualityStore(flaky_catalog.settings.cache_dir, with_dnsmos=False)
    plan = make_plan(flaky_catalog, spec(exclude_flagged=True))
    assert plan.exclude_flagged
    new, notes = exclude_flagged_takes(plan, store, r)
    (trial,) = new.trials
    sides = {trial.preset_a: trial.take_a, trial.preset_b: trial.take_b}
    assert sides == {"none": 1, "flaky": 2}
    assert len(notes) == 1 and "tiny · ref_a · short · flaky take 1 (2.0 s of silence" in notes[0]
    assert notes[0].endswith("plays take 2 instead")
    for c in new.control_trials:  # an identical pair stays identical
        assert c.take_a == c.take_b and (c.preset_a != "flaky" or c.take_a == 2)
    again, notes = exclude_flagged_takes(new, store, r)  # nothing left to swap
    assert again.trials == new.trials and notes == []


def test_open_replaces_flagged_takes_only_when_the_plan_asks(flaky_catalog, tmp_path):
    ctx = AppContext.create(catalog=flaky_catalog, votes_path=tmp_path / "votes.csv", data_dir=tmp_path / "data")
    req = SimpleNamespace(username=None, query_params={})
    svc = services(ctx)
    with gr.Blocks():
        view = blind_admin.build(rater_test=gr.Dropdown())
    ids = {}
    for exclude in (True, False):
        plan = svc.plans.save(make_plan(flaky_catalog, spec(exclude_flagged=exclude, title=f"Check {exclude}")))
        out = blind_admin.open_test(ctx, view, plan.test_id, req, lambda *a, **k: None)
        ids[exclude] = (plan.test_id, out[view.message])
    swapped = svc.plans.get(ids[True][0])
    assert swapped.status == "open" and {t.take_b for t in swapped.trials} | {t.take_a for t in swapped.trials} == {
        1,
        2,
    }
    assert "Flagged takes: tiny · ref_a · short · flaky take 1 (2.0 s of silence" in ids[True][1]
    kept = svc.plans.get(ids[False][0])
    assert {t.take_a for t in kept.trials} | {t.take_b for t in kept.trials} == {1}
    assert "Flagged takes" not in ids[False][1]
    # the rater is served the swapped take: the clip for the flaky side is take 2's
    flaky_take = next(t for t in swapped.trials).side(swapped.trials[0].preset_a == "flaky")[2]
    assert flaky_take == 2
    assert ctx.services.renderer.cached(RenderRequest("tiny", "ref_a", "short", "flaky", 2)) is not None
