"""Compare tab: selections and links (workbench.comparison), handlers called directly and through a served app."""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, free_port, mentions
from workbench import comparison
from workbench.catalog import load_catalog
from workbench.errors import CatalogError, RenderError
from workbench.ui import compare
from workbench.ui.common import AppContext
from workbench.users import UserStore

ADMIN = ("ada", "ada-secret-1")
RATER = ("rob", "rob-secret-1")
CHECKPOINT_NAMES = ("feb1", "apr24", "apr27", "feb1_revert", "feb1_clips")


@pytest.fixture(scope="module")
def catalog_path(tmp_path_factory) -> Path:
    """The demo catalog plus a reverted checkpoint (same clips as feb1), a checkpoint with
    no clips, and a loudness-only preset that needs no model."""
    tmp = tmp_path_factory.mktemp("compare-catalog")
    shutil.copytree(ROOT / "demo", tmp / "demo", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (tmp / "demo" / "clips" / "empty").mkdir()
    data = yaml.safe_load((ROOT / "checkpoints.yaml").read_text())
    data["settings"].update(cache_dir=str(tmp / "cache"), data_dir=str(tmp / "data"))
    data["checkpoints"]["feb1_revert"] = {"backend": "prerendered", "demo_dir": "demo/clips/feb1"}
    data["checkpoints"]["broken"] = {"backend": "prerendered", "demo_dir": "demo/clips/empty"}
    data["checkpoints"]["feb1_clips"] = {"backend": "prerendered", "clips_dir": "demo/clips/feb1"}
    data["enhancements"]["loud"] = {"target_lufs": -21}
    path = tmp / "checkpoints.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def ctx(catalog_path) -> AppContext:
    cat = load_catalog(catalog_path)
    return AppContext.create(catalog=cat, votes_path=catalog_path.parent / "votes.csv", data_dir=cat.settings.data_dir)


def req(user: str | None = None, **query) -> SimpleNamespace:
    return SimpleNamespace(username=user, query_params=query)


@pytest.fixture(scope="module")
def view() -> compare.CompareView:
    with gr.Blocks():
        return compare.build()


def form(checkpoints, *, preset="none", side=None, align="trimmed", sentence="pangram", text="", take=1, retake=0):
    """The Compare form's values for reference surya_1 (``side``: a preset per checkpoint)."""
    return compare.CompareInputs(
        "surya_1", sentence, text, checkpoints, preset, bool(side), tuple(side or [None] * 4), take, retake, align
    )


def page_values(view: compare.CompareView, values: compare.CompareInputs) -> dict:
    """What the form's widgets hold for ``values`` (what Gradio hands the form handlers)."""
    return {
        view.reference: values.reference,
        view.sentence: values.sentence,
        view.custom_text: values.custom_text,
        view.checkpoints: values.checkpoints,
        view.preset: values.preset,
        view.per_side: values.per_side,
        **dict(zip(view.side, values.side, strict=True)),
        view.take: values.take,
        view.retake: values.retake,
        view.align: values.align,
    }


def test_the_form_reads_every_widget_by_name(view):
    values = form(["feb1", "apr24"], side=["loud", "none", None, None], text="Hi.", take=3, retake=2, align="dtw")
    assert set(page_values(view, values)) == view.form
    assert view.read(page_values(view, values)) == values


def run(ctx, view, checkpoints, **options):
    return compare.compare(ctx, view, form(checkpoints, **options), req(), None)


class Out:
    """Names for the compare handler's outputs."""

    def __init__(self, view: compare.CompareView, values: dict):
        assert set(values) == set(view.compare_outputs)  # a comparison fills every output it is wired to
        self.status, self.link, self.verdict = values[view.status], values[view.link_box], values[view.verdict]
        self.players = [(values[p.column], values[p.audio], values[p.caption]) for p in view.players]
        self.overlay, self.difference, self.spectrum = (
            values[view.overlay],
            values[view.difference],
            values[view.spectrum],
        )
        self.spectrograms, self.pitch, self.energy = values[view.spectrograms], values[view.pitch], values[view.energy]
        self.metrics, self.pairwise, self.files = values[view.metrics], values[view.pairwise], values[view.files]
        self.enh_checkpoint, self.results = values[view.enh_checkpoint], values[view.results_col]
        self.empty, self.error = values[view.empty], values[view.error_box]

    def visible_players(self) -> list[tuple[str, str, str]]:
        """(file, label, caption) of each shown player."""
        return [(a["value"], a["label"], m["value"]) for col, a, m in self.players if col["visible"]]

    def metric(self, label: str, clip: str) -> float:
        df = self.metrics.set_index("metric")
        return float(df.loc[comparison.METRIC_LABELS[label], clip])


@pytest.fixture(scope="module")
def feb1_vs_apr24(ctx, view) -> Out:
    return Out(view, run(ctx, view, ["feb1", "apr24"]))


# ---------------------------------------------------------------------------- links


def test_compare_link_follows_the_contract():
    link = compare.compare_link("surya_1", "pangram", ["feb1", "apr24"], preset="none", take=2)
    assert link == "?tab=compare&reference=surya_1&sentence=pangram&checkpoints=feb1%2Capr24&preset=none&take=2"
    q = urllib.parse.parse_qs(link[1:])
    assert q["checkpoints"] == ["feb1,apr24"]


def test_links_round_trip_through_the_parser(ctx):
    for link in (
        compare.compare_link("paul_1", "names", ["feb1", "apr27", "apr24"], preset="loud", take=3),
        compare.compare_link("surya_2", "long", ["apr24", "feb1"], preset=["none", "loud"]),
        compare.compare_link("surya_2", None, ["apr24", "feb1"], text="Hello & good=bye, world?"),
    ):
        query = dict(urllib.parse.parse_qsl(link[1:]))
        values, problems = comparison.parse_link(query, ctx.catalog)
        assert problems == []
        sel = comparison.make_selection(
            ctx.catalog,
            values["reference"],
            values.get("sentence"),
            values.get("text"),
            values["checkpoints"],
            values["presets"][0],
            values["presets"] if len(values["presets"]) > 1 else None,
            values.get("take", 1),
        )
        assert sel.link() == link


def test_parse_link_names_what_it_ignored(ctx):
    values, problems = comparison.parse_link(
        {"reference": "nobody", "checkpoints": "feb1,mar3,apr24", "preset": "shiny", "take": "0"}, ctx.catalog
    )
    assert values == {"checkpoints": ["feb1", "apr24"]}
    text = "\n".join(problems)
    assert "reference 'nobody' is not in the catalog" in text and "surya_1" in text
    assert "checkpoint 'mar3'" in text and "preset 'shiny'" in text and "take" in text


def test_selection_is_validated_with_clear_messages(ctx):
    cat = ctx.catalog
    with pytest.raises(RenderError, match="pick 2 to 4 checkpoints to compare; 1 picked"):
        comparison.make_selection(cat, "surya_1", "pangram", "", ["feb1"], "none")
    with pytest.raises(RenderError, match="5 picked"):
        comparison.make_selection(
            cat, "surya_1", "pangram", "", ["feb1", "apr24", "apr27", "feb1_revert", "broken"], None
        )
    with pytest.raises(RenderError, match="reference"):
        comparison.make_selection(cat, None, "pangram", "", ["feb1", "apr24"], "none")
    with pytest.raises(RenderError, match="sentence or type custom text"):
        comparison.make_selection(cat, "surya_1", None, "  ", ["feb1", "apr24"], "none")
    for bad in (0, 1.5, "x", 1001):
        with pytest.raises(RenderError, match="take must be a whole number"):
            comparison.make_selection(cat, "surya_1", "pangram", "", ["feb1", "apr24"], "none", take=bad)
    with pytest.raises(CatalogError, match="'shiny' not found; available: none"):
        comparison.make_selection(cat, "surya_1", "pangram", "", ["feb1", "apr24"], "shiny")
    sel = comparison.make_selection(cat, "surya_1", "pangram", "Say this.", ["feb1", "apr24"], None, take=2.0)
    assert (sel.sentence, sel.text, sel.presets, sel.take) == (None, "Say this.", ("none", "none"), 2)


# ---------------------------------------------------------------------------- the comparison


def test_demo_feb1_vs_apr24_shows_everything(feb1_vs_apr24, ctx):
    out = feb1_vs_apr24
    link = compare.compare_link("surya_1", "pangram", ["feb1", "apr24"])
    assert out.link == link and f"]({link})" in out.status
    players = out.visible_players()
    assert [label for _, label, _ in players] == [
        "surya_1 · reference",
        "feb1 · none · take 1 · DEMO",
        "apr24 · none · take 1 · DEMO",
    ]
    assert players[0][0].endswith("surya_1.flac") and "DEMO" in players[0][2]
    for file, _, caption in players[1:]:
        assert Path(file).is_file() and file.endswith(".flac")
        assert caption.startswith("**DEMO**") and "source `" in caption and "preset none" in caption
    assert "feb1 vs apr24: different" in out.verdict
    for image in (out.overlay, out.spectrum, out.spectrograms, out.pitch, out.energy):
        assert Path(image).read_bytes()[:4] == b"\x89PNG"
    # two different renders do not line up sample by sample: no difference plot, and it says why
    assert out.difference == gr.update(visible=False) and "No difference plot" in out.verdict
    # the differences to the first checkpoint, in words, with their direction
    assert "**What differs from feb1**" in out.verdict
    said = out.verdict.split("**apr24** vs feb1: ")[1].split("\n")[0]
    assert re.search(r"spectral tilt [\d.]+ dB/oct steeper: duller", said)
    assert re.search(r"spectral centroid \d+ Hz \(-\d+%\) lower: darker", said)
    assert "pitch range" in said and "narrower: flatter" in said
    delta = out.metrics.set_index("metric")["apr24 − feb1"]
    assert delta[comparison.METRIC_LABELS["tilt_db_per_oct"]] == pytest.approx(
        out.metric("tilt_db_per_oct", "apr24") - out.metric("tilt_db_per_oct", "feb1"), abs=0.01
    )
    # the flatter demo checkpoint has the measurably narrower F0 range
    assert out.metric("f0_range_st", "apr24") < 0.6 * out.metric("f0_range_st", "feb1")
    assert out.metric("centroid_hz", "apr24") < out.metric("centroid_hz", "feb1")
    assert out.metric("loudness_lufs", "feb1") == pytest.approx(-23.0, abs=0.1)
    assert 0 < out.metric("speaker_similarity", "apr24") < out.metric("speaker_similarity", "surya_1 (reference)")
    assert list(out.pairwise[["clip", "vs clip", "exact match"]].iloc[0]) == ["feb1", "apr24", "different"]
    assert not any("_" in c for c in out.pairwise.columns)  # words, not mcd_db
    assert out.enh_checkpoint == gr.update(choices=["feb1", "apr24"], value="feb1")
    assert out.results == gr.update(visible=True) and out.empty == gr.update(visible=False)


def test_downloads_hold_the_figures_and_the_metrics(feb1_vs_apr24):
    files = [Path(f) for f in feb1_vs_apr24.files]
    assert sorted(f.suffix for f in files) == [".csv", ".csv", ".png", ".png", ".png", ".png", ".png"]
    assert any(f.name.endswith("_spectrum.png") for f in files)
    metrics = pd.read_csv(next(f for f in files if f.name.endswith("_metrics.csv")), index_col="clip")
    assert list(metrics.index) == ["surya_1 (reference)", "feb1", "apr24"]
    assert metrics.loc["apr24", "f0_range_st"] < metrics.loc["feb1", "f0_range_st"]
    assert metrics.loc["apr24", "mcd_db"] > 0 and pd.isna(metrics.loc["feb1", "mcd_db"])
    pairs = pd.read_csv(next(f for f in files if f.name.endswith("_pairwise.csv")))
    assert list(pairs.columns) == ["a", "b", "mcd_db", "verdict", "max_abs_diff", "snr_db"]


def test_a_reverted_checkpoint_matches_exactly(ctx, view):
    out = Out(view, run(ctx, view, ["feb1", "feb1_revert", "apr27"]))
    assert "Exact match, **feb1 vs feb1_revert: identical**" in out.verdict
    assert "**feb1_revert** vs feb1: no notable difference" in out.verdict
    assert list(out.pairwise["exact match"]) == ["identical", "different", "different"]
    assert out.pairwise.iloc[0, 2] == 0.0  # spectral distance
    assert out.difference["visible"] and Path(out.difference["value"]).is_file()
    assert len(out.visible_players()) == 4


@pytest.mark.parametrize("align", ["raw", "dtw"])
def test_alignment_modes(ctx, view, align):
    out = Out(view, run(ctx, view, ["feb1", "apr27"], align=align))
    assert Path(out.overlay).is_file()


def test_a_preset_per_checkpoint(ctx, view):
    out = Out(view, run(ctx, view, ["feb1", "apr24"], side=["none", "loud", None, None]))
    assert out.link == compare.compare_link("surya_1", "pangram", ["feb1", "apr24"], preset=["none", "loud"])
    assert [label for _, label, _ in out.visible_players()][1:] == [
        "feb1 · none · take 1 · DEMO",
        "apr24 · loud · take 1 · DEMO",
    ]
    assert out.metric("loudness_lufs", "apr24 +loud") == pytest.approx(-21.0, abs=0.2)
    assert out.metric("loudness_lufs", "feb1") == pytest.approx(-23.0, abs=0.2)


def test_a_failed_render_is_reported_and_the_rest_shown(ctx, view, recwarn):
    out = Out(view, run(ctx, view, ["feb1", "broken"]))
    assert len(recwarn) == 0  # said once, in the status, not again as a toast
    assert "**Not rendered:**" in out.status and re.search(r"broken: .*no clip for reference 'surya_1'", out.status)
    assert str(ctx.catalog.path.parent) not in out.status  # no server paths on the page
    assert out.error == gr.update(value="", visible=False)
    assert len(out.visible_players()) == 2  # the reference and feb1
    assert "needs two rendered clips" in out.verdict
    assert out.difference == gr.update(visible=False)


def keeps_results(values: dict, error_box, message: str) -> str:
    """A failed action changes only its error box; returns the message shown there."""
    assert list(values) == [error_box], "a failed action must leave the last results on screen"
    box = values[error_box]
    assert box["visible"] is True and re.search(message, box["value"]), box
    assert "The results below are from the last" in box["value"]
    return box["value"]


def test_custom_text_needs_model_files(ctx, view):
    keeps_results(run(ctx, view, ["feb1", "apr24"], text="Something new."), view.error_box, "cannot say custom text")


def test_bad_selection_keeps_the_last_results_and_logs_one_line(ctx, view, caplog):
    caplog.set_level("INFO", logger="workbench.ui.compare")
    shown = keeps_results(
        run(ctx, view, ["feb1"]), view.error_box, r"\*\*Could not compare:\*\* pick 2 to 4 checkpoints"
    )
    records = [r for r in caplog.records if r.name == "workbench.ui.compare"]
    assert len(records) == 1 and records[0].exc_info is None and "\n" not in records[0].getMessage()
    assert "pick 2 to 4" in records[0].getMessage() and shown


def test_messages_carry_no_server_paths(ctx):
    base = ctx.catalog.path.parent
    text = f"{base / 'models' / 'resemble-enhance'}: weights missing; also /srv/secret/place/x.wav is gone"
    assert compare.tidy_message(ctx, text) == "models/resemble-enhance: weights missing; also …/x.wav is gone"


def test_per_side_pickers_follow_the_checkpoints(ctx, view):
    ups = compare.side_pickers(ctx, view, ["apr27", "feb1", "apr24"], req())
    assert [(ups[d]["label"], ups[d]["visible"]) for d in view.side] == [
        ("Preset for apr27", True),
        ("Preset for feb1", True),
        ("Preset for apr24", True),
        ("Preset for checkpoint 4", False),
    ]
    assert compare.toggle_per_side(ctx, True, req()) == gr.update(visible=True)


def test_model_clips_show_their_model_hash_seed_and_settings(tmp_path):
    from workbench.render import Clip, RenderRequest

    prov = {
        "model_hash": "ab12cd34ef56" + "0" * 52,
        "seed": 1235,
        "inference": {"temperature": 0.75, "top_p": 0.85, "top_k": 50, "speed": 1.0, "language": "en"},
        "enhancement": "denoise",
        "loudness_out_lufs": -23.0,
        "timings_s": {"synthesis": 2.34},
    }
    clip = Clip(tmp_path / "x.flac", "f" * 64, RenderRequest("feb1", "surya_1", "pangram", "denoise", 2), "model", prov)
    caption = comparison.clip_caption(clip)
    assert caption.startswith("model `ab12cd34ef56` · seed 1235 · temperature=0.75, top_p=0.85, top_k=50, speed=1.0")
    assert "preset denoise" in caption and "rendered in 2.3 s" in caption and "DEMO" not in caption
    assert comparison.player_label(clip) == "feb1 · denoise · take 2"


# ---------------------------------------------------------------------------- enhancement diff


def enh(ctx, view, preset, user=None):
    return compare.enhancement_diff(ctx, view, "surya_1", "pangram", "", "apr27", preset, 1, req(user), None)


def enh_outputs(view, values: dict) -> list:
    """The diff's outputs: plain, enhanced, caption, figure, table, files, results column, error box."""
    assert set(values) == set(view.enh_outputs)
    return [values[c] for c in view.enh_outputs]


def test_enhancement_diff_measures_what_the_preset_changed(ctx, view):
    plain, enhanced, caption, image, table, files, shown, error = enh_outputs(view, enh(ctx, view, "loud"))
    assert plain["label"] == "apr27 · none · take 1 · DEMO" and enhanced["label"] == "apr27 · loud · take 1 · DEMO"
    assert Path(plain["value"]).is_file() and plain["value"] != enhanced["value"]
    assert Path(image).read_bytes()[:4] == b"\x89PNG"
    deltas = table.set_index("metric")
    assert deltas.loc["loudness (LUFS)", "delta"] == pytest.approx(2.0, abs=0.2)
    assert deltas.loc["F0 median (Hz)", "delta"] == pytest.approx(0.0, abs=0.5)
    assert deltas.loc["speaker sim. between the two", "after"] > 0.99
    assert "MCD between the two" in caption
    assert [Path(f).suffix for f in files] == [".png", ".csv"]


def test_enhancement_diff_runs_the_demo_stand_in_and_says_so(ctx, view):
    plain, enhanced, caption, image, table, files, shown, error = enh_outputs(view, enh(ctx, view, "denoise"))
    assert enhanced["label"] == "apr27 · denoise (demo) · take 1 · DEMO"
    assert "**demo stand-in**" in caption and "not resemble-enhance" in caption
    deltas = table.set_index("metric")
    assert any("spectral" in w for w in deltas["in words"]), deltas["in words"]  # the denoiser changes the timbre
    assert deltas.loc["speaker sim. between the two", "after"] > 0.5
    keeps_results(enh(ctx, view, "none"), view.enh_error, "other than 'none'")


def test_enhancement_diff_names_the_missing_weights_outside_the_demo(ctx, view):
    out = compare.enhancement_diff(ctx, view, "surya_1", "pangram", "", "feb1_clips", "denoise", 1, req(), None)
    shown = keeps_results(out, view.enh_error, "resemble-enhance weights missing")
    assert "models/resemble-enhance" in shown and str(ctx.catalog.path.parent) not in shown


def test_presets_that_cannot_run_are_not_offered(ctx, view):
    out = compare.offer_presets(ctx, view, ["feb1", "feb1_clips"], "denoise", "enhance", None, None, None, req())
    preset, side, note = out[view.preset], [out[d] for d in view.side], out[view.preset_note]
    assert preset["choices"] == [("none", "none"), ("loud", "loud")] and preset["value"] == "none"
    assert [s["value"] for s in side] == ["none"] * 4
    assert note["visible"] and "`denoise`" in note["value"] and "weights missing" in note["value"]
    out = compare.offer_presets(ctx, view, ["feb1", "apr24"], "denoise", None, None, None, None, req())
    assert ("denoise (demo stand-in)", "denoise") in out[view.preset]["choices"]
    assert out[view.preset]["value"] == "denoise" and out[view.preset_note]["visible"] is False
    assert compare.offer_enh_presets(ctx, "feb1_clips", "denoise", req())["choices"] == [("loud", "loud")]


# ---------------------------------------------------------------------------- page load and links


def test_load_fills_defaults_for_admins(ctx, view):
    out = compare.load_page(ctx, view, req())
    assert set(out) == set(view.load_outputs)
    reference, sentence, text = out[view.reference], out[view.sentence], out[view.custom_text]
    checkpoints, preset, per_side = out[view.checkpoints], out[view.preset], out[view.per_side]
    assert reference["value"] == "surya_1" and sentence["value"] == "pangram" and text["value"] == ""
    assert checkpoints["value"] == ["feb1", "apr24"]
    assert checkpoints["choices"] == ["feb1", "apr24", "apr27", "feb1_revert", "broken", "feb1_clips"]
    assert preset["value"] == "none" and per_side["value"] is False
    assert ("denoise (demo stand-in)", "denoise") in preset["choices"]
    assert out[view.enh_preset]["value"] == "denoise"  # first preset other than none, for the enhancement diff
    assert out[view.preset_note]["visible"] is False  # every preset runs on the demo checkpoints
    assert out[view.retake]["value"] == 0  # no retake


def test_load_applies_a_link(ctx, view):
    query = dict(
        urllib.parse.parse_qsl(compare.compare_link("paul_2", "names", ["apr27", "feb1"], ["loud", "none"], 4)[1:])
    )
    out = compare.load_page(ctx, view, req(**query))
    assert out[view.reference]["value"] == "paul_2" and out[view.sentence]["value"] == "names"
    assert out[view.checkpoints]["value"] == ["apr27", "feb1"] and out[view.per_side]["value"] is True
    assert [out[d]["value"] for d in view.side] == ["loud", "none", "none", "none"]
    assert out[view.take]["value"] == 4


def test_load_warns_once_about_a_bad_link(ctx, view, recwarn):
    out = compare.load_page(ctx, view, req(checkpoints="zzz,apr27", preset="shiny", take="0"))
    assert out[view.checkpoints]["value"] == ["apr27"]
    assert len(recwarn) == 1  # one toast for the whole link
    text = str(recwarn[0].message)
    assert "checkpoint 'zzz' is not in the catalog" in text and "preset 'shiny'" in text and "take" in text


def test_a_link_renders_on_load(ctx, view):
    values = form(["apr27", "feb1"], sentence="question")
    link = compare.compare_link("surya_1", "question", ["apr27", "feb1"])
    out = Out(view, compare.compare_from_link(ctx, view, values, req(**dict(urllib.parse.parse_qsl(link[1:]))), None))
    assert out.link == link
    assert len(out.visible_players()) == 3
    assert compare.compare_from_link(ctx, view, values, req(), None) == gr.skip()


# ---------------------------------------------------------------------------- roles


@pytest.fixture(scope="module")
def login_ctx(ctx, tmp_path_factory) -> AppContext:
    users = UserStore(tmp_path_factory.mktemp("users") / "users.json")
    users.add(*ADMIN, role="admin")
    users.add(*RATER, role="rater")
    return AppContext(  # the same services and tab state, with login
        catalog=ctx.catalog,
        votes_path=ctx.votes_path,
        data_dir=ctx.data_dir,
        services=ctx.services,
        users=users,
        state=ctx.state,
    )


def test_raters_get_nothing(login_ctx, view):
    rater = req(RATER[0])
    values = form(["feb1", "apr24"], align="raw")
    with pytest.raises(gr.Error, match="for admins"):
        compare.compare(login_ctx, view, values, rater, None)
    with pytest.raises(gr.Error, match="for admins"):
        compare.enhancement_diff(login_ctx, view, "surya_1", "pangram", "", "feb1", "loud", 1, rater, None)
    with pytest.raises(gr.Error, match="for admins"):
        compare.toggle_per_side(login_ctx, True, rater)
    with pytest.raises(gr.Error, match="for admins"):
        compare.side_pickers(login_ctx, view, ["feb1"], rater)
    with pytest.raises(gr.Error, match="for admins"):
        compare.offer_presets(login_ctx, view, ["feb1"], "none", None, None, None, None, rater)
    with pytest.raises(gr.Error, match="for admins"):
        compare.offer_enh_presets(login_ctx, "feb1", "none", rater)
    with pytest.raises(gr.Error, match="for admins"):
        compare.add_old_renders(login_ctx, view, "x", "demo/clips/feb1", None, "", [], rater)
    with pytest.raises(gr.Error, match="for admins"):
        compare.zoom_overlay(login_ctx, None, None, rater)
    assert compare.load_page(login_ctx, view, rater) == gr.skip()
    link = dict(urllib.parse.parse_qsl(compare.compare_link("surya_1", "pangram", ["feb1", "apr24"])[1:]))
    assert compare.compare_from_link(login_ctx, view, values, req(RATER[0], **link), None) == gr.skip()
    with pytest.raises(gr.Error, match="log in"):
        compare.compare(login_ctx, view, values, req(None), None)


def test_initial_page_holds_no_catalog_names(ctx):
    with gr.Blocks() as demo:
        compare.wire(ctx, demo, compare.build())
    config = json.dumps(demo.get_config_file())
    for name in (*CHECKPOINT_NAMES, "surya_1", "pangram", "denoise"):
        assert not mentions(config, name)


def _login(url: str, user: tuple[str, str]):
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    opener.open(url + "/login", data=urllib.parse.urlencode({"username": user[0], "password": user[1]}).encode())
    return opener


def _raw_call(url: str, user: tuple[str, str], fn_index: int, data: list) -> dict:
    """Run an event the way any logged-in browser can (hidden handlers stay reachable)."""
    opener = _login(url, user)
    session = "s" + user[0]
    body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
    join = urllib.request.Request(
        url + "/gradio_api/queue/join", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    opener.open(join, timeout=10).read()
    with opener.open(url + f"/gradio_api/queue/data?session_hash={session}", timeout=120) as stream:
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_completed":
                return json.loads(line[5:])
    raise AssertionError("the queue closed without a result")


def test_served_compare_checks_the_caller(login_ctx):
    """Through a real server: the admin gets a comparison, a rater's raw call is refused."""
    with gr.Blocks() as demo, gr.Tab("Compare"):
        view = compare.build()
        compare.wire(login_ctx, demo, view)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, auth=lambda u, p: login_ctx.users.verify(u, p), quiet=True)
    try:
        url = f"http://127.0.0.1:{port}"
        # by name: the guard's quota categories (guard.QUOTAS) find handlers by it too
        handlers = {f.name: k for k, f in demo.fns.items()}
        fn, load = handlers["compare"], handlers["load_page"]
        inputs = demo.fns[fn].inputs  # the form, in the order the page sends it

        def data(values: compare.CompareInputs) -> list:
            on_page = page_values(view, values)
            return [on_page[c] for c in inputs]

        # a rater's page has no choices, so only empty values pass gradio's own checks
        empty = compare.CompareInputs(None, None, "", [], None, False, (None,) * 4, 1, 0, "raw")
        refused = _raw_call(url, RATER, fn, data(empty))
        assert refused["success"] is False
        assert "for admins" in json.dumps(refused["output"])
        chosen = form(["feb1", "apr24"], side=["none"] * 4, align="raw")
        assert _raw_call(url, RATER, fn, data(chosen))["success"] is False
        assert _raw_call(url, ADMIN, load, [])["success"] is True  # fills the admin session's choices
        done = _raw_call(url, ADMIN, fn, data(chosen))
        assert done["success"] is True, done
        outputs = dict(zip(demo.fns[fn].outputs, done["output"]["data"], strict=True))
        assert outputs[view.link_box] == compare.compare_link("surya_1", "pangram", ["feb1", "apr24"])
        assert not mentions(_login(url, RATER).open(url + "/config").read().decode(), "feb1")
    finally:
        demo.close()


@pytest.mark.parametrize(
    ("metric", "first", "value", "said"),
    [
        ("tilt_db_per_oct", -3.8, -11.4, "spectral tilt 7.6 dB/oct steeper: duller"),
        ("tilt_db_per_oct", -11.4, -3.8, "spectral tilt 7.6 dB/oct flatter: brighter"),
        ("centroid_hz", 2129, 1004, "spectral centroid 1125 Hz (-53%) lower: darker, less treble"),
        ("f0_range_st", 5.1, 1.2, "pitch range 3.9 st narrower: flatter, more monotone"),
        ("speaking_rate_cps", 14.0, 15.4, "speaking rate 1.4 chars/s (+10%) faster"),
        ("tilt_db_per_oct", -3.8, -4.2, None),  # below the threshold
        ("mcd_db", 0.0, 5.0, None),  # no meaning attached
        ("centroid_hz", float("nan"), 1000, None),
    ],
)
def test_differences_are_put_in_words(metric, first, value, said):
    assert comparison.describe_difference(metric, first, value) == said


def test_a_checkpoint_against_itself_at_another_take(ctx, view):
    out = Out(view, run(ctx, view, ["feb1"], retake=2))
    assert [label for _, label, _ in out.visible_players()][1:] == [
        "feb1 · none · take 1 · DEMO",
        "feb1 · none · take 2 · DEMO",
    ]
    # demo clips do not change with the seed: the two takes are the same audio
    assert "Exact match, **feb1 take 1 vs feb1 take 2: identical**" in out.verdict
    assert out.link == compare.compare_link("surya_1", "pangram", ["feb1"], retake=2)
    values, problems = comparison.parse_link(dict(urllib.parse.parse_qsl(out.link[1:])), ctx.catalog)
    assert problems == [] and values["retake"] == 2 and values["checkpoints"] == ["feb1"]
    keeps_results(run(ctx, view, ["feb1"], retake=1), view.error_box, "same clip; pick another take")
    keeps_results(run(ctx, view, ["feb1", "apr24", "apr27", "feb1_revert"], retake=2), view.error_box, "more than 4")


def test_zoom_redraws_the_overlay_of_the_comparison_on_screen(ctx, view):
    out = Out(view, run(ctx, view, ["feb1", "apr27"]))
    cached = Path(out.visible_players()[1][0])
    assert cached.with_name(cached.stem + ".env.npz").is_file()  # the pyramid lives beside the clip
    zoomed = compare.zoom_overlay(ctx, 0.5, 1.0, req())
    assert zoomed.endswith("_overlay_0.500-1.000.png") and Path(zoomed).read_bytes()[:4] == b"\x89PNG"
    whole = compare.zoom_overlay(ctx, None, None, req())
    assert whole.endswith("_overlay_all.png")
    with pytest.warns(UserWarning, match="'to' must be after 'from'"):
        assert compare.zoom_overlay(ctx, 2.0, 1.0, req()) == gr.skip()


def test_warm_up_runs_once_in_the_background(tmp_path):
    thread = comparison.start_warm_up()
    assert comparison.start_warm_up() is thread  # once per process
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert comparison.warm_up(tmp_path) > 0
    assert (tmp_path / "warm-up_overlay.png").read_bytes()[:4] == b"\x89PNG"


def test_routine_errors_log_one_line_without_traceback(caplog):
    from workbench.ui.common import show_error

    caplog.set_level("INFO", logger="workbench.ui.common")
    err = show_error(RenderError("pick a sentence\nor type custom text"))
    assert isinstance(err, gr.Error) and err.print_exception is False
    assert [r.getMessage() for r in caplog.records] == ["refused: pick a sentence | or type custom text"]
    assert caplog.records[0].exc_info is None


def test_phones_are_told_apart_by_their_user_agent():
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"
    android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
    desktop = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
    ipad = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Safari/604.1"
    assert compare.on_phone(SimpleNamespace(headers={"user-agent": iphone}))
    assert compare.on_phone(SimpleNamespace(headers={"user-agent": android}))
    assert not compare.on_phone(SimpleNamespace(headers={"user-agent": desktop}))
    assert not compare.on_phone(SimpleNamespace(headers={"user-agent": ipad}))  # a tablet is wide enough
    assert not compare.on_phone(SimpleNamespace(headers={})) and not compare.on_phone(None)
