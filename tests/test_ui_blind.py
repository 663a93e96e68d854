"""The Blind A/B tab through a real app over loopback, driven the way its page drives it.

Handlers are private (``api_name=False``), which ``gradio_client`` refuses to call, so
these tests use :class:`tests.support.loopback.PageClient`: the page's own protocol (config,
queue join, server-sent results, file URLs), recording every byte it receives.
"""

from __future__ import annotations

import io
import re
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, free_port

from tests.support.loopback import CallFailed, PageClient
from workbench import audio
from workbench.render import RenderRequest
from workbench.votes import COLUMNS, read_votes

CHECKPOINTS = ("feb1", "apr24", "apr27")
REFS = ("surya_1", "paul_1")
SENTS = ("pangram", "names")
PASSWORDS = {"boss": "boss-pw-1", "ann": "ann-pw-1", "bob": "bob-pw-1", "cy": "cy-pw-12", "dan": "dan-pw-1"}


def copy_demo(root: Path) -> Path:
    """A private demo catalog under ``root`` (cache and data dirs inside it)."""
    shutil.copytree(ROOT / "demo", root / "demo", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    text = (ROOT / "checkpoints.yaml").read_text()
    text = text.replace("cache_dir: .workbench/cache", f"cache_dir: {root / 'cache'}")
    text = text.replace("data_dir: .workbench ", f"data_dir: {root / 'data'} ")
    (root / "checkpoints.yaml").write_text(text)
    return root / "checkpoints.yaml"


@dataclass
class Site:
    url: str
    ctx: object
    root: Path
    demo: object


def launch(root: Path, *, login: bool) -> Site:
    import app
    from workbench.catalog import load_catalog
    from workbench.ui import build_app
    from workbench.ui.common import AppContext
    from workbench.users import UserStore

    cat = load_catalog(copy_demo(root))
    users = None
    if login:
        users = UserStore(root / "users.json")
        for name, pw in PASSWORDS.items():
            users.add(name, pw, "admin" if name == "boss" else "rater")
    ctx = AppContext.create(catalog=cat, votes_path=root / "votes" / "votes.csv", data_dir=root / "data", users=users)
    demo = build_app(ctx)
    demo.queue(default_concurrency_limit=8)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True, **app.launch_options(ctx))
    return Site(f"http://127.0.0.1:{port}", ctx, root, demo)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = launch(tmp_path_factory.mktemp("blind"), login=True)
    yield s
    s.demo.close()


def client(site: Site, user: str | None = None, **kw) -> PageClient:
    return PageClient(site.url, auth=(user, PASSWORDS[user]) if user else None, **kw)


def create_and_open(site: Site, admin: PageClient, title: str, **fields) -> str:
    """Create a test through the admin panel and open it; returns its id."""
    admin.page_load()
    admin.set("wb-admin-title", title)
    admin.set("wb-admin-checkpoints", list(fields.get("checkpoints", CHECKPOINTS)))
    admin.set("wb-admin-references", list(fields.get("references", REFS)))
    admin.set("wb-admin-sentences", list(fields.get("sentences", SENTS)))
    admin.set("wb-admin-presets", ["none"])
    admin.set("wb-admin-repeats", fields.get("repeats", 0))
    admin.set("wb-admin-require-play", fields.get("require_play", True))
    for key in ("controls", "training", "takes", "raters", "question"):
        if key in fields:
            admin.set(f"wb-admin-{key}", fields[key])
    admin.set("wb-admin-ref", fields.get("play_reference", False))
    admin.set("wb-admin-text", fields.get("show_text", False))
    msg = admin.trigger("wb-admin-create")[0].data[0]
    test_id = re.search(r"`(ab-[0-9a-f]+)`", msg).group(1)
    admin.set("wb-admin-test", test_id)
    opened = admin.trigger("wb-admin-open")[0].data[0]
    assert "is open" in opened and re.search(r"Median clip duration: \w+ \d+\.\d s", opened), opened
    return test_id


class Candidates:
    """Every clip a test can play, loudness-matched like served copies, to recognise them."""

    def __init__(self, site: Site):
        from workbench.ui.common import get_renderer

        r = get_renderer(site.ctx)
        self.clips = {}
        for ck in CHECKPOINTS:
            for ref in REFS:
                for sent in SENTS:
                    y, sr = r.render(RenderRequest(ck, ref, sent)).load()
                    self.clips[(ck, ref, sent)] = audio.normalize_loudness(y, sr, target_lufs=-23)

    def identify(self, wav: bytes) -> tuple[str, str, str]:
        y, sr = sf.read(io.BytesIO(wav), dtype="float32")
        assert sr == 24000 and y.ndim == 1
        hits = [k for k, c in self.clips.items() if len(c) == len(y) and np.max(np.abs(c - y)) < 1e-3]
        assert len(hits) == 1, hits
        return hits[0]


class Rater:
    """One rater's browser tab."""

    def __init__(self, site: Site, user: str | None, name: str | None = None, record: bool = True):
        self.site, self.user, self.name = site, user, name
        self.pc = client(site, user, record=record)
        self.pc.page_load()

    def reload(self) -> None:
        self.pc.reload()
        self.pc.page_load()

    def start(self, test_id: str) -> None:
        choices = [c[1] for c in self.pc.props[self.pc.find("wb-test")]["choices"]]
        assert test_id in choices
        if self.name is not None:
            self.pc.set("wb-name", self.name)
        self.pc.set("wb-test", test_id)
        self.pc.trigger("wb-start")
        if self.visible("wb-instructions"):  # a first start shows the instructions before trial 1
            assert "Before you start" in self.value("wb-instructions-text") and not self.visible("wb-trial")
            self.pc.trigger("wb-begin")

    def value(self, elem_id: str):
        return self.pc.values[self.pc.find(elem_id)]

    def visible(self, elem_id: str) -> bool:
        return bool(self.pc.props[self.pc.find(elem_id)].get("visible", True))

    def urls(self) -> tuple[str, str]:
        return self.value("wb-audio-a"), self.value("wb-audio-b")

    def listen(self, fetch: bool = True) -> None:
        """What the page does: fetch each clip from the server, and say when it plays."""
        if fetch:
            for url in self.urls():
                self.pc.fetch(url)
        self.pc.trigger("wb-audio-a", "play")
        self.pc.trigger("wb-audio-a", "pause")
        self.pc.trigger("wb-audio-b", "play")
        self.pc.trigger("wb-audio-b", "stop")

    def vote(self, choice: str, reasons=(), comment: str = "") -> None:
        self.pc.set("wb-reasons", list(reasons))
        self.pc.set("wb-comment", comment)
        self.pc.trigger({"A": "wb-vote-a", "B": "wb-vote-b", "none": "wb-vote-none"}[choice])


RANKS = {"ann": ("apr27", "feb1", "apr24"), "bob": ("feb1",)}


def preferred(rater: str, slots: dict[str, str]) -> str:
    """The slot ``rater`` votes for: their higher-ranked checkpoint, else no preference."""
    ranks = RANKS[rater]
    best = min(slots, key=lambda s: ranks.index(slots[s]) if slots[s] in ranks else 99)
    return best if slots[best] in ranks else "none"


# ---------------------------------------------------------------------------- done when


def test_two_raters_complete_the_same_12_trial_test_in_parallel(site):
    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Spring round")
    cands = Candidates(site)
    expected: dict[tuple, dict] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(user: str) -> None:
        try:
            r = Rater(site, user)
            r.start(test_id)
            for i in range(12):
                if i == 5:  # reload the page mid-test: resume at the next trial
                    r.reload()
                    r.start(test_id)
                    assert "Welcome back" in r.value("wb-status")
                assert f"Trial <b>{i + 1}</b> / 12" in r.value("wb-progress")
                ua, ub = r.urls()
                ka, kb = cands.identify(r.pc.fetch(ua)), cands.identify(r.pc.fetch(ub))
                assert ka[1:] == kb[1:] and ka[0] != kb[0]  # same reference and sentence, two checkpoints
                slots = {"A": ka[0], "B": kb[0]}
                choice = preferred(user, slots)
                r.listen()
                r.vote(choice, reasons=["accent"] if choice != "none" else [], comment=f"{user} {i}")
                assert r.value("wb-status").startswith("✓ Saved")
                with lock:
                    expected[(user, ka[1], ka[2], frozenset(slots.values()))] = {"slots": slots, "choice": choice}
            assert r.visible("wb-done") and "Thank you" in r.value("wb-done-text")
            assert not r.visible("wb-trial")
        except BaseException as e:  # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(u,)) for u in ("ann", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    if errors:
        raise errors[0]
    df = read_votes(site.ctx.votes_path)
    df = df[df["test_id"] == test_id]
    assert len(df) == 24 and Counter(df["rater"]) == {"ann": 12, "bob": 12}
    assert not df.duplicated(["rater", "trial_id"]).any()
    assert len(expected) == 24
    for row in df.itertuples():
        exp = expected[(row.rater, row.reference, row.sentence_id, frozenset((row.checkpoint_a, row.checkpoint_b)))]
        assert exp["slots"][row.a_side] == row.checkpoint_a  # a_side: where checkpoint_a played
        assert row.choice == exp["choice"]
        want = exp["slots"][exp["choice"]] if exp["choice"] != "none" else "tie"
        assert row.winner == want
        assert row.comment.startswith(row.rater)
    ann = df[df["rater"] == "ann"]
    assert (ann["winner"] != "tie").all()  # ann always has a preference
    assert Counter(df[df["rater"] == "bob"]["winner"]) == {"feb1": 8, "tie": 4}


# ---------------------------------------------------------------------------- blindness


def forbidden_strings(site: Site) -> list[str]:
    """Names, paths and stable ids that must never reach a rater's browser."""
    from gradio.processing_utils import hash_file

    from workbench.hashing import sha256_file
    from workbench.ui.common import get_renderer

    cat = site.ctx.catalog
    r = get_renderer(site.ctx)
    out = {str(site.root), str(cat.path), "demo/clips", str(cat.settings.cache_dir)}
    for ck in cat.checkpoints.values():
        out |= {str(ck.model_dir), str(ck.demo_dir), "models/" + ck.name}
    for ck in CHECKPOINTS:
        for ref in REFS:
            for sent in SENTS:
                req = RenderRequest(ck, ref, sent)
                plan = r.plan(req)
                clip = r.render(req)
                src = plan.source_file
                out |= {plan.key, plan.identity["source_hash"], sha256_file(clip.path), hash_file(clip.path)}
                out.add(hash_file(src))
    return sorted(out)


def scan(transcript: list[tuple[str, str]], forbidden: list[str]) -> list[str]:
    names = [re.compile(rf"(?<![A-Za-z0-9]){re.escape(n)}(?![A-Za-z0-9])", re.I) for n in CHECKPOINTS]
    trial_ids = re.compile(r'"t\d{2,3}r?"')
    leaks = []
    for what, text in transcript:
        for pat in names:
            if pat.search(text):
                leaks.append(f"{what}: checkpoint name {pat.pattern}: {text[:200]}")
        for s in forbidden:
            if s in text:
                leaks.append(f"{what}: {s!r}")
        if trial_ids.search(text):
            leaks.append(f"{what}: a trial id")
    return leaks


def test_a_whole_test_leaks_nothing_to_the_rater(site):
    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Blindness check", repeats=2)
    cands = Candidates(site)
    r = Rater(site, "cy")
    r.start(test_id)
    urls: list[str] = []
    clips_served: list[tuple] = []
    with pytest.raises(CallFailed, match="never reached your device|Listen to both"):
        r.vote("A")
    n = 0
    while r.visible("wb-trial"):
        ua, ub = r.urls()
        urls += [ua, ub]
        wa, wb = r.pc.fetch(ua), r.pc.fetch(ub)
        for w in (wa, wb):
            for name in CHECKPOINTS:
                assert name.encode() not in w
        clips_served += [cands.identify(wa), cands.identify(wb)]
        r.listen()
        token = r.value("wb-token")
        r.vote("B" if n % 3 else "none", comment="fine")
        vote_dep = r.pc.deps_for(r.pc.find("wb-vote-a"), "click")[0]
        with pytest.raises(CallFailed, match="no longer waiting"):  # a replayed request
            r.pc.call(vote_dep["id"], [None, token, [], ""])
        n += 1
        if n == 4:
            r.pc.trigger("wb-change")  # change the previous vote
            assert "Changing your answer" in r.value("wb-progress")
            urls += list(r.urls())
            r.listen()
            r.vote("A")
        if n == 7:
            r.reload()
            r.start(test_id)
    assert n == 14 and "Thank you" in r.value("wb-done-text")
    # every served copy has its own random name, even for the same clip
    assert len(urls) == len(set(urls)) == 30
    names = [u.split("/")[-1] for u in urls]
    assert all(re.fullmatch(r"wb/clip/[0-9a-f]{32}\.wav", u) for u in urls)
    assert max(Counter(clips_served).values()) >= 2  # some clip was played twice, under different URLs
    # and nothing in any response names a checkpoint, a path or a stable id
    extra = [("GET /gradio_api/info", r.pc.http.get("/gradio_api/info").text)]
    leaks = scan(r.pc.transcript + extra, forbidden_strings(site))
    assert not leaks, leaks[:5]
    # the served copies on disk are deleted once answered (Gradio serves its own copy)
    left = {p.name for p in (site.ctx.data_dir / "served").iterdir()}
    assert not left & set(names)


def test_admin_transcript_does_name_checkpoints(site):
    """The scanner works: the admin's page, which does show names, is caught by it."""
    admin = client(site, "boss")
    admin.page_load()
    assert scan(admin.transcript, [])


def test_controls_repeats_training_and_takes_stay_blind(site):
    """A plan with every kind of trial: the rater's transcript cannot tell them apart."""
    admin = client(site, "boss")
    test_id = create_and_open(
        site,
        admin,
        "Mixed round",
        checkpoints=["feb1", "apr27"],
        references=["surya_1"],
        sentences=SENTS,
        repeats=2,
        controls=2,
        training=1,
        takes=2,
        question="Which accent is closer to the reference?",
        play_reference=True,
        show_text=True,
    )
    r = Rater(site, "cy")
    page_loaded = len(r.pc.transcript)
    r.start(test_id)
    assert "Which accent is closer to the reference?" in r.value("wb-question")
    shown_text = []
    n = 0
    while r.visible("wb-trial"):
        assert r.visible("wb-ref") and re.fullmatch(r"wb/clip/[0-9a-f]{32}\.wav", r.value("wb-ref"))
        assert r.pc.fetch(r.value("wb-ref"))[:4] == b"RIFF"  # the reference plays
        shown_text.append(r.value("wb-text"))
        r.listen()
        r.vote(("A", "B", "none")[n % 3])
        n += 1
    assert n == 1 + 4 + 2 + 2  # training, 2 sentences x 2 takes, repeats, controls
    texts = {site.ctx.catalog.sentence(s).text for s in SENTS}
    assert all(any(t in x for t in texts) for x in shown_text)
    df = read_votes(site.ctx.votes_path)
    mine = df[(df["test_id"] == test_id) & (df["rater"] == "cy")]
    assert Counter(mine["trial_kind"]) == {"training": 1, "test": 4, "repeat": 2, "control": 2}
    controls = mine[mine["trial_kind"] == "control"]
    assert (controls["checkpoint_a"] == controls["checkpoint_b"]).all()
    assert set(mine["take_a"]) == {"1", "2"} and (mine["take_a"] == mine["take_b"]).all()
    assert (mine["fetched_a"].astype(int) >= 1).all() and (mine["fetched_b"].astype(int) >= 1).all()
    leaks = scan(r.pc.transcript, forbidden_strings(site))
    assert not leaks, leaks[:5]
    answers = [(w, t) for w, t in r.pc.transcript[page_loaded:] if w.split()[0] in ("sse", "predict", "join")]
    assert len(answers) > 40
    for word in ("control", "repeat", "training", "practice", "take", "kind"):  # no trial kind reaches the rater
        for what, text in answers:
            hit = re.search(rf"\b{word}", text, re.I)
            assert not hit, (word, what, text[max(0, hit.start() - 150) : hit.end() + 50])


def test_the_server_refuses_votes_on_clips_it_never_delivered(site):
    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Fetch gate", references=["paul_1"], sentences=["names"])
    r = Rater(site, "ann")
    r.start(test_id)
    before = len(read_votes(site.ctx.votes_path))
    r.listen(fetch=False)  # the page says it played both, but never fetched the audio
    token = r.value("wb-token")
    vote_dep = r.pc.deps_for(r.pc.find("wb-vote-a"), "click")[0]
    with pytest.raises(CallFailed, match="A and B never reached your device"):
        r.pc.call(vote_dep["id"], [None, token, [], ""])
    ua, ub = r.urls()
    # the clip route: only the rater it was made for gets it, and only with a login
    other = client(site, "bob")
    assert other.http.get(ua).status_code == 404
    import httpx

    assert httpx.get(f"{site.url}/{ua}").status_code == 401
    r.pc.fetch(ua)
    with pytest.raises(CallFailed, match="B never reached your device"):
        r.pc.call(vote_dep["id"], [None, token, [], ""])
    r.pc.fetch(ub)
    r.pc.fetch(ub)
    r.vote("A")
    assert r.value("wb-status").startswith("✓ Saved")
    row = read_votes(site.ctx.votes_path).iloc[-1]
    assert len(read_votes(site.ctx.votes_path)) == before + 1
    assert (row["fetched_a"], row["fetched_b"], row["rater_role"]) == ("1", "2", "rater")
    assert r.pc.http.get(ua).status_code == 404  # answered: the copy is gone


def test_admin_votes_are_labelled(site):
    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Admin tries it", references=["paul_1"], sentences=["names"])
    r = Rater(site, "boss")
    r.start(test_id)
    r.listen()
    r.vote("B")
    row = read_votes(site.ctx.votes_path).iloc[-1]
    assert (row["rater"], row["rater_role"]) == ("boss", "admin")


def test_admin_form_defaults_summary_invite_archive_delete(site):
    admin = client(site, "boss")
    admin.page_load()
    cat = site.ctx.catalog
    assert admin.values[admin.find("wb-admin-checkpoints")] == list(cat.checkpoints)
    assert admin.values[admin.find("wb-admin-references")] == list(cat.references)
    assert admin.values[admin.find("wb-admin-sentences")] == list(cat.sentences)[:8]
    summary = admin.values[admin.find("wb-admin-summary")]
    assert "question: Which voice sounds better?" in summary and "speaking rate" in summary
    labels = {admin.props[admin.find(e)]["label"] for e in ("wb-test", "wb-admin-test")}
    assert labels == {"Test to rate", "Test to manage"}  # two pickers, two names
    # a mistake in the form names the field, in the test plan's words
    admin.set("wb-admin-title", "   ")
    with pytest.raises(CallFailed, match="in the test plan") as e:
        admin.trigger("wb-admin-create")
    assert "catalog" not in str(e.value) and "title" in str(e.value)
    assert "title: must not be blank" in admin.trigger("wb-admin-title", "change")[0].data[0]
    admin.set("wb-admin-title", "Defaults")
    admin.set("wb-admin-raters", 3)
    admin.trigger("wb-admin-raters", "change")
    assert "raters: 3 raters, each trial rated by 2" in admin.values[admin.find("wb-admin-summary")]
    # one click with the defaults and a title
    admin.set("wb-admin-raters", 0)
    msg = admin.trigger("wb-admin-create")[0].data[0]
    test_id = re.search(r"`(ab-[0-9a-f]+)`", msg).group(1)
    assert "trials = 3 pair(s) x 4 reference(s) x 8 sentence(s)" in msg
    invite = admin.values[admin.find("wb-admin-invite")]
    assert invite.endswith(f"/?tab=blind&test={test_id}") and invite.startswith("http")
    # archive, then delete: the plan leaves the lists, its votes stay
    admin.set("wb-admin-test", test_id)
    assert "is archived" in admin.trigger("wb-admin-archive")[0].data[0]
    assert "archived" in admin.props[admin.find("wb-admin-test")]["choices"][0][0]
    msg = admin.trigger("wb-admin-delete")[0].data[0]
    assert "is deleted" in msg and "votes stay in the CSV" in msg
    assert test_id not in [c[1] for c in admin.props[admin.find("wb-admin-test")]["choices"]]
    assert list((site.ctx.data_dir / "tests" / "deleted").glob(f"{test_id}.json.*"))
    # an open test is closed before it can be deleted
    open_id = create_and_open(site, admin, "Still open", references=["paul_1"], sentences=["names"])
    admin.set("wb-admin-test", open_id)
    with pytest.raises(CallFailed, match="close it before deleting"):
        admin.trigger("wb-admin-delete")


def test_the_flagged_takes_box_reaches_the_design_the_plan_and_open(site):
    """Off by default; ticked, the design summary says so, the stored plan asks for it and Open does it."""
    admin = client(site, "boss")
    admin.page_load()
    box = admin.find("wb-admin-exclude-flagged")
    assert admin.values[box] is False and "quality checks flag" in admin.props[box]["label"]
    assert "flagged takes replaced at Open: no" in admin.values[admin.find("wb-admin-summary")]
    admin.set("wb-admin-references", ["paul_1"])
    admin.set("wb-admin-sentences", ["names"])
    admin.set(box, True)
    assert "flagged takes replaced at Open: yes" in admin.trigger(box, "change")[0].data[0]
    made = {}
    for ticked in (False, True):
        admin.set(box, ticked)
        admin.set("wb-admin-title", f"Flags {ticked}")
        msg = admin.trigger("wb-admin-create")[0].data[0]
        made[ticked] = re.search(r"`(ab-[0-9a-f]+)`", msg).group(1)
        assert site.ctx.services.plans.get(made[ticked]).exclude_flagged is ticked
    for ticked, test_id in made.items():
        admin.set("wb-admin-test", test_id)
        opened = admin.trigger("wb-admin-open")[0].data[0]
        assert "is open" in opened and ("Flagged takes:" in opened) is ticked, opened


def test_the_form_values_become_a_plan_spec():
    """Gradio's floats and empty pickers become the spec's ints and defaults; a bad value names its field."""
    from workbench.errors import PlanError
    from workbench.ui.blind_admin import FORM_FIELDS, TestForm

    form = TestForm(title=" Accent ", checkpoints=["feb1", "apr27"], references=["paul_1"], sentences=["names"],
                    takes=2.0, raters=0, raters_per_trial=None, exclude_flagged=True)  # fmt: skip
    spec = form.spec(seed=5)
    assert (spec.title, spec.takes, spec.raters, spec.raters_per_trial) == ("Accent", 2, None, 2)
    assert spec.presets == ["none"] and spec.exclude_flagged and spec.seed == 5 and spec.play_reference
    one = {"title": "x", "checkpoints": ["a"], "references": ["r"], "sentences": ["s"]}
    assert TestForm(**one, raters=3.0).spec().raters == 3
    with pytest.raises(PlanError, match="takes"):
        TestForm(**one, takes=11).spec()
    # the panel's components carry the form's field names: read_form picks each value by its component
    import gradio as gr

    from workbench.ui import blind_admin

    with gr.Blocks():
        view = blind_admin.build(rater_test=gr.Dropdown())
    assert len(view.form) == len(FORM_FIELDS) == 16
    values = {getattr(view, name): getattr(form, name) for name in FORM_FIELDS}
    assert view.read_form(values) == form


# ---------------------------------------------------------------------------- bad input


def test_bad_input_through_the_raw_api(site):
    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Bad input", references=["surya_1"], sentences=["pangram"])
    r = Rater(site, "dan")
    vote_dep = r.pc.deps_for(r.pc.find("wb-vote-a"), "click")[0]
    with pytest.raises(CallFailed, match="Pick a test and press Start first"):
        r.pc.call(vote_dep["id"], [None, "anything", [], ""])
    r.start(test_id)
    r.listen()
    token = r.value("wb-token")
    with pytest.raises(CallFailed, match="no longer waiting"):  # an unknown trial
        r.pc.call(vote_dep["id"], [None, "not-a-trial", [], ""])
    with pytest.raises(CallFailed, match="100000 characters; the limit is 2000"):
        r.pc.call(vote_dep["id"], [None, token, [], "x" * 100_000])
    with pytest.raises(CallFailed):
        r.pc.call(vote_dep["id"], [None, token, ["boring"], ""])
    before = read_votes(site.ctx.votes_path)
    inj = '=HYPERLINK("http://evil","click") — çà 👍 日本'
    r.pc.call(vote_dep["id"], [None, token, ["accent", "dull/flat"], inj])
    with pytest.raises(CallFailed, match="no longer waiting"):  # replayed
        r.pc.call(vote_dep["id"], [None, token, [], inj])
    raw = site.ctx.votes_path.read_text(encoding="utf-8")
    assert "'=HYPERLINK" in raw and ",=HYPERLINK" not in raw
    after = read_votes(site.ctx.votes_path)
    assert len(after) == len(before) + 1
    row = after.iloc[-1]
    assert (row["rater"], row["comment"], row["reasons"]) == ("dan", inj, "accent;dull/flat")
    # empty comments are fine; finish the test, then a vote on a finished trial is refused
    next_dep = [d for d in r.pc.deps.values() if d.get("trigger_after") == vote_dep["id"]][0]
    r.pc.run_dep(next_dep)
    while r.visible("wb-trial"):
        r.listen()
        last = r.value("wb-token")
        r.vote("none", comment="")
    with pytest.raises(CallFailed, match="no longer waiting"):
        r.pc.call(vote_dep["id"], [None, last, [], ""])
    assert len(read_votes(site.ctx.votes_path)) == len(before) + 3
    # a closed test takes no more votes and is no longer offered
    admin.set("wb-admin-test", test_id)
    admin.trigger("wb-admin-close")
    start_dep = r.pc.deps_for(r.pc.find("wb-start"), "click")[0]
    with pytest.raises(CallFailed, match="not open for voting"):
        r.pc.call(start_dep["id"], [None, "", test_id])  # dan's page still lists it
    with pytest.raises(CallFailed):
        r.pc.call(start_dep["id"], [None, "", "ab-../../x"])
    r2 = Rater(site, "cy")
    assert test_id not in [c[1] for c in r2.pc.props[r2.pc.find("wb-test")]["choices"]]
    assert not scan(r.pc.transcript + r2.pc.transcript, [])


def test_a_rater_identity_comes_from_the_login(site):
    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Identity", references=["paul_1"], sentences=["names"])
    r = Rater(site, "ann")
    r.pc.set("wb-name", "mallory")  # a typed name is ignored when login is on
    r.start(test_id)
    r.listen()
    r.vote("A")
    df = read_votes(site.ctx.votes_path)
    assert df.iloc[-1]["rater"] == "ann" and "mallory" not in set(df["rater"])
    # another login cannot use ann's page session
    bob = client(site, "bob")
    bob.session_hash = r.pc.session_hash
    vote_dep = bob.deps[r.pc.deps_for(r.pc.find("wb-vote-b"), "click")[0]["id"]]
    r.listen()
    with pytest.raises(CallFailed, match="belongs to another login"):
        bob.call(vote_dep["id"], [None, r.value("wb-token"), [], ""])
    assert len(read_votes(site.ctx.votes_path)) == len(df)


# ---------------------------------------------------------------------------- concurrency


@pytest.fixture(scope="module")
def local_site(tmp_path_factory):
    """The app without login (a name is typed), as run on one machine."""
    s = launch(tmp_path_factory.mktemp("local"), login=False)
    yield s
    s.demo.close()


def test_fifty_raters_vote_at_once(local_site):
    admin = client(local_site)
    test_id = create_and_open(local_site, admin, "Crowd")
    n_raters, per_rater = 52, 3
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_raters)

    def run(i: int) -> None:
        try:
            r = Rater(local_site, None, name=f"rater{i:02d}", record=False)
            r.start(test_id)
            barrier.wait(timeout=120)
            for _ in range(per_rater):
                r.listen()
                r.vote(("A", "B", "none")[i % 3], comment=f'r{i} ,"quoted"\nline')
        except BaseException as e:  # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_raters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]
    raw = local_site.ctx.votes_path.read_bytes()
    assert raw.count(b"\r\n") == n_raters * per_rater + 1  # header + one line end per row
    df = read_votes(local_site.ctx.votes_path)
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == n_raters * per_rater and df["vote_id"].is_unique
    assert Counter(df["rater"]) == {f"rater{i:02d}": per_rater for i in range(n_raters)}
    assert not df.duplicated(["rater", "test_id", "trial_id"]).any()
    assert set(df["comment"]) == {f'r{i} ,"quoted"\nline' for i in range(n_raters)}


def test_votes_do_not_wait_for_a_render(local_site, monkeypatch):
    """Opening a test renders in the single render slot; votes go through meanwhile."""
    from workbench.ui.common import get_renderer

    admin = client(local_site)
    test_id = create_and_open(local_site, admin, "Busy day", references=["surya_1"])
    renderer = get_renderer(local_site.ctx)
    real = renderer.render_many
    render_running = threading.Event()

    def slow_render_many(reqs, progress=None):
        render_running.set()
        time.sleep(4)  # stands in for a long XTTS + enhancer batch
        return real(reqs, progress=progress)

    r = Rater(local_site, None, name="patient")  # a rater in the middle of a test
    r.start(test_id)
    monkeypatch.setattr(renderer, "render_many", slow_render_many)
    admin.page_load()
    admin.trigger("wb-admin-create")  # the form still holds the last test's fields
    finished = {}

    def open_again(key):
        c = client(local_site)
        c.page_load()
        c.set("wb-admin-test", c.values[c.find("wb-admin-test")])
        c.trigger("wb-admin-open")
        finished[key] = time.monotonic()

    openers = [threading.Thread(target=open_again, args=(k,)) for k in range(2)]
    for t in openers:
        t.start()
    assert render_running.wait(30)
    r.listen()
    r.vote("A")
    voted = time.monotonic()
    assert r.value("wb-status").startswith("✓ Saved")
    for t in openers:
        t.join(timeout=60)
    assert len(finished) == 2 and voted < min(finished.values())


# ---------------------------------------------------------------------------- in a browser


@pytest.mark.e2e
def test_rater_flow_in_a_browser_with_keyboard_shortcuts(site, browser):
    """Log in, start, play with A/B keys, vote with 1 and 0, finish; screenshots in test-artifacts/."""
    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Browser round", references=["surya_1"], sentences=["names"])
    shots = ROOT / "test-artifacts" / "blind"
    shots.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.on("response", lambda r: files.append(r.url) if r.status == 200 and "/wb/clip/" in r.url else None)
        page.goto(site.url)
        page.locator("input").nth(0).fill("dan")
        page.locator("input[type=password]").fill(PASSWORDS["dan"])
        page.keyboard.press("Enter")
        page.wait_for_selector("#wb-start")
        page.screenshot(path=str(shots / "1-landing.png"), full_page=True)
        assert not page.get_by_role("tab", name="Results").is_visible()
        page.click("#wb-test input")
        page.get_by_role("option", name=re.compile("Browser round")).click()
        page.click("#wb-start")
        page.wait_for_selector("#wb-instructions", state="visible")
        page.click("#wb-begin")
        page.wait_for_selector("#wb-trial", state="visible")
        page.screenshot(path=str(shots / "2-trial-locked.png"), full_page=True)
        assert page.is_disabled("#wb-vote-a")
        for n in range(3):
            page.keyboard.press("a")
            page.wait_for_function("() => window.__wbPlayer.state().position > 0.7")
            page.keyboard.press("b")  # switches to B at the same position
            page.wait_for_function("!document.querySelector('#wb-vote-a').disabled", timeout=10_000)
            if n == 0:
                page.screenshot(path=str(shots / "3-trial-unlocked.png"), full_page=True)
            page.keyboard.press("1" if n == 0 else "0")
            page.wait_for_function(
                f"document.querySelector('#wb-status').innerText.includes('trial {n + 1}')", timeout=10_000
            )
            if n < 2:
                page.wait_for_function(
                    f"document.querySelector('#wb-progress').innerText.includes('Trial {n + 2}')", timeout=10_000
                )
        page.wait_for_selector("#wb-done", state="visible")
        page.screenshot(path=str(shots / "4-done.png"), full_page=True)
        assert "Thank you" in page.inner_text("#wb-done")
    finally:
        context.close()
    df = read_votes(site.ctx.votes_path)
    mine = df[(df["rater"] == "dan") & (df["test_id"] == test_id)]
    assert list(mine["choice"]) == ["A", "none", "none"]
    assert (mine["played_a_s"] > 0.2).all() and (mine["played_b_s"] >= 0).all()
    assert len(files) == 6 and all(re.search(r"/wb/clip/[0-9a-f]{32}\.wav$", u) for u in files)
    for name in CHECKPOINTS:
        assert not any(name in u for u in files)
