"""Renderer: content keys, cache, takes, batches, the render command and the batch panel."""

from __future__ import annotations

import csv
import dataclasses
import pickle
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from tiny_models import build_tiny_xtts, write_reference, write_tiny_catalog

from workbench import audio
from workbench.catalog import load_catalog
from workbench.cli import main as cli
from workbench.errors import CatalogError, ModelUnavailable, RenderError
from workbench.render import Clip, Renderer, RenderPlan, RenderRequest, expand_matrix
from workbench.synth import ClipFolderBackend, Synthesis, SynthesisBackend

SHORT = RenderRequest("tiny", "ref_a", "short")


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    """A second tiny checkpoint (other random weights)."""
    return build_tiny_xtts(tmp_path_factory.mktemp("other") / "m", seed=3)


@pytest.fixture
def tiny_catalog_path(tmp_path, tiny_xtts_dir) -> Path:
    return write_tiny_catalog(tmp_path / "cat", {"tiny": tiny_xtts_dir})


@pytest.fixture
def tiny_catalog(tiny_catalog_path):
    return load_catalog(tiny_catalog_path)


# ---------------------------------------------------------------------------- demo and clips sources


def test_demo_clip_renders_once_then_comes_from_the_cache(demo_catalog):
    r = Renderer(demo_catalog)
    req = RenderRequest("feb1", "surya_1", "pangram")
    first = r.render(req)
    assert first.source == "demo" and first.is_demo and not first.from_cache
    meta = first.path.with_suffix(".json")
    mtime = meta.stat().st_mtime_ns
    again = r.render(req)
    assert again.from_cache and again.key == first.key and again.path == first.path
    assert meta.stat().st_mtime_ns == mtime and r.stats == {"hits": 1, "renders": 1}
    y, sr = again.load()
    assert sr == 24000 and y.ndim == 1
    assert again.provenance["loudness_out_lufs"] == pytest.approx(-23.0, abs=0.2)


def test_corrupt_cache_entry_is_rendered_again(demo_catalog):
    r = Renderer(demo_catalog)
    req = RenderRequest("feb1", "paul_1", "names")
    clip = r.render(req)
    clip.path.write_bytes(b"not flac at all")
    again = r.render(req)
    assert not again.from_cache and again.load()[0].size > 0


def test_enhancement_applies_on_top_of_demo_clips(demo_catalog_path, tiny_enhancer_dir):
    run = demo_catalog_path.parent / "models" / "resemble-enhance"
    run.parent.mkdir(parents=True, exist_ok=True)
    run.symlink_to(tiny_enhancer_dir, target_is_directory=True)
    r = Renderer(load_catalog(demo_catalog_path), device="cpu")
    plain = r.render(RenderRequest("apr24", "surya_2", "question"))
    den = r.render(RenderRequest("apr24", "surya_2", "question", enhancement="denoise"))
    assert den.source == "demo" and den.key != plain.key
    assert den.provenance["enhancer_step"] == "denoise" and len(den.provenance["enhancer_hash"]) == 64
    assert den.provenance["loudness_out_lufs"] == pytest.approx(-23.0, abs=0.3)
    a, b = plain.load()[0], den.load()[0]
    assert abs(len(a) - len(b)) <= 2 and not np.allclose(a[: len(b)], b[: len(a)], atol=1e-3)


def without_demo(path: Path, *names: str) -> Path:
    """Turn demo checkpoints into checkpoints with pre-rendered clips (no demo stand-in for presets)."""
    text = path.read_text()
    for n in names:
        text = text.replace(f"demo_dir: demo/clips/{n}", f"clips_dir: demo/clips/{n}")
    path.write_text(text)
    return path


def test_missing_enhancer_weights_fail_before_any_work(demo_catalog_path):
    r = Renderer(load_catalog(without_demo(demo_catalog_path, "feb1")))
    with pytest.raises(ModelUnavailable, match=r"preset 'denoise' is unavailable: .*weights missing"):
        r.render(RenderRequest("feb1", "surya_1", "pangram", enhancement="denoise"))
    assert r.stats["renders"] == 0


# ---------------------------------------------------------------------------- model source


def test_model_clip_has_full_provenance(tiny_catalog):
    clip = Renderer(tiny_catalog).render(SHORT)
    p = clip.provenance
    assert clip.source == "model" and not clip.is_demo
    assert len(p["model_hash"]) == 64 and p["seed"] == 1234 and p["take"] == 1
    assert p["inference"]["temperature"] == 0.75 and p["text"] == "Hello there, this is a test."
    assert {"synthesis", "enhance", "load", "conditioning", "inference"} <= set(p["timings_s"])
    assert {"torch", "coqui-tts", "workbench"} <= set(p["versions"])
    assert p["conditioning"] in ("computed", "cached") and p["device"] == "cpu"
    y, sr = clip.load()
    assert sr == 24000 and p["duration_s"] == pytest.approx(len(y) / sr, abs=1e-3)
    assert p["loudness_out_lufs"] == pytest.approx(-23.0, abs=0.3)


def test_cache_survives_a_restart(tiny_catalog):
    first = Renderer(tiny_catalog).render(SHORT)
    restarted = Renderer(tiny_catalog)
    again = restarted.render(SHORT)
    assert again.from_cache and again.key == first.key and restarted.stats["renders"] == 0


def test_second_sentence_with_a_reference_reuses_its_conditioning(tiny_catalog):
    r = Renderer(tiny_catalog)
    a = r.render(RenderRequest("tiny", "ref_b", "short"))
    b = r.render(RenderRequest("tiny", "ref_b", "question"))
    assert (a.provenance["conditioning"], b.provenance["conditioning"]) == ("computed", "cached")
    assert a.provenance["conditioning_key"] == b.provenance["conditioning_key"]


def test_builtin_speaker_reference_renders(tiny_catalog):
    clip = Renderer(tiny_catalog).render(RenderRequest("tiny", "builtin", "short"))
    assert clip.provenance["conditioning"] == "builtin"
    assert clip.provenance["reference_hash"] == "builtin:Tiny Speaker"


def test_long_sentence_is_split(tiny_catalog):
    clip = Renderer(tiny_catalog).render(RenderRequest("tiny", "ref_a", "long"))
    assert clip.provenance["text_chunks"] == 2


def test_custom_text(tiny_catalog):
    r = Renderer(tiny_catalog)
    clip = r.render(RenderRequest("tiny", "ref_a", text="  Custom words here.  "))
    assert clip.provenance["text"] == "Custom words here."
    with pytest.raises(RenderError, match="custom text is empty"):
        r.render(RenderRequest("tiny", "ref_a", text="   "))


# ---------------------------------------------------------------------------- content key


def _key(cat, req=SHORT) -> str:
    return Renderer(cat).plan(req).key


def test_key_depends_on_everything_that_changes_the_samples(tmp_path, tiny_xtts_dir, other_model):
    path = write_tiny_catalog(tmp_path / "c", {"tiny": tiny_xtts_dir})
    cat = load_catalog(path)
    base = _key(cat)
    assert _key(load_catalog(path)) == base  # stable across loads
    variants = {
        "sentence": _key(cat, RenderRequest("tiny", "ref_a", "question")),
        "reference": _key(cat, RenderRequest("tiny", "ref_b", "short")),
        "take (seed)": _key(cat, RenderRequest("tiny", "ref_a", "short", take=2)),
        "custom text": _key(cat, RenderRequest("tiny", "ref_a", text="Hello there, this is a tes.")),
    }
    path.write_text(path.read_text().replace("seed: 1234", "seed: 1234\n      temperature: 0.5"))
    variants["temperature"] = _key(load_catalog(path))
    path.write_text(path.read_text().replace(f"model_dir: {tiny_xtts_dir.resolve()}", f"model_dir: {other_model}"))
    variants["model files"] = _key(load_catalog(path))
    write_reference(path.parent / "refs" / "ref_a.wav", seconds=3.0, f0=150.0, seed=1)
    variants["reference audio"] = _key(load_catalog(path))
    assert len(set(variants.values()) | {base}) == len(variants) + 1, variants


def test_key_changes_with_the_preset_and_its_weights(tmp_path, tiny_xtts_dir, tiny_enhancer_dir):
    path = write_tiny_catalog(tmp_path / "c", {"tiny": tiny_xtts_dir}, enhancer_dir=tiny_enhancer_dir)
    cat = load_catalog(path)
    keys = {p: _key(cat, RenderRequest("tiny", "ref_a", "short", enhancement=p)) for p in ("none", "denoise")}
    assert keys["none"] != keys["denoise"]
    copy = tmp_path / "enh"
    (copy / "ds" / "G" / "default").mkdir(parents=True)
    shutil.copy(tiny_enhancer_dir / "hparams.yaml", copy / "hparams.yaml")
    (copy / "ds/G/default/mp_rank_00_model_states.pt").write_bytes(b"other weights")
    path.write_text(path.read_text().replace(str(tiny_enhancer_dir.resolve()), str(copy)))
    assert _key(load_catalog(path), RenderRequest("tiny", "ref_a", "short", enhancement="denoise")) != keys["denoise"]


# ---------------------------------------------------------------------------- concurrency


def test_concurrent_requests_for_one_key_do_the_work_once(tiny_catalog):
    r = Renderer(tiny_catalog)
    req = RenderRequest("tiny", "ref_a", "question", take=3)
    clips, errors = [], []
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait()
        try:
            clips.append(r.render(req))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(clips) == 4
    assert r.stats == {"renders": 1, "hits": 3}
    assert len({c.key for c in clips}) == 1 and sum(not c.from_cache for c in clips) == 1
    assert len(list((r.cache_dir / "clips").rglob("*.flac"))) == 1


# ---------------------------------------------------------------------------- takes


def test_regenerate_adds_numbered_takes_beside_the_old_ones(tiny_catalog):
    r = Renderer(tiny_catalog)
    req = RenderRequest("tiny", "ref_a", "short")
    assert r.next_take(req) == 1
    one = r.render(req)
    assert r.next_take(req) == 2
    two = r.regenerate(req)
    assert two.request.take == 2 and two.provenance["seed"] == one.provenance["seed"] + 1
    assert not np.array_equal(one.load()[0][:1000], two.load()[0][:1000])
    three = r.regenerate(RenderRequest("tiny", "ref_a", "short", take=2))  # the request's own take is ignored
    assert three.request.take == 3
    assert [c.request.take for c in r.takes(req)] == [1, 2, 3]
    assert r.render(req).from_cache  # take 1 is still there


def test_regenerate_refuses_pre_rendered_clips(demo_catalog):
    with pytest.raises(RenderError, match="pre-rendered demo clips, so a new take would sound the same"):
        Renderer(demo_catalog).regenerate(RenderRequest("feb1", "surya_1", "pangram"))


# ---------------------------------------------------------------------------- batches


def test_expand_matrix_orders_and_validates(demo_catalog):
    reqs = expand_matrix(demo_catalog, checkpoints="feb1,apr27", references=["paul_1"], sentences="all", takes=2)
    assert len(reqs) == 2 * 1 * 8 * 1 * 2
    assert (reqs[0].checkpoint, reqs[0].sentence, reqs[0].take) == ("feb1", "pangram", 1)
    assert reqs[1].take == 2 and reqs[-1].checkpoint == "apr27"
    with pytest.raises(RenderError, match=r"unknown checkpoint 'mar3'; available: feb1, apr24, apr27"):
        expand_matrix(demo_catalog, checkpoints="feb1,mar3")
    with pytest.raises(RenderError, match="no sentence given"):
        expand_matrix(demo_catalog, sentences=[])


def test_render_many_reports_each_failure_and_goes_on(tmp_path, tiny_xtts_dir):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_xtts_dir, broken)
    data = (broken / "model.pth").read_bytes()
    (broken / "model.pth").write_bytes(data[: len(data) // 3])
    cat = load_catalog(write_tiny_catalog(tmp_path / "c", {"tiny": tiny_xtts_dir, "broken": broken}))
    r = Renderer(cat)
    reqs = [
        RenderRequest("broken", "ref_a", "short"),
        RenderRequest("tiny", "ref_a", "short"),
        RenderRequest("tiny", "nobody", "short"),
        RenderRequest("tiny", "ref_a", text=""),
        RenderRequest("tiny", "ref_b", "short"),
    ]
    seen, fractions = [], []
    out = r.render_many(reqs, progress=lambda f, label: fractions.append(f), on_result=lambda q, x: seen.append(q))
    assert isinstance(out[0], ModelUnavailable) and "model.pth: cannot be read" in str(out[0])
    assert isinstance(out[1], Clip) and isinstance(out[4], Clip)
    assert isinstance(out[2], CatalogError) and "reference 'nobody' not found" in str(out[2])
    assert isinstance(out[3], RenderError)
    assert seen == reqs and fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == 6


# ---------------------------------------------------------------------------- backends and plans


def test_synth_does_not_import_render():
    """Backends read plans only; importing them must not pull in the renderer (no import cycle)."""
    code = "import sys, workbench.synth; assert 'workbench.render' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


class ToneBackend:
    """A backend of our own: a 220 Hz tone as long as the text has characters (x 10 ms)."""

    name = "xtts"

    def __init__(self):
        self.plans = []

    def synthesize(self, plan: RenderPlan) -> Synthesis:
        self.plans.append(plan)
        return Synthesis(audio.sine(220, sr=16000, seconds=len(plan.text) / 100), 16000, {"backend": "tone"})


def test_renderer_uses_the_backends_it_is_given(tiny_catalog):
    tone = ToneBackend()
    assert isinstance(tone, SynthesisBackend)
    r = Renderer(tiny_catalog, backends={"xtts": tone, "clips": ClipFolderBackend()})
    clip = r.render(SHORT)
    (plan,) = tone.plans
    assert plan.key == clip.key and plan.text == "Hello there, this is a test." and plan.seed == 1234
    assert clip.provenance["backend"] == "tone" and clip.provenance["model_hash"] == plan.model_hash
    y, sr = clip.load()  # resampled to the cache's rate, 10 ms per character
    assert sr == 24000 and len(y) == pytest.approx(len(plan.text) * 240, abs=2)
    assert Renderer(tiny_catalog).plan(SHORT).key == clip.key  # the key does not depend on the backend object


def test_a_plan_is_frozen_and_travels(tiny_catalog, demo_catalog):
    plan = Renderer(tiny_catalog).plan(SHORT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.seed = 1
    copy = pickle.loads(pickle.dumps(plan))
    assert copy == plan and copy.identity == plan.identity and copy.checkpoint.model_dir == plan.checkpoint.model_dir
    assert plan.backend == "xtts" and plan.reference_file is not None and plan.source_file is None
    demo = Renderer(demo_catalog).plan(RenderRequest("feb1", "surya_1", "pangram"))
    assert demo.backend == "clips" and demo.source == "demo" and demo.source_file.is_file() and demo.model_hash is None


# ---------------------------------------------------------------------------- CLI


def _manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # renders the 96-clip demo matrix twice
def test_cli_renders_the_full_demo_matrix_and_resumes(demo_catalog_path, tmp_path, capsys):
    out = tmp_path / "out"
    # quality estimates are tested in test_quality.py; 96 DNSMOS runs would only slow this down
    assert cli(["render", "--config", str(demo_catalog_path), "--out", str(out), "--no-quality"]) == 0
    rows = _manifest(out)
    assert len(rows) == 3 * 4 * 8 and {r["status"] for r in rows} == {"ok"}
    assert {r["source"] for r in rows} == {"demo"} and {r["from_cache"] for r in rows} == {"False"}
    assert all((out / r["file"]).is_file() for r in rows)
    assert (out / "apr24" / "surya_1" / "pangram.none.take1.flac").is_file()
    assert "96 of 96 clips" in capsys.readouterr().out
    assert cli(["render", "--config", str(demo_catalog_path), "--out", str(out), "--no-quality"]) == 0
    assert {r["from_cache"] for r in _manifest(out)} == {"True"}


@pytest.mark.slow  # renders a whole matrix
def test_cli_reports_unavailable_presets_per_item(demo_catalog_path, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli(
        [
            "render",
            "--config",
            str(without_demo(demo_catalog_path, "feb1", "apr27")),
            "--checkpoints",
            "feb1,apr27",
            "--references",
            "surya_1",
            "--sentences",
            "pangram,long",
            "--enhance",
            "none,denoise",
            "--out",
            str(out),
        ]
    )
    assert code == 1
    rows = _manifest(out)
    assert len(rows) == 8
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert {r["enhancement"] for r in ok} == {"none"} and len(ok) == 4
    assert all("weights missing" in r["error"] and r["file"] == "" for r in failed)
    err = capsys.readouterr().err
    assert "failed: feb1 · surya_1 · pangram +denoise" in err and "4 items failed" in err


def test_cli_takes_with_a_model(tiny_catalog_path, tmp_path):
    out = tmp_path / "out"
    args = ["render", "--config", str(tiny_catalog_path), "--references", "ref_a", "--sentences", "short"]
    assert cli([*args, "--takes", "2", "--device", "cpu", "--out", str(out)]) == 0
    rows = _manifest(out)
    assert [(r["take"], r["seed"]) for r in rows] == [("1", "1234"), ("2", "1235")]
    assert rows[0]["source"] == "model" and rows[0]["model_hash"] != rows[0]["key"]
    assert (out / "tiny" / "ref_a" / "short.none.take2.flac").is_file()


def test_cli_unknown_name_is_a_clean_error(demo_catalog_path, tmp_path, capsys):
    code = cli(["render", "--config", str(demo_catalog_path), "--checkpoints", "feb2", "--out", str(tmp_path)])
    assert code == 1
    assert "unknown checkpoint 'feb2'; available: feb1, apr24, apr27" in capsys.readouterr().err


# ---------------------------------------------------------------------------- batch panel


def _ctx(cat, tmp_path, users=None):
    from workbench.ui.common import AppContext

    return AppContext.create(catalog=cat, votes_path=tmp_path / "v.csv", data_dir=tmp_path, users=users)


def test_batch_panel_renders_with_progress(demo_catalog_path, tmp_path):
    from workbench.ui.render_panel import batch_render

    calls = []
    ctx = _ctx(load_catalog(without_demo(demo_catalog_path, "feb1")), tmp_path)
    summary, df = batch_render(
        ctx, ["feb1"], ["paul_2"], ["pangram", "numbers"], ["none", "denoise"], 1, None, lambda f, desc: calls.append(f)
    )
    assert "2 of 4 clips ready" in summary and "2 failed" in summary
    assert list(df.status) == ["ok", "failed", "ok", "failed"]
    assert calls[-1] == 1.0 and len(calls) == 5
    summary, _ = batch_render(ctx, ["feb1"], ["paul_2"], ["pangram"], ["none"], 1, None, lambda f, desc: None)
    assert "1 were already in the cache" in summary


def test_batch_panel_cancel_skips_the_clips_not_yet_started(demo_catalog, tmp_path):
    from workbench.ui.render_panel import batch_render, cancel_batch

    ctx = _ctx(demo_catalog, tmp_path)
    assert cancel_batch(ctx, None) == "No batch is running."
    answers = []

    def progress(frac, desc):
        if 0 < frac < 1 and not answers:  # called before the second clip: press Cancel
            answers.append(cancel_batch(ctx, None))

    summary, df = batch_render(ctx, ["feb1"], ["paul_2"], ["pangram", "numbers", "names"], ["none"], 1, None, progress)
    assert answers == ["Cancelling: the clips being rendered now finish, the rest are skipped."]
    # pressed after the first clip: the second and third never start
    assert list(df.status) == ["ok", "failed", "failed"] and "Cancelled: 2 were not rendered" in summary
    assert "cancelled before it was rendered" in df.error.iloc[2] and ctx.state.batch_cancel is None


def test_batch_panel_is_for_admins_only(demo_catalog, tmp_path):
    import gradio as gr

    from workbench.ui.render_panel import batch_render, panel_choices
    from workbench.users import UserStore

    users = UserStore(tmp_path / "users.json")
    users.add("rita", "secret123", "rater")
    users.add("ada", "secret123", "admin")
    ctx = _ctx(demo_catalog, tmp_path, users)
    rater = SimpleNamespace(username="rita")
    assert all(c.choices == [] for c in panel_choices(ctx, rater))
    admin_choices = panel_choices(ctx, SimpleNamespace(username="ada"))
    assert [c[0] if isinstance(c, tuple) else c for c in admin_choices[0].choices] == ["feb1", "apr24", "apr27"]
    with pytest.raises(gr.Error):
        batch_render(ctx, ["feb1"], ["paul_2"], ["pangram"], ["none"], 1, rater, lambda f, desc: None)


def test_batch_panel_empty_selection_is_a_clear_error(demo_catalog, tmp_path):
    import gradio as gr

    from workbench.ui.render_panel import batch_render

    with pytest.raises(gr.Error, match="no checkpoint given"):
        batch_render(_ctx(demo_catalog, tmp_path), [], ["paul_2"], ["pangram"], ["none"], 1, None, None)


@pytest.mark.slow  # serves the app
def test_batch_panel_through_the_served_app(demo_catalog, tmp_path):
    """The panel's events as a browser sends them: fill the choices, then render with progress."""
    import json

    import httpx
    from conftest import free_port

    from workbench.ui import build_app

    demo = build_app(_ctx(demo_catalog, tmp_path))
    port = free_port()
    demo.queue().launch(prevent_thread_lock=True, server_port=port, quiet=True)
    base = f"http://127.0.0.1:{port}/gradio_api"
    fn = {f.name: i for i, f in demo.fns.items()}

    def call(name: str, data: list) -> list[dict]:
        body = {"data": data, "fn_index": fn[name], "session_hash": "s1", "event_data": None, "trigger_id": None}
        assert httpx.post(base + "/queue/join", json=body, timeout=30).status_code == 200
        msgs = []
        with httpx.stream("GET", base + "/queue/data", params={"session_hash": "s1"}, timeout=60) as resp:
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    msgs.append(json.loads(line[5:]))
                    if msgs[-1].get("msg") == "process_completed":
                        return msgs
        raise AssertionError(msgs)

    try:
        loaded = call("panel_choices", [])[-1]["output"]["data"]
        assert loaded[0]["value"] == ["feb1", "apr24", "apr27"] and loaded[3]["value"] == ["none"]
        msgs = call("batch_render", [["apr27"], ["surya_1"], ["pangram", "names"], ["none"], 1])
        assert any(m.get("msg") == "progress" for m in msgs)
        summary, table = msgs[-1]["output"]["data"]
        assert summary.startswith("2 of 2 clips ready") and [row[5] for row in table["data"]] == ["ok", "ok"]
    finally:
        demo.close()
