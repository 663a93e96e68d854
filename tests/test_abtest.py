"""Blind test plans, per-rater schedules, anonymous served audio and rater sessions."""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from workbench import audio
from workbench.abtest import (
    PlanSpec,
    PlanStore,
    RaterSession,
    ServedFiles,
    check_renderable,
    draw_schedule,
    make_plan,
    parse_plan_yaml,
    plan_requests,
    rater_seed,
    serve_clip,
    sweep_served,
)
from workbench.errors import CatalogError
from workbench.render import Renderer, RenderRequest
from workbench.votes import BadVote, VoteStore, effective_votes, read_votes

EXTRA_PRESETS = """
  quiet:
    target_lufs: -30
  raw:
    target_lufs: null
"""


@pytest.fixture
def catalog(demo_catalog_path):
    """The demo catalog plus two presets that need no enhancer (to compare presets)."""
    from workbench.catalog import load_catalog

    text = demo_catalog_path.read_text()
    demo_catalog_path.write_text(text.replace("enhancements:\n", "enhancements:" + EXTRA_PRESETS, 1))
    return load_catalog(demo_catalog_path)


@pytest.fixture
def renderer(catalog, tmp_path):
    return Renderer(catalog, cache_dir=tmp_path / "cache")


def spec(**kw) -> PlanSpec:
    base = dict(
        title="Round one",
        checkpoints=["feb1", "apr24", "apr27"],
        references=["surya_1", "paul_1"],
        sentences=["pangram", "names"],
        seed=7,
    )
    base.update(kw)
    return PlanSpec(**base)


# ---------------------------------------------------------------------------- plans


def test_balanced_design_every_pair_on_every_reference_and_sentence(catalog):
    plan = make_plan(catalog, spec())
    assert len(plan.trials) == 12 and plan.per_rater == 12
    assert len({t.trial_id for t in plan.trials}) == 12
    cells = Counter((t.reference, t.sentence, t.checkpoint_a, t.checkpoint_b) for t in plan.trials)
    pairs = {("feb1", "apr24"), ("feb1", "apr27"), ("apr24", "apr27")}
    for ref in ("surya_1", "paul_1"):
        for sent in ("pangram", "names"):
            assert {(a, b) for (r, s, a, b) in cells if (r, s) == (ref, sent)} == pairs
    assert all(n == 1 for n in cells.values())
    assert all(t.preset_a == t.preset_b == "none" for t in plan.trials)
    assert "12 trials = 3 pair(s) x 2 reference(s) x 2 sentence(s)" in plan.describe()


def test_preset_comparison_plan(catalog):
    plan = make_plan(catalog, spec(checkpoints=["apr27"], presets=["none", "quiet", "raw"], title="Loudness"))
    assert plan.compares_presets and len(plan.trials) == 3 * 4
    assert all(t.checkpoint_a == t.checkpoint_b == "apr27" for t in plan.trials)
    assert {(t.preset_a, t.preset_b) for t in plan.trials} == {("none", "quiet"), ("none", "raw"), ("quiet", "raw")}


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"checkpoints": ["feb1", "nope"]}, r"checkpoints.1: 'nope' not found; available: feb1, apr24, apr27"),
        ({"checkpoints": ["feb1"]}, r"pick at least two checkpoints"),
        ({"checkpoints": ["feb1", "feb1"]}, r"'feb1' listed twice"),
        ({"presets": ["none", "quiet"]}, r"comparing presets needs exactly one checkpoint"),
        ({"references": ["zed"]}, r"references.0: 'zed' not found"),
        ({"question": "Is apr24 duller?"}, r"question: .* names 'apr24'"),
        ({"trials_per_rater": 7}, r"7 does not divide evenly over the 3 pairs; pick 6 or 9"),
        ({"raters": 3, "trials_per_rater": 6}, r"give either raters .* or trials_per_rater"),
        ({"title": "feb1 against the rest"}, r"title: .* names 'feb1'; raters see the title"),
        ({"title": "APR27 check"}, r"names 'apr27'"),
        ({"repeats": 13}, r"repeats: 13 is more than the 12 trials"),
        ({"trials_per_rater": 20}, r"trials_per_rater: 20 is more than the 12 trials"),
    ],
)
def test_bad_plans_are_refused_with_the_field(catalog, kw, message):
    with pytest.raises(CatalogError, match=message):
        make_plan(catalog, spec(**kw))


def test_title_may_use_words_that_contain_a_name(catalog):
    assert make_plan(catalog, spec(title="February vs. spring fine-tunes")).title == "February vs. spring fine-tunes"


def test_plan_yaml(tmp_path, catalog):
    good = parse_plan_yaml(
        "title: Accent check\ncheckpoints: [feb1, apr27]\nreferences: surya_1\nsentences: [pangram, names]\n"
        "preset: none\nrepeats: 1\nrequire_play: false\n"
    )
    plan = make_plan(catalog, good)
    assert plan.presets == ("none",) and plan.references == ("surya_1",) and not plan.require_play
    with pytest.raises(CatalogError, match=r"plan.yaml:3: repeat is not a known field"):
        parse_plan_yaml("title: x\ncheckpoints: [feb1, apr27]\nrepeat: 2\nreferences: [a]\nsentences: [b]\n")
    with pytest.raises(CatalogError, match=r"plan.yaml:1: title is required"):
        parse_plan_yaml("checkpoints: [feb1, apr27]\nreferences: [a]\nsentences: [b]\n")
    with pytest.raises(CatalogError, match=r"not valid YAML"):
        parse_plan_yaml("title: [unclosed\n")


# ---------------------------------------------------------------------------- schedules


def test_schedule_is_per_rater_reproducible_and_counterbalanced(catalog):
    plan = make_plan(catalog, spec())
    ann, ann2, bob = draw_schedule(plan, "ann"), draw_schedule(plan, "ann"), draw_schedule(plan, "bob")
    assert ann == ann2 and ann.seed == rater_seed(plan.seed, "ann")
    order = [s.trial.trial_id for s in ann.trials]
    assert sorted(order) == sorted(t.trial_id for t in plan.trials)
    assert order != [s.trial.trial_id for s in bob.trials]
    for sched in (ann, bob):
        sides = defaultdict(Counter)
        for s in sched.trials:
            sides[s.trial.pair][s.a_side] += 1
        for counts in sides.values():  # 4 trials per pair: exactly 2 with checkpoint_a on each side
            assert counts["A"] == counts["B"] == 2


def test_sides_are_balanced_over_many_raters(catalog):
    plan = make_plan(catalog, spec(sentences=["pangram"], references=["surya_1"]))  # 3 trials: odd per pair
    total = Counter(s.a_side for r in range(200) for s in draw_schedule(plan, f"r{r}", slot=r).trials)
    assert total["A"] == total["B"] == 300  # the odd trial of each pair goes to A and B in turn


def test_repeats_come_later_some_on_the_same_side(catalog):
    plan = make_plan(catalog, spec(repeats=3))
    assert plan.per_rater == 15
    same = swapped = 0
    for slot, rater in enumerate(("ann", "bob", "cy")):
        sched = draw_schedule(plan, rater, slot=slot)
        pos = {s.trial.trial_id: s for s in sched.trials}
        reps = [s for s in sched.trials if s.trial.repeat_of]
        assert len(sched.trials) == 15 and len(reps) == 3
        assert len({r.trial.pair for r in reps}) == 3  # one per pair: spread evenly
        for r in reps:
            orig = pos[r.trial.repeat_of]
            assert r.trial.trial_id == orig.trial.trial_id + "r" and r.trial.kind == "repeat"
            assert r.trial.pair == orig.trial.pair
            assert r.position > orig.position
            same += r.a_side == orig.a_side
            swapped += r.a_side != orig.a_side
    assert same == 3 and swapped == 6  # a third keep their sides


def test_trials_per_rater_stays_balanced_over_pairs(catalog):
    plan = make_plan(catalog, spec(sentences=["pangram", "names", "question"], trials_per_rater=6))
    assert len(plan.trials) == 18 and plan.per_rater == 6 and plan.raters == 6  # 2 raters per trial need 6
    coverage = Counter()
    for r in range(6):
        sched = draw_schedule(plan, f"r{r}", slot=r)
        per_pair = Counter(s.trial.pair for s in sched.trials)
        assert len(sched.trials) == 6 and set(per_pair.values()) == {2}
        coverage.update(s.trial.trial_id for s in sched.trials)
    assert len(coverage) == 18 and set(coverage.values()) == {2}  # 6 raters x 6 = 2 x 18
    plan = make_plan(catalog, spec(sentences=["pangram", "names", "question"], raters=4, raters_per_trial=2))
    assert plan.per_pair == 3 and plan.raters == 4
    cover = Counter(s.trial.trial_id for r in range(4) for s in draw_schedule(plan, f"r{r}", slot=r).trials)
    assert len(cover) == 18 and set(cover.values()) == {2}


def test_plan_store_and_recorded_schedules(tmp_path, catalog):
    store = PlanStore(tmp_path / "tests")
    plan = store.save(make_plan(catalog, spec()))
    assert store.get(plan.test_id) == plan
    assert [p.test_id for p in store.list(status="draft")] == [plan.test_id]
    assert store.set_status(plan.test_id, "open").status == "open"
    assert store.list(status="draft") == [] and store.get(plan.test_id).status == "open"
    sched = store.schedule(store.get(plan.test_id), "ann")
    line = (tmp_path / "tests" / f"{plan.test_id}.schedules.jsonl").read_text()
    assert f'"seed": {sched.seed}' in line and '"rater": "ann"' in line
    again = PlanStore(tmp_path / "tests").schedule(store.get(plan.test_id), "ann")  # restart / other device
    assert again.trials == sched.trials
    with pytest.raises(BadVote, match="unknown test"):
        store.get("ab-00000000")
    with pytest.raises(BadVote, match="unknown test"):
        store.get("../../etc/passwd")


# ---------------------------------------------------------------------------- served audio


def test_served_copies_are_anonymous_unique_and_loudness_matched(tmp_path, renderer):
    clip = renderer.render(RenderRequest("apr24", "surya_1", "pangram"))
    served = tmp_path / "served"
    a, b = serve_clip(clip.path, served, target_lufs=-23), serve_clip(clip.path, served, target_lufs=-23)
    assert a.name != b.name and len(a.stem) == 32 and a.suffix == ".wav"
    for name in ("apr24", "surya_1", "pangram", clip.key[:8]):
        assert name not in a.name
    da, db = a.read_bytes(), b.read_bytes()
    assert hashlib.sha256(da).digest() != hashlib.sha256(db).digest()
    info = sf.info(str(a))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (24000, 1, "PCM_16", "WAV")
    ya, sr = audio.load(a)
    yb, _ = audio.load(b)
    assert audio.loudness(ya, sr) == pytest.approx(-23, abs=0.2)
    assert np.max(np.abs(ya - yb)) <= 3 / 32768  # only the dither differs
    quiet = renderer.render(RenderRequest("feb1", "paul_1", "names", enhancement="quiet"))
    yq, _ = audio.load(serve_clip(quiet.path, served, target_lufs=-23))
    assert audio.loudness(yq, sr) == pytest.approx(-23, abs=0.2)  # whatever the preset's own level


def test_sweep_removes_only_old_copies(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    old, new = folder / "old.wav", folder / "new.wav"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert sweep_served(folder, max_age_s=3600) == 1
    assert not old.exists() and new.exists()


# ---------------------------------------------------------------------------- rater sessions


def identify(served: Path, candidates: dict[str, Path], target_lufs: float = -23.0) -> str:
    """Which candidate clip a served copy was made from (by its samples)."""
    y, sr = audio.load(served)
    best, best_err = None, np.inf
    for name, path in candidates.items():
        ref, rsr = audio.load(path)
        ref = audio.normalize_loudness(ref, rsr, target_lufs=target_lufs)
        if len(ref) != len(y):
            continue
        err = float(np.max(np.abs(ref - y)))
        if err < best_err:
            best, best_err = name, err
    assert best is not None and best_err < 1e-3, (served, best_err)
    return best


@pytest.fixture
def setup(tmp_path, catalog, renderer):
    plans = PlanStore(tmp_path / "tests")
    votes = VoteStore(tmp_path / "votes.csv")
    plan = plans.save(make_plan(catalog, spec(status="open", repeats=1)))
    served = ServedFiles(tmp_path / "served")

    def clip_path(ck, ref, sent, preset, take=1):
        return renderer.render(RenderRequest(ck, ref, sent, enhancement=preset, take=take)).path

    def session(rater):
        return RaterSession(
            plan=plans.get(plan.test_id),
            rater=rater,
            votes=votes,
            plans=plans,
            clip_path=clip_path,
            served=served,
        )

    return plan, plans, votes, session, clip_path


def listen(s: RaterSession) -> None:
    """What a page does: fetch both copies from the server, then report playing them."""
    for which in ("A", "B"):
        assert s.served.deliver(s.names[which], s.rater) is not None
    s.played("A", "play")
    s.played("A", "pause")
    s.played("B", "play")


def test_session_flow_votes_map_slots_to_checkpoints(setup):
    plan, plans, votes, session, clip_path = setup
    s = session("ann")
    prefer = "apr27"
    for i in range(plan.per_rater):
        shown = s.show_next()
        assert shown.number == i + 1 and shown.done == i and shown.total == 13
        t = s.current.trial
        cands = {ck: clip_path(ck, t.reference, t.sentence, "none") for ck in (t.checkpoint_a, t.checkpoint_b)}
        heard = {"A": identify(shown.audio_a, cands), "B": identify(shown.audio_b, cands)}
        assert heard["A"] != heard["B"]
        assert heard[s.current.a_side] == t.checkpoint_a  # a_side is where checkpoint_a played
        with pytest.raises(BadVote, match="A and B never reached your device"):
            s.vote(shown.token, "A")
        s.played("A", "play")
        s.played("B", "play")
        assert not s.can_vote()  # played, says the page, but the server never sent the audio
        for which in ("A", "B"):
            s.served.deliver(s.names[which], s.rater)
        assert s.played("B", "pause") is True
        choice = next((slot for slot, ck in heard.items() if ck == prefer), "none")
        v = s.vote(shown.token, choice, ["accent"], "ok")
        assert v.winner == (prefer if choice != "none" else "tie")
        assert not shown.audio_a.exists()  # served copies are dropped once answered
        with pytest.raises(BadVote, match="no longer waiting"):
            s.vote(shown.token, choice)  # replay
    assert s.show_next() is None
    df = read_votes(votes.path)
    assert len(df) == 13 and set(df["rater"]) == {"ann"}
    assert (df["repeat_of"] != "").sum() == 1
    assert (df["played_a_s"] >= 0).all() and (df["decision_s"] > 0).all()
    assert set(df["fetched_a"]) == set(df["fetched_b"]) == {"1"} and set(df["rater_role"]) == {"rater"}
    assert Counter(df["trial_kind"]) == {"test": 12, "repeat": 1} and set(df["take_a"]) == {"1"}
    with_apr27 = sum(1 for st in s.schedule.trials if prefer in (st.trial.checkpoint_a, st.trial.checkpoint_b))
    assert with_apr27 in (8, 9)  # 2 of 3 pairs, plus the repeat when it repeats one of them
    assert Counter(df["winner"]) == {"apr27": with_apr27, "tie": 13 - with_apr27}


def test_unknown_token_and_unplayed_votes_are_refused(setup):
    plan, plans, votes, session, _ = setup
    s = session("bob")
    with pytest.raises(BadVote, match="no longer waiting"):
        s.vote("whatever", "A")
    shown = s.show_next()
    with pytest.raises(BadVote, match="no longer waiting"):
        s.vote("forged-token", "A")
    with pytest.raises(BadVote, match="choice must be"):
        s.vote(shown.token, "C")
    listen(s)
    with pytest.raises(BadVote, match="100000 characters; the limit is 2000"):
        s.vote(shown.token, "A", [], "x" * 100_000)
    s.vote(shown.token, "A", [], "")  # after a refused comment the trial is still open
    assert votes.count() == 1


def test_resume_from_another_session_and_change_a_vote(setup):
    plan, plans, votes, session, _ = setup
    first = session("cy")
    for _ in range(3):
        shown = first.show_next()
        listen(first)
        first.vote(shown.token, "A")
    order = [st.trial.trial_id for st in first.schedule.trials]
    second = session("cy")  # reload, or another device
    shown = second.show_next()
    assert shown.number == 4 and shown.done == 3 and second.current.trial.trial_id == order[3]
    back = second.show_previous()
    assert back.changing and back.previous_choice == "A" and second.current.trial.trial_id == order[2]
    listen(second)
    second.vote(back.token, "B")
    assert second.show_next().number == 4
    df = read_votes(votes.path)
    assert len(df) == 4 and df.iloc[3]["supersedes"] == df.iloc[2]["vote_id"]
    eff = effective_votes(df)
    assert len(eff) == 3 and eff.set_index("trial_id").loc[order[2], "choice"] == "B"
    with pytest.raises(BadVote, match="no longer waiting"):
        first.vote(first.token or "stale", "A")


def test_closed_test_refuses_votes(setup):
    plan, plans, votes, session, _ = setup
    s = session("dee")
    shown = s.show_next()
    listen(s)
    plans.set_status(plan.test_id, "closed")
    with pytest.raises(BadVote, match="is closed"):
        s.vote(shown.token, "A")
    with pytest.raises(BadVote, match="not open for voting"):
        session("eve")
    assert votes.count() == 0


def test_require_play_can_be_turned_off(tmp_path, catalog, renderer):
    plans = PlanStore(tmp_path / "tests")
    plan = plans.save(make_plan(catalog, spec(status="open", require_play=False)))
    s = RaterSession(
        plan=plan,
        rater="fay",
        votes=VoteStore(tmp_path / "v.csv"),
        plans=plans,
        clip_path=lambda c, r, s, p, k: renderer.render(RenderRequest(c, r, s, enhancement=p, take=k)).path,
        served=ServedFiles(tmp_path / "served"),
    )
    shown = s.show_next()
    assert s.can_vote()
    assert s.vote(shown.token, "none").winner == "tie"


def test_check_renderable_names_missing_clips(catalog, renderer, tmp_path):
    plan = make_plan(catalog, spec(checkpoints=["feb1"], presets=["none", "denoise"], title="Denoiser check"))
    assert len(plan_requests(plan)) == 8
    assert check_renderable(plan, renderer) == []  # demo checkpoints run the labelled demo stand-in
    assert check_renderable(make_plan(catalog, spec()), renderer) == []
    (catalog.checkpoints["apr24"].demo_dir / "paul_1" / "names.flac").unlink()
    broken = make_plan(catalog, spec())
    problems = check_renderable(broken, renderer)
    assert len(problems) == 1 and "apr24" in problems[0] and "names" in problems[0]


def test_one_lock_for_plans_and_schedules(tmp_path, catalog):
    """Two stores on one folder (the Blind A/B and Results tabs) share one lock: raters get distinct slots."""
    from concurrent.futures import ThreadPoolExecutor

    a, b = PlanStore(tmp_path / "tests"), PlanStore(tmp_path / "tests")
    plan = a.save(make_plan(catalog, spec(status="open", raters=3)))
    with ThreadPoolExecutor(8) as ex:
        scheds = list(ex.map(lambda i: (a if i % 2 else b).schedule(plan, f"r{i}"), range(12)))
    assert sorted(s.slot for s in scheds) == list(range(12))
    assert sorted(a.raters(plan.test_id)) == sorted(f"r{i}" for i in range(12))
    assert PlanStore(tmp_path / "tests").schedule(plan, "r5") == scheds[5]  # recorded, not drawn again
    b.delete(plan.test_id)
    assert a.list() == [] and len(list((tmp_path / "tests" / "deleted").iterdir())) == 2


def test_served_copies_go_only_to_their_rater_while_on_screen(tmp_path, renderer):
    clip = renderer.render(RenderRequest("apr24", "surya_1", "pangram")).path
    served = ServedFiles(tmp_path / "served")
    name = served.add(clip, "ann", target_lufs=-23)
    assert served.deliver(name, "bob") is None and served.deliver("../../etc/passwd", None) is None
    assert served.fetches(name) == 0
    assert served.deliver(name, "ann").exists() and served.deliver(name, None) is not None
    assert served.fetches(name) == 2
    served.drop([name])
    assert served.deliver(name, "ann") is None and not (tmp_path / "served" / name).exists()
