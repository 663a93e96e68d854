"""Hostile input: arbitrary text into the catalog loader and the vote store, hostile uploads
and files, path traversal through every user-controlled id or path, oversize requests.

The served-app tests run the app with login on loopback (as on a public link) and call
it the way its page does (:class:`tests.support.loopback.PageClient`), or with raw HTTP where a
browser could be made to send anything.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml
from conftest import ROOT, free_port
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_load import RaterPage, admin_page, open_test, password, write_catalog, write_users
from tests.support.loopback import CallFailed, PageClient
from workbench import audio
from workbench.catalog import Catalog, load_catalog, parse_catalog
from workbench.errors import AudioError, CatalogError, RenderError, VoteError
from workbench.ui.guard import Limits
from workbench.votes import REASONS, BadVote, Vote, VoteStore, clean_comment, find_torn_tail, read_votes

REAL_CATALOG = (ROOT / "checkpoints.yaml").read_text()
PROBLEM = re.compile(r"^checkpoints\.yaml:\d+: ")
#: every character, surrogates and control characters included
ANY_CHAR = st.characters(exclude_categories=())
UPLOAD_CAP = 3 * 2**20  # the served app's --max-upload-mb here (bytes), small to keep the test quick
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------- the catalog loader


def parses_or_refuses(text: str) -> Catalog | None:
    """The loader's contract: a Catalog, or a CatalogError whose problems say file:line: what."""
    try:
        cat = parse_catalog(text, path=ROOT / "checkpoints.yaml")
    except CatalogError as e:
        assert e.problems and all(PROBLEM.match(p) for p in e.problems), e.problems
        return None
    assert isinstance(cat, Catalog) and "none" in cat.enhancements
    return cat


@FAST
@given(st.text(ANY_CHAR, max_size=400))
def test_catalog_loader_any_text(text):
    parses_or_refuses(text)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(ANY_CHAR, max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12) | st.integers(), inner, max_size=4)
    ),
    max_leaves=30,
)


@FAST
@given(yaml_values)
def test_catalog_loader_any_yaml_document(doc):
    parses_or_refuses(yaml.safe_dump(doc, allow_unicode=True))


def _paths(node, here=()):
    yield here
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*here, i))


REAL_DATA = yaml.safe_load(REAL_CATALOG)
REAL_PATHS = [p for p in _paths(REAL_DATA) if p]


@FAST
@given(st.lists(st.tuples(st.sampled_from(REAL_PATHS), yaml_values), min_size=1, max_size=3))
def test_catalog_loader_any_edit_of_the_real_catalog(edits):
    import copy

    data = copy.deepcopy(REAL_DATA)
    for path, value in edits:
        node = data
        try:
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced this branch
    parses_or_refuses(yaml.safe_dump(data, allow_unicode=True))


@FAST
@given(st.data())
def test_catalog_loader_any_line_edit_of_the_real_file(data):
    lines = REAL_CATALOG.splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        how = data.draw(st.sampled_from(["delete", "duplicate", "insert", "cut", "indent"]))
        if how == "delete":
            del lines[i]
        elif how == "duplicate":
            lines.insert(i, lines[i])
        elif how == "insert":
            lines.insert(i, data.draw(st.text(ANY_CHAR, max_size=40)) + "\n")
        elif how == "cut":
            lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])))]
        else:
            lines[i] = " " * data.draw(st.integers(1, 5)) + lines[i]
    parses_or_refuses("".join(lines))


@FAST
@given(yaml_values | st.text(ANY_CHAR, max_size=300))
def test_plan_loader_any_yaml(doc):
    """Plan files are uploads: a PlanSpec or a CatalogError naming the file and line, nothing else."""
    from workbench.abtest import PlanSpec, parse_plan_yaml

    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, allow_unicode=True)
    try:
        assert isinstance(parse_plan_yaml(text, name="plan.yaml"), PlanSpec)
    except CatalogError as e:
        assert all(re.match(r"^plan\.yaml:\d+: ", p) for p in e.problems), e.problems


HOSTILE_CATALOGS = {
    "nested 5000 deep": ("[" * 5000 + "]" * 5000, "nested too deeply"),
    "mapping nested 3000 deep": ("a: " + "{b: " * 3000 + "1" + "}" * 3000, "nested too deeply"),
    "a billion laughs": (
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
        + "checkpoints: *i\n",
        "checkpoints must be a mapping",
    ),
    "an anchor inside itself": ("checkpoints: &c {x: *c}\n", "checkpoints.x.x is not a known field"),
    "numbers as field names": (
        "checkpoints:\n  feb1:\n    1: 2\n    model_dir: m\n",
        "checkpoints.feb1.1 is not a known field",
    ),
    "a number as a settings field": ("settings:\n  7: 8\n", "settings.7 is not a known field"),
    "a home folder of nobody": ("settings:\n  cache_dir: ~nosuchuser9/x\n", "cannot expand '~'"),
    "a python tag": ("checkpoints: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    "a list as a key": ("checkpoints:\n  ? [a, b]\n  : {}\n", "not valid YAML"),
    "control bytes": ("\x00\x01\x02", "not valid YAML"),
    "an id like a path": ("checkpoints:\n  ../../etc:\n    model_dir: x\n", "is not a valid id"),
    "a huge number": ("settings:\n  max_loaded_models: " + "9" * 5000 + "\n", "not valid YAML: Exceeds the limit"),
    "an impossible date": ("sentences:\n  s:\n    text: 2024-13-45\n", "not valid YAML: month must be in 1..12"),
}


@pytest.mark.parametrize("case", list(HOSTILE_CATALOGS))
def test_catalog_loader_hostile_yaml(case):
    text, message = HOSTILE_CATALOGS[case]
    with pytest.raises(CatalogError, match=re.escape(message)):
        parse_catalog(text)


def test_catalog_files_that_are_not_text(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CatalogError, match="bin.yaml: cannot read"):
        load_catalog(tmp_path / "bin.yaml")
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path)  # a folder
    (tmp_path / "empty.yaml").write_bytes(b"")
    with pytest.raises(CatalogError, match="checkpoints is missing or empty"):
        load_catalog(tmp_path / "empty.yaml")


# ---------------------------------------------------------------------------- the vote store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> VoteStore:
    return VoteStore(tmp_path_factory.mktemp("hostile-votes") / "votes.csv")


def _vote(**kw) -> Vote:
    base = dict(
        rater="ann",
        test_id="ab-00112233",
        trial_id="t01",
        reference="surya_1",
        sentence_id="pangram",
        checkpoint_a="feb1",
        checkpoint_b="apr27",
        preset_a="none",
        preset_b="none",
        a_side="A",
        choice="A",
    )
    return Vote.create(**{**base, **kw})


@FAST
@given(
    rater=st.text(ANY_CHAR, max_size=70),
    trial=st.text(ANY_CHAR, max_size=70),
    comment=st.text(ANY_CHAR, max_size=600) | st.text(max_size=3000),
    reasons=st.lists(st.sampled_from(REASONS) | st.text(ANY_CHAR, max_size=12), max_size=6),
    played=st.floats() | st.integers(-10, 10**9) | st.text(max_size=6),
    choice=st.sampled_from(["A", "B", "none"]) | st.text(max_size=3),
)
def test_vote_store_any_text(store, rater, trial, comment, reasons, played, choice):
    """Arbitrary names, ids, comments, reasons and numbers: stored exactly or refused with VoteError."""
    try:
        vote = _vote(rater=rater, trial_id=trial, comment=comment, reasons=reasons, played_a_s=played, choice=choice)
        store.append(vote)
    except BadVote:
        pass
    else:
        row = read_votes(store.path).iloc[-1]
        assert row["vote_id"] == vote.vote_id
        assert row["rater"] == rater.strip() and row["trial_id"] == trial.strip()
        assert row["comment"] == clean_comment(comment)
        assert row["reasons"] == ";".join(r for r in REASONS if r in {x.strip() for x in reasons})
        assert row["played_a_s"] == round(float(played), 3)
    assert find_torn_tail(store.path.read_bytes()) is None if store.path.exists() else True


@FAST
@given(st.data())
def test_read_votes_any_damage(tmp_path_factory, data):
    """A vote file cut, flipped or spliced anywhere: read (or set aside) or refused with VoteError."""
    folder = tmp_path_factory.mktemp("damaged")
    good = VoteStore(folder / "good.csv")
    for k in range(3):
        good.append(_vote(trial_id=f"t0{k}", comment=f'line one\nline "two", {k}'))
    raw = bytearray(good.path.read_bytes())
    how = data.draw(st.sampled_from(["cut", "flip", "splice", "bytes"]))
    if how == "cut":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 5))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    elif how == "splice":
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = data.draw(st.text(ANY_CHAR, max_size=30)).encode("utf-8", "surrogatepass")
    else:
        raw = bytearray(data.draw(st.binary(max_size=300)))
    path = folder / "votes.csv"
    path.write_bytes(bytes(raw))
    try:
        read_votes(path)
    except VoteError as e:
        assert "votes.csv" in str(e)
    try:
        VoteStore(path).read()
    except VoteError as e:
        assert "votes.csv" in str(e)


# ---------------------------------------------------------------------------- the served app (login on)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    import app
    from workbench.ui import build_app
    from workbench.ui.common import AppContext
    from workbench.users import UserStore

    root = tmp_path_factory.mktemp("hostile-app")
    cat = load_catalog(write_catalog(root))
    users = UserStore(write_users(root, ["rita", "remy"]))
    ctx = AppContext.create(
        catalog=cat,
        votes_path=root / "votes" / "votes.csv",
        data_dir=cat.settings.data_dir,
        users=users,
        limits=Limits(max_upload_bytes=UPLOAD_CAP),
    )
    demo = build_app(ctx)
    demo.queue(default_concurrency_limit=8)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True, **app.launch_options(ctx))
    s = SimpleNamespace(url=f"http://127.0.0.1:{port}", users=users, ctx=ctx, root=root)
    s.test_id = open_test(s, "Hostile", references=["surya_1"], sentences=["pangram", "names"])
    yield s
    demo.close()


def _upload(page: PageClient, name: str, data: bytes):
    return page.http.post("/gradio_api/upload", files={"files": (name, data)})


def _file(path: str, name: str) -> dict:
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def _rater(site, name="rita") -> PageClient:
    page = PageClient(site.url, auth=(name, password(name)), record=False)
    page.page_load()
    return page


PATH_NAMES = [
    "../../etc/passwd.wav",
    "/etc/passwd.yaml",
    "..\\..\\windows\\win.ini.yaml",
    "%2e%2e%2f%2e%2e%2fup.yaml",
    "a/../../../b.yaml",
    ".hidden.yaml",
    "x" * 300 + ".yaml",
    "nul\u0000byte.yaml",
]


def test_uploaded_names_like_paths_stay_in_the_upload_folder(site, tmp_path):
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()).resolve()
    page = admin_page(site)  # raters may not upload at all (tests/test_security.py)
    for name in PATH_NAMES:
        r = _upload(page, name, b"title: x\n")
        assert r.status_code == 200, (name, r.text)
        (stored,) = r.json()
        stored = Path(stored).resolve()
        assert folder in stored.parents, (name, stored)
        assert ".." not in stored.parts and "/" not in stored.name and "\x00" not in str(stored)
    assert not (folder.parent / "etc" / "passwd.wav").exists() and not Path("/etc/passwd.yaml").exists()
    with httpx.Client(base_url=site.url) as anonymous:  # no login, no upload
        assert anonymous.post("/gradio_api/upload", files={"files": ("x.yaml", b"x")}).status_code == 401


def test_an_upload_over_the_cap_is_refused_and_one_under_it_is_kept(site):
    page = admin_page(site)
    r = _upload(page, "big.zip", b"#" * (UPLOAD_CAP + 1))
    assert r.status_code == 413 and "maximum allowed size" in r.text
    r = _upload(page, "renders.zip", b"#" * (UPLOAD_CAP - 1024))  # a zip of old renders is megabytes
    assert r.status_code == 200 and Path(r.json()[0]).stat().st_size == UPLOAD_CAP - 1024


def test_an_admin_adds_old_renders_from_an_uploaded_zip(site, tmp_path):
    # the feature the upload cap exists for: a zip of <reference>/<sentence>.flac, wrapped in a folder
    clips = sorted((site.root / "demo" / "clips" / "feb1" / "surya_1").glob("*.flac"))
    zipped = tmp_path / "old.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for clip in clips:
            zf.write(clip, f"feb1-march/surya_1/{clip.name}")
    assert 2**20 < zipped.stat().st_size < UPLOAD_CAP  # over the 1 MB that uploads were once capped at
    admin = admin_page(site)
    r = _upload(admin, "old.zip", zipped.read_bytes())
    assert r.status_code == 200
    button = admin.find(label="Add checkpoint", kind="button")
    dep = admin.deps_for(button, "click")[0]
    out = admin.call(dep["id"], ["feb1-zip", "", _file(r.json()[0], "old.zip"), "from a zip", []], trigger_id=button)
    message = out.data[0]["value"]
    assert f"Added checkpoint **feb1-zip**: {len(clips)} clips" in message, message
    assert "feb1-zip" in site.ctx.catalog.checkpoints
    added = yaml.safe_load(site.ctx.catalog.overlay.read_text())["checkpoints"]["feb1-zip"]
    assert added["notes"] == "from a zip"


def _load_plan(page: PageClient, stored: str, name: str):
    button = page.find(label="Load plan", kind="button")
    dep = page.deps_for(button, "click")[0]
    return page.call(dep["id"], [_file(stored, name)], trigger_id=button)


GOOD_PLAN = "title: Uploaded\ncheckpoints: [feb1, apr24]\nreferences: [surya_1]\nsentences: [pangram]\n"
BAD_PLANS = {
    "too large": ("plan.yaml", b"#" * (2 * 1024 * 1024), "2.0 MB is too large for a plan file"),
    "zero-length": ("plan.yaml", b"", "a plan must be a mapping"),
    "truncated": ("plan.yaml", GOOD_PLAN.encode()[:60], "not valid YAML"),
    "binary": ("plan.yaml", bytes(range(256)) * 8, "cannot read the plan file"),
    "not UTF-8": ("plan.yaml", "title: caf\u00e9\n".encode("latin-1"), "cannot read the plan file"),
    "wrong extension": ("plan.wav", b"RIFF\x24\x00\x00\x00WAVEfmt ", "Invalid file type"),
    "an executable": ("plan.sh", b"#!/bin/sh\nrm -rf /\n", "Invalid file type"),
    "nested too deep": ("plan.yaml", b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    "a billion laughs": (
        "plan.yaml",
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
            + "title: *i\n"
        ).encode(),
        "title",
    ),
    "unknown ids like paths": (
        "plan.yaml",
        b"title: t\ncheckpoints: [../../etc, feb1]\nreferences: [/etc/passwd]\nsentences: [pangram]\n",
        "plan.yaml:2: checkpoints.0 '../../etc' not found",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PLANS))
def test_hostile_plan_files_are_refused_clearly(site, case):
    name, data, message = BAD_PLANS[case]
    admin = admin_page(site)
    r = _upload(admin, name, data)
    assert r.status_code == 200
    before = sorted(p.name for p in (site.ctx.data_dir / "tests").glob("*.json"))
    with pytest.raises(CallFailed, match=re.escape(message)):
        _load_plan(admin, r.json()[0], name)
    assert sorted(p.name for p in (site.ctx.data_dir / "tests").glob("*.json")) == before


def test_a_plan_file_named_like_a_path_loads_only_as_a_plan(site):
    admin = admin_page(site)
    r = _upload(admin, "../../../etc/cron.d/evil.yaml", GOOD_PLAN.encode())
    msg = _load_plan(admin, r.json()[0], "../../../etc/cron.d/evil.yaml").data[0]
    assert "Created **Uploaded**" in msg
    assert not Path("/etc/cron.d/evil.yaml").exists()
    assert all(p.parent == site.ctx.data_dir / "tests" for p in (site.ctx.data_dir / "tests").glob("*.json"))


def test_files_not_uploaded_cannot_be_passed_as_uploads(site):
    admin = admin_page(site)
    before = sorted((site.ctx.data_dir / "tests").glob("*.json"))
    for path in ("/etc/passwd", str(site.ctx.catalog.path), str(site.root / "users.json")):
        with pytest.raises(CallFailed) as e:
            _load_plan(admin, path, "plan.yaml")
        assert "root:" not in e.value.message and "scrypt" not in e.value.message  # nothing of the file
    assert sorted((site.ctx.data_dir / "tests").glob("*.json")) == before


def test_raters_cannot_load_plans(site):
    rater = _rater(site)
    assert _upload(rater, "plan.yaml", GOOD_PLAN.encode()).status_code == 403
    r = _upload(admin_page(site), "plan.yaml", GOOD_PLAN.encode())  # a file the rater learned of
    with pytest.raises(CallFailed, match="for admins"):
        _load_plan(rater, r.json()[0], "plan.yaml")


# ---------------------------------------------------------------------------- audio files named in the catalog


def _bad_audio(kind: str, folder: Path) -> Path:
    good = audio.write(folder / "good.flac", audio.sine(180.0, seconds=2.0, sr=22050), 22050)
    if kind == "zero-length":
        (folder / "z.flac").write_bytes(b"")
        return folder / "z.flac"
    if kind == "truncated flac":
        (folder / "t.flac").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        return folder / "t.flac"
    if kind == "truncated wav":
        w = audio.write(folder / "w.wav", audio.sine(180.0, seconds=2.0, sr=22050), 22050)
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
        return w
    if kind == "text named .wav":
        (folder / "passwd.wav").write_text("root:x:0:0:root:/root:/bin/bash\n")
        return folder / "passwd.wav"
    if kind == "huge":
        with open(folder / "huge.wav", "wb") as f:
            f.truncate(audio.MAX_FILE_BYTES + 1)  # sparse: no disk used, never read
        return folder / "huge.wav"
    raise AssertionError(kind)


AUDIO_CASES = {
    "zero-length": "zero-length file",
    "truncated flac": "not a readable audio file",
    "truncated wav": "cut short: its header promises 2.00 s of audio, it holds 1.00 s",
    "text named .wav": "not a readable audio file",
    "huge": "larger than the",
}


def _compare_error(ctx, text: str = "") -> dict:
    """The Compare error box after comparing feb1 and apr24 for surya_1 (``text``: custom text)."""
    import gradio as gr

    from workbench.ui import compare

    with gr.Blocks():
        view = compare.build()
    form = compare.CompareInputs("surya_1", "pangram", text, ["feb1", "apr24"], "none", retake=None)
    return compare.compare(ctx, view, form, None, None)[view.error_box]


@pytest.mark.parametrize("kind", list(AUDIO_CASES))
def test_bad_reference_recordings_are_refused_by_name(tmp_path, kind):
    root = tmp_path / "app"
    config = write_catalog(root)
    bad = _bad_audio(kind, tmp_path)
    config.write_text(config.read_text().replace("demo/references/surya_1.flac", str(bad)))
    cat = load_catalog(config)
    with pytest.raises(AudioError, match=f"{re.escape(bad.name)}: .*{re.escape(AUDIO_CASES[kind])}"):
        audio.load(bad)
    from workbench.ui.common import AppContext

    ctx = AppContext.create(catalog=cat, votes_path=tmp_path / "v.csv", data_dir=cat.settings.data_dir)

    box = _compare_error(ctx)
    assert box["visible"] and bad.name in box["value"]  # the error box names the file
    assert str(bad.parent) not in box["value"]  # and no server path


def test_a_cut_short_reference_stops_a_model_render_with_its_name(tmp_path, tiny_xtts_dir):
    from tiny_models import write_tiny_catalog

    from workbench.render import Renderer, RenderRequest

    path = write_tiny_catalog(tmp_path / "c", {"tiny": tiny_xtts_dir})
    wav = tmp_path / "c" / "refs" / "ref_a.wav"
    wav.write_bytes(wav.read_bytes()[: wav.stat().st_size * 2 // 3])
    with pytest.raises(AudioError, match="ref_a.wav: the file is cut short"):
        Renderer(load_catalog(path), device="cpu").render(RenderRequest("tiny", "ref_a", "short"))


def test_a_streamed_wav_without_a_final_size_still_loads(tmp_path):
    import struct

    w = audio.write(tmp_path / "s.wav", audio.sine(200.0, seconds=1.0), 24000, subtype="PCM_16")
    raw = bytearray(w.read_bytes())
    i = raw.find(b"data")
    raw[4:8] = raw[i + 4 : i + 8] = struct.pack("<I", 0xFFFFFFFF)  # what a pipe-writing recorder leaves
    w.write_bytes(bytes(raw))
    y, sr = audio.load(w)
    assert sr == 24000 and len(y) == 24000


# ---------------------------------------------------------------------------- path traversal


TRAVERSALS = [
    "../../etc/passwd",
    "ab-../../x",
    "ab-00000000/../../../etc/passwd",
    "/etc/passwd",
    "ab-0000000\x00",
    "ab-" + "0" * 200,
    "..%2f..%2fetc%2fpasswd",
    "ab-00112233.json",
]


@pytest.mark.parametrize("test_id", TRAVERSALS)
def test_test_ids_cannot_reach_files(site, test_id):
    from workbench.abtest import PlanStore

    with pytest.raises(BadVote, match="unknown test"):
        PlanStore(site.ctx.data_dir / "tests").get(test_id)
    page = _rater(site, "remy")
    start = page.deps_for(page.find("wb-start"), "click")[0]
    with pytest.raises(CallFailed) as e:
        page.call(start["id"], [None, "", test_id])
    assert "root:" not in e.value.message  # nothing of any file comes back


def test_vote_tokens_are_not_paths(site):
    page = RaterPage(site, "rita", [site.test_id])
    vote = page.pc.deps_for(page.pc.find("wb-vote-a"), "click")[0]
    for token in ("../../../etc/passwd", "/etc/passwd", "t01", "", "\x00"):
        with pytest.raises(CallFailed, match="no longer waiting"):
            page.pc.call(vote["id"], [None, token, [], ""])


def test_compare_links_name_only_catalog_entries(site):
    from workbench.comparison import parse_link
    from workbench.render import Renderer, RenderRequest

    cat = site.ctx.catalog
    query = {
        "reference": "../../etc/passwd",
        "sentence": "/etc/shadow",
        "checkpoints": "feb1,../../models/x,apr24,%2e%2e",
        "preset": "../none",
        "take": "1/../2",
        "text": "t" * 10_000,
    }
    values, problems = parse_link(query, cat)
    assert values["checkpoints"] == ["feb1", "apr24"] and "reference" not in values and "sentence" not in values
    assert len(values["text"]) == 2000 and "presets" not in values and "take" not in values
    assert len(problems) == 6
    r = Renderer(cat)
    for req in (
        RenderRequest("../../etc", "surya_1", "pangram"),
        RenderRequest("feb1", "../../../etc/passwd", "pangram"),
        RenderRequest("feb1", "surya_1", "../../../../etc/passwd"),
        RenderRequest("feb1", "surya_1", "pangram", enhancement="../../x"),
    ):
        with pytest.raises(CatalogError, match="not found; available"):
            r.render(req)


def test_served_files_stay_inside_the_served_folders(site):
    page = RaterPage(site, "remy", [site.test_id])
    url = page.value("wb-audio-a")
    assert page.pc.http.get(url).status_code == 200  # the control: a served copy, through the clip route
    name = url.rsplit("/", 1)[1]
    data = site.ctx.data_dir
    from workbench.render import Renderer, RenderRequest

    clip = Renderer(site.ctx.catalog).render(RenderRequest("feb1", "surya_1", "pangram")).path
    secrets = [
        site.ctx.votes_path,
        site.ctx.catalog.path,
        site.root / "users.json",
        data / "tests" / f"{site.test_id}.json",  # holds the key: which checkpoint is A
        data / "tests" / f"{site.test_id}.schedules.jsonl",
        clip,
        Path("/etc/passwd"),
    ]
    tries = [f"/gradio_api/file={p}" for p in secrets]
    tries += [
        f"/gradio_api/file={data / 'served'}/{name}",  # the served folder is not open to Gradio's file route
        f"/gradio_api/file={data / 'served'}/../../{site.ctx.votes_path.relative_to(site.root)}",
        "/gradio_api/file=..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/file=/etc/passwd",
        f"/gradio_api/file={data / 'served'}",
        "/wb/clip/../../etc/passwd",
        "/wb/clip/..%2f..%2f..%2f..%2fetc%2fpasswd",
        f"/wb/clip/..%2f..%2f{site.ctx.votes_path.name}",
        f"/wb/clip/{name[:-4]}.json",
        "/wb/clip/",
    ]
    for t in tries:
        r = page.pc.http.get(t)
        assert r.status_code in (403, 404), (t, r.status_code)
        assert "root:x:" not in r.text and "vote_id" not in r.text and "checkpoint_a" not in r.text


# ---------------------------------------------------------------------------- oversize requests


def test_a_one_megabyte_comment_is_refused_and_the_trial_waits(site):
    page = RaterPage(site, "remy", [site.test_id])
    before = read_votes(site.ctx.votes_path) if site.ctx.votes_path.exists() else None
    n = 0 if before is None else len(before)
    number = page.progress()
    with pytest.raises(CallFailed, match="the comment has 1000000 characters; the limit is 2000"):
        page.vote("A", "c" * 1_000_000, [])
    assert page.progress() == number
    assert (len(read_votes(site.ctx.votes_path)) if site.ctx.votes_path.exists() else 0) == n
    page.vote("A", "a short comment", [])
    assert len(read_votes(site.ctx.votes_path)) == n + 1


def test_oversize_and_malformed_votes_are_refused_and_the_app_goes_on(site):
    page = RaterPage(site, "rita", [site.test_id])
    vote = page.pc.deps_for(page.pc.find("wb-vote-a"), "click")[0]
    for player in ("wb-audio-a", "wb-audio-b"):
        page.pc.fetch(page.value(player))
        page.pc.trigger(player, "play")
    token = page.value("wb-token")
    n = len(read_votes(site.ctx.votes_path)) if site.ctx.votes_path.exists() else 0
    with pytest.raises(CallFailed, match="the server takes at most 4 MB"):
        page.pc.call(vote["id"], [None, token, [], "z" * 20_000_000])  # a 20 MB request
    with pytest.raises(CallFailed, match="the comment has 2000000 characters; the limit is 2000"):
        page.pc.call(vote["id"], [None, token, [], "z" * 2_000_000])  # 2 MB gets to the handler
    for reasons in ([{"a": 1}] * 10, ["../../etc/passwd"], ["accent", 7]):
        with pytest.raises(CallFailed, match="is not in the list of choices"):
            page.pc.call(vote["id"], [None, token, reasons, ""])
    assert (len(read_votes(site.ctx.votes_path)) if site.ctx.votes_path.exists() else 0) == n
    # the same trial still takes a vote; 100,000 copies of one reason are that one reason
    saved = page.pc.call(vote["id"], [None, token, ["accent"] * 100_000, "still fine"]).data[0]
    assert saved.startswith("✓ Saved")
    row = read_votes(site.ctx.votes_path).iloc[-1]
    assert (row["comment"], row["reasons"], len(read_votes(site.ctx.votes_path))) == ("still fine", "accent", n + 1)


def test_ten_thousand_characters_of_custom_text_are_refused(demo_catalog, tmp_path):

    from workbench.render import Renderer, RenderRequest
    from workbench.ui.common import AppContext

    text = "word " * 2000
    with pytest.raises(RenderError, match="custom text has 9999 characters; the limit is 2000"):
        Renderer(demo_catalog).render(RenderRequest("feb1", "surya_1", text=text))
    ctx = AppContext.create(
        catalog=demo_catalog, votes_path=tmp_path / "unused.csv", data_dir=demo_catalog.settings.data_dir
    )
    box = _compare_error(ctx, text)
    assert box["visible"] and "custom text has 9999 characters; the limit is 2000" in box["value"]


def test_names_and_json_noise_into_the_store_api(tmp_path):
    s = VoteStore(tmp_path / "v.csv")
    for bad in ("n" * 100_000, "a\nb", "\udc80", 42, ["x"]):
        with pytest.raises(BadVote):
            s.append(_vote(rater=bad))
    assert not s.path.exists() or read_votes(s.path).empty
