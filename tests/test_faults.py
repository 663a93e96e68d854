"""Faults: a full or read-only votes folder while voting, the app killed and restarted, a
corrupted cache entry, checkpoint files that vanish while the app runs, a model that
raises during inference.

Voting goes through the real app (served on loopback, driven like its page by
:class:`bench.bench_load.RaterPage`); faults are injected at the lowest layer they occur
in: the kernel's file-size limit, ``os.write``/``os.open`` on the vote file, SIGKILL, bytes
on disk, files removed, the loaded model's own ``inference`` method.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, free_port

from bench.bench_load import RaterPage, open_test, start_app, write_catalog, write_users
from tests.support.loopback import CallFailed
from workbench.catalog import load_catalog
from workbench.errors import VoteError
from workbench.render import Renderer, RenderRequest
from workbench.votes import find_torn_tail, read_votes

REFS, SENTS = ["surya_1", "paul_1"], ["pangram", "names"]


def serve(ctx):
    """Build and launch the app in this process (loopback, the app's own launch options)."""
    import app
    from workbench.ui import build_app

    demo = build_app(ctx)
    demo.queue(default_concurrency_limit=8)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True, **app.launch_options(ctx))
    return demo, SimpleNamespace(url=f"http://127.0.0.1:{port}", users=ctx.users)


def context(catalog_path: Path, votes: Path):
    from workbench.ui.common import AppContext

    cat = load_catalog(catalog_path)
    return AppContext.create(catalog=cat, votes_path=votes, data_dir=cat.settings.data_dir)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The app without login on the demo catalog, with one open test of 12 trials per rater."""
    root = tmp_path_factory.mktemp("faults")
    ctx = context(write_catalog(root), root / "votes" / "votes.csv")
    demo, app = serve(ctx)
    app.ctx, app.test_id = ctx, open_test(app, "Faults", references=REFS, sentences=SENTS)
    yield app
    demo.close()


def _path_of(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


class DiskFull:
    """``os.write`` to one file writes at most half its buffer once, then fails with ENOSPC.

    That is how a disk fills up under a writer: a short write, then no space at all.
    """

    def __init__(self, monkeypatch, target: Path):
        self.real, self.target, self.hits = os.write, str(target.resolve()), 0
        monkeypatch.setattr(os, "write", self.write)

    def write(self, fd, data):
        if _path_of(fd) != self.target:
            return self.real(fd, data)
        self.hits += 1
        if self.hits == 1 and len(data) > 1:
            return self.real(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class ReadOnly:
    """``os.open`` for writing anywhere in one folder fails with EROFS (a read-only mount)."""

    def __init__(self, monkeypatch, folder: Path):
        self.real, self.folder = os.open, str(folder.resolve())
        monkeypatch.setattr(os, "open", self.open)

    def open(self, path, flags, *args, **kw):
        writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND)
        if writing and str(Path(path).resolve()).startswith(self.folder + os.sep):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return self.real(path, flags, *args, **kw)


def _rows(votes: Path) -> list[str]:
    return list(read_votes(votes)["comment"])


def _intact(votes: Path) -> None:
    data = votes.read_bytes()
    assert data.endswith(b"\r\n") and find_torn_tail(data) is None
    assert not list(votes.parent.glob("*.torn-*")), "a row was set aside: something half-written was left behind"


# ---------------------------------------------------------------------------- the disk while voting


@pytest.mark.parametrize("fault", ["disk full", "read-only"])
def test_a_disk_fault_while_voting_loses_nothing_and_voting_resumes(site, monkeypatch, fault):
    votes = site.ctx.votes_path
    page = RaterPage(site, f"dana-{fault.split()[0]}", [site.test_id])
    for k in range(3):
        page.vote("A", f"{fault} ok {k}", ["accent"])
    before = votes.read_bytes()
    number, total = page.progress()
    with monkeypatch.context() as m:
        inject = DiskFull(m, votes) if fault == "disk full" else ReadOnly(m, votes.parent)
        with pytest.raises(CallFailed) as failed:
            page.vote("B", f"{fault} refused", [])
        assert votes.read_bytes() == before  # not acknowledged, not written: no partial row either
        with pytest.raises(CallFailed):  # still full: refused again, still nothing written
            page.vote("B", f"{fault} refused again", [])
        assert votes.read_bytes() == before
        # meanwhile the votes can still be read (the Results tab, progress)
        assert site.ctx.services.votes.read()["comment"].tolist()[-3:] == [f"{fault} ok {k}" for k in range(3)]
    if fault == "disk full":
        assert inject.hits >= 2
    message = failed.value.message  # what the rater's page shows
    assert len(message) > 20 and "Saved" not in message
    assert str(votes.parent) not in message and "votes.csv" not in message  # no server paths
    assert not any(ck in message for ck in ("feb1", "apr24", "apr27"))  # nothing that unblinds
    assert page.progress() == (number, total)  # the same trial is still waiting for the vote
    page.vote("B", f"{fault} after", [])  # space is back: the same trial takes the vote
    assert page.progress() == (number + 1, total)
    _intact(votes)
    mine = [c for c in _rows(votes) if c.startswith(fault)]
    assert mine == [f"{fault} ok 0", f"{fault} ok 1", f"{fault} ok 2", f"{fault} after"]


def test_the_kernel_file_size_limit_mid_row_leaves_the_file_as_it_was(tmp_path):
    """A real short write: RLIMIT_FSIZE lets half a row through, then EFBIG (like ENOSPC)."""
    from test_votes import make_vote

    from workbench.votes import VoteStore

    path = tmp_path / "votes.csv"
    store = VoteStore(path)
    for k in range(3):
        store.append(make_vote(trial=f"t0{k}", comment=f"before {k}"))
    before = path.read_bytes()
    code = textwrap.dedent(
        f"""
        import resource, signal, sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        from test_votes import make_vote
        from workbench.errors import VoteError
        from workbench.votes import VoteStore
        store = VoteStore({str(path)!r})
        vote = make_vote(trial="t09", comment="x" * 400)
        limit = {len(before)} + 150
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            store.append(vote)
        except VoteError as e:
            print("REFUSED", e)
        else:
            print("SAVED")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("REFUSED") and "File too large" in out.stdout and "vote again" in out.stdout
    assert path.read_bytes() == before
    store.append(make_vote(trial="t09", comment="after"))  # the limit is gone: the vote goes in
    assert _rows(path) == ["before 0", "before 1", "before 2", "after"]


def test_a_read_only_votes_folder_can_be_read_but_not_written(tmp_path, monkeypatch):
    from test_votes import make_vote

    from workbench.votes import VoteStore

    store = VoteStore(tmp_path / "votes" / "votes.csv")
    store.append(make_vote())
    with monkeypatch.context() as m:
        ReadOnly(m, tmp_path / "votes")
        assert set(store.effective_for("ann", "ab-00112233")) == {"t01"}
        with pytest.raises(VoteError, match=r"votes.csv: could not save the vote \(.*Read-only file system"):
            store.append(make_vote(trial="t02"))
        with pytest.raises(VoteError, match="cannot open the vote lock file .*writable"):  # no lock file yet
            VoteStore(tmp_path / "votes" / "other.csv")
    assert len(store.read()) == 1
    store.append(make_vote(trial="t02"))
    assert len(store.read()) == 2


# ---------------------------------------------------------------------------- the app killed


def test_the_app_killed_mid_test_keeps_every_acknowledged_vote_and_raters_resume(tmp_path):
    raters = ["kim", "lee", "max"]
    config = write_catalog(tmp_path)
    app = start_app(tmp_path, config, tmp_path / "votes" / "votes.csv", users=write_users(tmp_path, raters))
    try:
        test_id = open_test(app, "Killed", references=REFS, sentences=SENTS)
        acked: dict[str, list[str]] = {r: [] for r in raters}
        lock = threading.Lock()
        enough = threading.Event()

        def vote_until_killed(name: str) -> None:
            page = RaterPage(app, name, [test_id])
            k = 0
            while True:
                try:
                    page.vote(("A", "B", "none")[k % 3], f"{name} {k}", [])
                except Exception:  # the app is gone
                    return
                with lock:
                    acked[name].append(f"{name} {k}")
                    if sum(map(len, acked.values())) >= 9:  # fewer than one rater's 12 trials
                        enough.set()
                k += 1

        threads = [threading.Thread(target=vote_until_killed, args=(r,), daemon=True) for r in raters]
        for t in threads:
            t.start()
        assert enough.wait(120), "raters did not get going"
        app.proc.kill()  # SIGKILL: no shutdown handlers, possibly mid-write
        app.proc.wait()
        for t in threads:
            t.join(timeout=60)
        again = app.restart()
    finally:
        app.stop()
    try:
        from workbench.votes import VoteStore

        VoteStore(app.votes)  # what the restarted app did on start: set aside a torn row, if any
        df = read_votes(app.votes)
        present = set(df["comment"])
        for name in raters:
            assert set(acked[name]) <= present, f"{name} lost acknowledged votes"
            assert len(df[df["rater"] == name]) <= len(acked[name]) + 1  # at most the one in flight
        assert not df.duplicated(["rater", "test_id", "trial_id"]).any()
        for name in raters:
            done = len(df[df["rater"] == name])
            page = RaterPage(again, name, [test_id])
            assert ("Welcome back" in page.value("wb-status")) == (done > 0)
            assert page.progress() == (done + 1, 12)  # the next trial, not one already answered
            page.vote("A", f"{name} after restart", [])
            assert page.progress() == (done + 2, 12)
        final = read_votes(app.votes)
        assert len(final) == len(df) + 3 and not final.duplicated(["rater", "test_id", "trial_id"]).any()
    finally:
        again.stop()


# ---------------------------------------------------------------------------- a corrupted cache entry


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    ["flipped bytes", "truncated audio", "empty audio", "sidecar cut short", "sidecar gone", "audio gone"],
)
def test_a_corrupted_cache_entry_is_rendered_again_not_served(demo_catalog, damage):
    r = Renderer(demo_catalog)
    req = RenderRequest("apr27", "paul_2", "question")
    first = r.render(req)
    y0, _ = first.load()
    flac, meta = first.path, first.path.with_suffix(".json")
    if damage == "flipped bytes":
        _flip(flac)
    elif damage == "truncated audio":
        flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    elif damage == "empty audio":
        flac.write_bytes(b"")
    elif damage == "sidecar cut short":
        meta.write_text(meta.read_text()[:40])
    elif damage == "sidecar gone":
        meta.unlink()
    else:
        flac.unlink()
    assert r.cached(req) is None  # a damaged entry is never handed out
    again = r.render(req)
    assert not again.from_cache and r.stats == {"hits": 0, "renders": 2}
    y1, _ = again.load()
    assert np.array_equal(y0, y1)
    assert r.render(req).from_cache  # and the repaired entry is served from then on


def test_a_corrupted_conditioning_cache_is_computed_again(tmp_path, tiny_xtts_dir):
    from tiny_models import write_tiny_catalog

    cat = load_catalog(write_tiny_catalog(tmp_path / "c", {"tiny": tiny_xtts_dir}))
    r = Renderer(cat, device="cpu")
    req = RenderRequest("tiny", "ref_a", "short")
    first = r.render(req)
    y0, _ = first.load()
    (latents,) = (r.cache_dir / "conditioning").rglob("*.pt")
    latents.write_bytes(b"PK\x03\x04 not a torch file")
    first.path.unlink()  # force a fresh render, which reads the conditioning cache
    again = r.render(req)
    assert not again.from_cache and again.provenance["conditioning"] == "computed"
    assert np.array_equal(y0, again.load()[0])


def test_the_blind_test_serves_good_audio_from_a_corrupted_cache(site):
    from workbench.abtest import SERVED_SR
    from workbench.audio import normalize_loudness
    from workbench.ui.common import get_renderer

    renderer = get_renderer(site.ctx)
    clips = {}
    for ck in ("feb1", "apr24", "apr27"):
        for ref in REFS:
            for sent in SENTS:
                clip = renderer.render(RenderRequest(ck, ref, sent))
                y, sr = clip.load()
                clips[(ck, ref, sent)] = normalize_loudness(y, sr, target_lufs=-23)
                _flip(clip.path)
    page = RaterPage(site, "erin", [site.test_id])
    for url in (page.value("wb-audio-a"), page.value("wb-audio-b")):
        y, sr = sf.read(io.BytesIO(page.pc.fetch(url)), dtype="float32")
        assert sr == SERVED_SR
        assert any(len(c) == len(y) and np.max(np.abs(c - y)) < 1e-3 for c in clips.values())
    page.vote("A", "served from a repaired cache", [])


# ---------------------------------------------------------------------------- checkpoints and models failing


@pytest.fixture
def model_site(tmp_path, tiny_xtts_dir):
    """A context whose catalog names the demo checkpoints and ``tiny``, a private copy of a tiny XTTS."""
    model = shutil.copytree(tiny_xtts_dir, tmp_path / "models" / "tiny")
    ctx = context(write_catalog(tmp_path / "app", tiny_model=model), tmp_path / "votes.csv")
    ctx.device = "cpu"
    return SimpleNamespace(ctx=ctx, model=model)


def _compare(ctx, checkpoints, sentence="pangram", text=""):
    """What the Compare tab shows for surya_1: the status (None: unchanged), the error box, and
    whether the error box is all that changed."""
    import gradio as gr

    from workbench.ui import compare

    with gr.Blocks():
        view = compare.build()
    request = SimpleNamespace(username=None, query_params={})
    form = compare.CompareInputs("surya_1", sentence, text, checkpoints, "none", retake=None)
    out = compare.compare(ctx, view, form, request, None)
    return SimpleNamespace(
        status=out.get(view.status), error=out[view.error_box], only_error=list(out) == [view.error_box]
    )


def _error_box(out) -> str:
    """The Compare error box of a handler's outputs ('' when hidden): a failed compare keeps
    every other output as it was and says why there, in one place."""
    box = out.error
    return box["value"] if box.get("visible") else ""


def _batch(ctx, checkpoints, sentences):
    from workbench.ui import render_panel

    request = SimpleNamespace(username=None)
    summary, table = render_panel.batch_render(
        ctx, checkpoints, ["surya_1"], sentences, ["none"], 1, request, lambda *a, **k: None
    )
    return summary, {(row.checkpoint, row.sentence): row for row in table.itertuples()}


def test_checkpoint_files_vanishing_while_the_app_runs(model_site):
    ctx, model = model_site.ctx, model_site.model
    backup = shutil.copytree(model, model.parent / "backup")
    _compare(ctx, ["tiny", "feb1"])  # loads the model; renders both
    (model / "model.pth").unlink()  # gone, while the model sits in memory
    out = _compare(ctx, ["tiny", "feb1", "apr24"], "names")
    assert not _error_box(out)
    assert "**Not rendered:**" in out.status and re.search(
        r"tiny: checkpoint tiny cannot render: .*model.pth missing", out.status
    )
    out = _compare(ctx, ["tiny", "feb1"], text="Custom words only a model can say.")
    assert re.search(
        "nothing rendered:.*model.pth missing; put an XTTS v2 checkpoint folder here", _error_box(out), re.S
    )
    assert out.only_error  # the last results stay on screen
    summary, rows = _batch(ctx, ["tiny", "feb1"], ["names", "question"])
    assert summary.startswith("2 of 4 clips ready")
    assert rows[("tiny", "names")].status == "failed" and "model.pth missing" in rows[("tiny", "names")].error
    assert rows[("feb1", "question")].status == "ok"
    _compare(ctx, ["feb1", "apr24"], "question")  # the rest of the app works
    shutil.rmtree(model)  # the whole folder
    out = _compare(ctx, ["tiny", "feb1"], "names")
    assert re.search(r"tiny: .*folder missing", out.status)
    shutil.copytree(backup, model)  # the files come back: the clip rendered before is served again
    out = _compare(ctx, ["tiny", "feb1"])
    assert "Not rendered" not in out.status


def test_a_checkpoint_overwritten_mid_training_fails_clearly(model_site):
    ctx, model = model_site.ctx, model_site.model
    _compare(ctx, ["tiny", "feb1"])
    good = (model / "model.pth").read_bytes()
    (model / "model.pth").write_bytes(good[: len(good) // 3])  # a save cut short
    summary, rows = _batch(ctx, ["tiny", "apr24"], ["names"])
    assert rows[("tiny", "names")].status == "failed"
    assert "model.pth" in rows[("tiny", "names")].error and "ModelUnavailable" in rows[("tiny", "names")].error
    assert rows[("apr24", "names")].status == "ok"
    (model / "model.pth").write_bytes(good)  # the save completes: rendering works again
    summary, rows = _batch(ctx, ["tiny"], ["names"])
    assert rows[("tiny", "names")].status == "ok"


def test_a_model_raising_during_inference_fails_that_job_alone(model_site, monkeypatch):
    from workbench.ui.common import get_renderer

    ctx = model_site.ctx
    renderer = get_renderer(ctx)
    renderer.render(RenderRequest("tiny", "surya_1", "names"))  # loads the model
    loaded = renderer.backends["xtts"].load(ctx.catalog.checkpoint("tiny"))
    real = loaded.model.inference
    calls = []

    def flaky(text, *args, **kw):
        calls.append(text)
        if "fox" in text:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(text, *args, **kw)

    monkeypatch.setattr(loaded.model, "inference", flaky)
    summary, rows = _batch(ctx, ["tiny", "feb1"], ["pangram", "question"])
    assert summary.startswith("3 of 4 clips ready")
    err = rows[("tiny", "pangram")].error
    assert rows[("tiny", "pangram")].status == "failed" and "RuntimeError" in err and "illegal memory access" in err
    assert rows[("tiny", "question")].status == "ok" and rows[("feb1", "pangram")].status == "ok"
    assert renderer.cached(RenderRequest("tiny", "surya_1", "pangram")) is None  # nothing half-made was cached
    out = _compare(ctx, ["tiny", "apr24"])
    assert re.search("tiny: .*RuntimeError", out.status) and not _error_box(out)
    # the next job works (the device lock was released), in another thread within a bound
    done = []
    t = threading.Thread(target=lambda: done.append(renderer.render(RenderRequest("tiny", "paul_1", "question"))))
    t.start()
    t.join(timeout=120)
    assert done and not done[0].from_cache
    monkeypatch.setattr(loaded.model, "inference", real)  # the fault clears: the failed job can be redone
    clip = renderer.render(RenderRequest("tiny", "surya_1", "pangram"))
    assert not clip.from_cache and clip.load()[0].size > 0
    assert any("fox" in c for c in calls)


def test_a_model_that_returns_nan_is_refused_not_cached(model_site, monkeypatch):
    from workbench.errors import AudioError
    from workbench.ui.common import get_renderer

    ctx = model_site.ctx
    renderer = get_renderer(ctx)
    renderer.render(RenderRequest("tiny", "surya_1", "names"))
    loaded = renderer.backends["xtts"].load(ctx.catalog.checkpoint("tiny"))
    real = loaded.model.inference

    def nan(text, *args, **kw):
        out = real(text, *args, **kw)
        wav = np.asarray(out["wav"], dtype=np.float32).copy()
        wav[len(wav) // 2] = np.nan
        return {**out, "wav": wav}

    monkeypatch.setattr(loaded.model, "inference", nan)
    req = RenderRequest("tiny", "paul_1", "pangram")
    with pytest.raises(AudioError, match="NaN"):
        renderer.render(req)
    assert renderer.cached(req) is None
    monkeypatch.setattr(loaded.model, "inference", real)
    assert renderer.render(req).load()[0].size > 0
