"""The Compare logic without the UI: :class:`workbench.comparison.Comparer` on the demo catalog."""

from __future__ import annotations

from urllib.parse import parse_qsl

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from workbench import analysis
from workbench.comparison import Comparer, compare_link, make_selection, parse_link
from workbench.errors import CatalogError, RenderError
from workbench.render import CLIP_SR, Renderer


@pytest.fixture
def comparer(demo_catalog) -> Comparer:
    return Comparer(demo_catalog, Renderer(demo_catalog))


def test_compare_measures_the_rendered_files_and_writes_what_it_shows(demo_catalog, comparer, tmp_path):
    sel = make_selection(demo_catalog, "surya_1", "pangram", None, ["feb1", "apr24"], "none")
    c = comparer.compare(sel, out_dir=tmp_path / "out")
    assert [m.label for m in c.clips] == ["feb1", "apr24"] and c.failures == []
    for m in c.clips:  # the samples measured are the clip files' samples (read here with soundfile)
        y, sr = sf.read(m.clip.path, dtype="float32")
        assert sr == CLIP_SR and np.allclose(m.y, y, atol=1e-6)
        assert m.analysis.duration_s == pytest.approx(len(y) / sr, abs=0.01)
    assert c.reference is not None and c.reference.clip is None  # the recording is shown first, not rendered
    assert {"feb1", "apr24"} <= set(c.metrics.index)
    # the metrics CSV offered for download holds the table on screen
    csv = next(f for f in c.files if f.name.endswith("_metrics.csv"))
    saved = pd.read_csv(csv, index_col="clip")
    assert list(saved.index) == list(c.metrics.index)
    assert np.allclose(saved["duration_s"], c.metrics["duration_s"], equal_nan=True)
    for png in c.figures.values():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # two different checkpoints: the verdict says so
    assert c.verdict is not None and c.verdict.verdict == "different"


def test_comparing_again_measures_nothing_again(demo_catalog, comparer, tmp_path, monkeypatch):
    sel = make_selection(demo_catalog, "paul_1", "names", None, ["feb1", "apr27"], "none")
    first = comparer.compare(sel, out_dir=tmp_path / "a")
    calls = []
    real = analysis.analyse
    monkeypatch.setattr(analysis, "analyse", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = comparer.compare(sel, out_dir=tmp_path / "b")
    assert calls == [] and again.metrics.equals(first.metrics)


def test_the_selection_link_reopens_the_same_selection(demo_catalog):
    sel = make_selection(
        demo_catalog, "surya_1", None, "Custom words here.", ["feb1", "apr24"], "none", ["none", "denoise"], take=3
    )
    query = dict(parse_qsl(sel.link().lstrip("?")))
    values, problems = parse_link(query, demo_catalog)
    assert problems == []
    assert values == {
        "reference": "surya_1",
        "text": "Custom words here.",
        "checkpoints": ["feb1", "apr24"],
        "presets": ["none", "denoise"],
        "take": 3,
    }


def test_a_link_naming_unknown_entries_keeps_the_rest_and_says_what_was_dropped(demo_catalog):
    link = compare_link("surya_1", "nope", ["feb1", "ghost", "apr24"], preset="none", take=2)
    values, problems = parse_link(dict(parse_qsl(link.lstrip("?"))), demo_catalog)
    assert values["checkpoints"] == ["feb1", "apr24"] and "sentence" not in values
    assert any("sentence 'nope'" in p for p in problems) and any("checkpoint 'ghost'" in p for p in problems)


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        ((["feb1"], None), RenderError, "pick 2 to"),
        ((["feb1"], 1), RenderError, "same clip"),
        ((["feb1", "ghost"], None), CatalogError, "ghost"),
    ],
)
def test_bad_selections_are_refused_naming_the_problem(demo_catalog, args, error, words):
    checkpoints, retake = args
    with pytest.raises(error, match=words):
        make_selection(demo_catalog, "surya_1", "pangram", None, checkpoints, "none", retake=retake)


def test_one_checkpoint_against_another_take_of_itself(demo_catalog, comparer, tmp_path):
    sel = make_selection(demo_catalog, "surya_1", "pangram", None, ["feb1"], "none", retake=2)
    assert sel.labels() == ["feb1 take 1", "feb1 take 2"]
    c = comparer.compare(sel, out_dir=tmp_path / "out")
    assert [m.clip.request.take for m in c.clips] == [1, 2]


def test_a_phone_gets_narrow_figures_and_zooming_keeps_them(demo_catalog, comparer, tmp_path):
    from PIL import Image

    from workbench import plots

    sel = make_selection(demo_catalog, "paul_2", "question", None, ["apr27", "apr24"], "none")
    c = comparer.compare(sel, out_dir=tmp_path / "out", narrow=True)
    assert c.narrow and set(c.figures) >= {"overlay", "spectrum", "spectrograms", "pitch", "energy"}
    for name, png in c.figures.items():
        assert png.name.endswith(f"_{name}_phone.png"), png
        with Image.open(png) as im:  # 4.2 inches at 200 dpi
            assert im.width == round(plots.NARROW_IN * plots.NARROW_DPI), (name, im.size)
            assert im.height > im.width * 0.7, (name, im.size)
    zoomed = comparer.zoom(c, 0.5, 1.5, out_dir=tmp_path / "out")
    assert zoomed.name.endswith("_phone.png")
    with Image.open(zoomed) as im:
        assert im.width == round(plots.NARROW_IN * plots.NARROW_DPI)
    enh = comparer.enhancement_diff("paul_2", "question", None, "apr27", "denoise", out_dir=tmp_path, narrow=True)
    with Image.open(enh.figure) as im:
        assert enh.figure.name.endswith("_enhancement_phone.png") and im.width == round(4.2 * plots.NARROW_DPI)
    # the desktop figures of the same selection keep their names and size
    wide = comparer.compare(sel, out_dir=tmp_path / "wide")
    with Image.open(wide.figures["overlay"]) as im:
        assert not wide.narrow and wide.figures["overlay"].name.endswith("_overlay.png")
        assert im.width == round(plots.WIDE_IN * plots.DPI)
