"""Bad-take flags in the app: Compare's status and metrics, the batch panel, the flagged-takes list, regenerate."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from tiny_models import write_tiny_catalog

from workbench.catalog import load_catalog
from workbench.ui import compare, quality_panel
from workbench.ui.common import AppContext
from workbench.ui.render_panel import batch_render
from workbench.users import UserStore

PROGRAMS = Path(__file__).resolve().parent / "programs"


def req(user: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(username=user, query_params={})


def make_ctx(cat) -> AppContext:
    return AppContext.create(catalog=cat, votes_path=cat.path.parent / "votes.csv", data_dir=cat.settings.data_dir)


@pytest.fixture
def demo_ctx(demo_catalog) -> AppContext:
    return make_ctx(demo_catalog)


@pytest.mark.slow  # runs the DNSMOS model
def test_compare_shows_the_broken_demo_take_as_flagged_with_dnsmos(demo_ctx):
    with gr.Blocks():
        view = compare.build()
    out = compare.compare(demo_ctx, view, compare.CompareInputs("surya_2", "names", "", ["feb1", "apr27"]), req(), None)
    status = out[view.status]
    assert "**Flagged takes**" in status
    assert "⚠ apr27" in status and "3.0 s of silence at 1.3 s" in status
    assert "⚠ feb1" not in status
    metrics = out[view.metrics]
    row = metrics[metrics["metric"] == "DNSMOS overall (OVRL, 1-5)"]
    assert len(row) == 1
    values = [v for k, v in row.iloc[0].items() if k != "metric" and "−" not in k and "reference" not in k]
    assert len(values) == 2 and all(1.0 < float(v) < 5.0 for v in values)


def test_flagged_list_and_regenerate_refuse_demo_clips_with_the_reason(demo_ctx):
    r = demo_ctx.services.renderer
    from workbench.quality import assess_many
    from workbench.render import RenderRequest

    clips = [r.render(RenderRequest("apr27", "surya_2", s)) for s in ("names", "pangram")]
    assess_many(quality_panel.get_quality_store(demo_ctx), demo_ctx.catalog, clips)
    summary, table, picker = quality_panel.list_flagged(demo_ctx, req())
    assert summary.startswith("1 flagged take(s)")
    assert list(table["sentence"]) == ["names"] and "3.0 s of silence" in table["why flagged"].iloc[0]
    assert table["takes rendered"].iloc[0] == "1"
    with pytest.raises(gr.Error, match="pre-rendered demo clips, so a new take would sound the same"):
        quality_panel.regenerate_flagged(demo_ctx, picker.value, req(), lambda *a, **k: None)
    with pytest.raises(gr.Error, match="Pick a flagged take first"):
        quality_panel.regenerate_flagged(demo_ctx, "no-such-key", req(), lambda *a, **k: None)


def test_flagged_takes_are_for_admins_only(demo_ctx, tmp_path):
    users = UserStore(tmp_path / "users.json")
    users.add("rob", "rob-secret-1", "rater")
    demo_ctx.users = users
    with pytest.raises(gr.Error, match="for admins"):
        quality_panel.list_flagged(demo_ctx, req("rob"))
    with pytest.raises(gr.Error, match="for admins"):
        quality_panel.regenerate_flagged(demo_ctx, "x", req("rob"), lambda *a, **k: None)


def test_batch_panel_lists_flags(demo_ctx):
    _, df = batch_render(
        demo_ctx, ["apr27"], ["surya_2"], ["names", "pangram"], ["none"], 1, req(), lambda f, desc=None: None
    )
    flags = dict(zip(df["sentence"], df["flags"], strict=True))
    assert flags["names"].startswith("3.0 s of silence at 1.3 s") and flags["pangram"] == ""


def test_regenerate_renders_the_next_take_of_a_flagged_model_clip(tmp_path, tiny_xtts_dir):
    """A chain that inserts a 2 s pause makes every take of the tiny model a bad take on demand."""
    gap = f'[{sys.executable}, {PROGRAMS / "gap.py"}, "{{input}}", "{{output}}", "2.0"]'
    cat = load_catalog(
        write_tiny_catalog(
            tmp_path / "cat",
            {"tiny": tiny_xtts_dir},
            extra_yaml=f"  gap:\n    steps:\n      - {{type: command, argv: {gap}}}\n      - {{type: loudness}}\n",
        )
    )
    ctx = make_ctx(cat)
    from workbench.quality import assess_clip
    from workbench.render import RenderRequest

    first = ctx.services.renderer.render(RenderRequest("tiny", "ref_a", "short", enhancement="gap"))
    assert assess_clip(quality_panel.get_quality_store(ctx), cat, first).flagged
    _, _, picker = quality_panel.list_flagged(ctx, req())
    result, path, summary, table, _ = quality_panel.regenerate_flagged(ctx, picker.value, req(), lambda *a, **k: None)
    assert "Rendered **take 2** of tiny · ref_a · short · gap" in result
    assert "flagged too: 2.0 s of silence" in result  # the chain inserts the pause in every take
    assert Path(path).is_file() and Path(path) != first.path
    assert summary.startswith("2 flagged take(s)") and sorted(table["take"]) == [1, 2]
    assert set(table["takes rendered"]) == {"2"}
