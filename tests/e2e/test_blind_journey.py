"""Journey: an admin sets up a blind A/B test; a rater completes it with mouse and keyboard.

The admin creates and opens a 6-trial test through the Admin panel. The rater reads the
instructions, plays the clips (mouse on the A / B buttons, or the A / B keys), votes
(mouse on the buttons, or the 1 / 2 / 0 keys, also right after a mouse click), ticks
reasons, types a comment, reloads the page halfway and resumes. Then:

- the vote CSV holds exactly one row per trial, and each row matches what was clicked,
  read through the key the server stored (the rater's recorded schedule: which
  checkpoint played in slot A);
- the audio each slot played is the cached render of the checkpoint the key names;
- nothing the rater's browser received (page DOM, every response body including the
  queue's server-sent events, every URL) names a checkpoint, a model path or a cache key.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect

from tests.conftest import mentions
from tests.e2e.conftest import NetworkLog, choose_many, login

pytestmark = pytest.mark.e2e

CHECKPOINTS = ["feb1", "apr24", "apr27"]
REFERENCES = ["surya_1"]
SENTENCES = ["pangram", "question"]
TITLE = "Spring listening"
RATER = "rita"
CHOICE_KEYS = {"A": "1", "B": "2", "none": "0"}
CHOICE_BUTTONS = {"A": "#wb-vote-a", "B": "#wb-vote-b", "none": "#wb-vote-none"}


@dataclass
class Step:
    """How the rater answers one trial, and what the page showed."""

    play: str  # "key" (A / B keys) or "mouse" (the A / B buttons)
    vote: str  # "key" (1 / 2 / 0) or "mouse" (the vote buttons)
    choice: str  # A | B | none
    reasons: tuple[str, ...] = ()
    comment: str = ""
    number: int = 0  # trial number the page showed
    audio: dict = field(default_factory=dict)  # slot -> served file URL


STEPS = [
    Step("key", "key", "A", reasons=("accent",)),
    Step("mouse", "mouse", "B"),
    Step("key", "key", "none", comment="Both fine; A a tad slow"),
    Step("mouse", "key", "B", reasons=("inflection", "naturalness")),  # the page is reloaded during this one
    Step("key", "mouse", "A"),
    Step("mouse", "key", "A", reasons=("dull/flat",)),
]


# ---------------------------------------------------------------------------- admin


def create_and_open_test(page, app) -> str:
    """As the admin, create the test in the Admin panel and open it; returns its id."""
    login(page, app, "admin")
    page.get_by_role("tab", name="Blind A/B").click()
    page.get_by_text("Admin: blind tests").click()
    page.locator("#wb-admin-title input").fill(TITLE)
    choose_many(page, "Checkpoints", CHECKPOINTS)
    choose_many(page, "References", REFERENCES)
    choose_many(page, "Sentences", SENTENCES)
    page.locator("#wb-admin-create").click()
    expect(page.locator("#wb-admin-msg")).to_contain_text("Created", timeout=30_000)
    expect(page.locator("#wb-admin-msg")).to_contain_text("6 trials")
    test_id = re.search(r"ab-[0-9a-f]+", page.locator("#wb-admin-msg").inner_text()).group(0)
    expect(page.locator("#wb-admin-test input")).to_have_value(re.compile(re.escape(test_id)))
    page.locator("#wb-admin-open").click()
    expect(page.locator("#wb-admin-msg")).to_contain_text("is open", timeout=60_000)
    return test_id


# ---------------------------------------------------------------------------- rater


def trial_number(page) -> int:
    m = re.search(r"Trial (\d+) / (\d+)", page.locator("#wb-progress").inner_text())
    assert m and m.group(2) == "6", page.locator("#wb-progress").inner_text()
    return int(m.group(1))


def start_test(page, done: int) -> None:
    """Pick the test (its label shows the rater's progress) and press Start (then Begin, the first time)."""
    page.locator("#wb-test input").click()
    page.get_by_role("option", name=f"{TITLE}  ({done} / 6 done)", exact=True).click()
    page.locator("#wb-start").click()
    if done == 0:
        expect(page.locator("#wb-instructions")).to_contain_text("Before you start", timeout=30_000)
        page.locator("#wb-begin").click()
    expect(page.locator("#wb-progress")).to_contain_text(f"Trial {done + 1} / 6", timeout=30_000)


def clip_url(page, slot: str) -> str:
    """The URL (relative to the app) of the clip the page plays for ``slot``."""
    return page.locator(f"#wb-audio-{slot.lower()} [data-url]").get_attribute("data-url")


def play(page, slot: str, how: str) -> None:
    """Start slot A or B with a key or its button; wait until it really plays (switching from the other)."""
    assert re.fullmatch(r"wb/clip/[0-9a-f]{32}\.wav", clip_url(page, slot))
    if how == "key":
        page.keyboard.press(slot.lower())
    else:
        page.locator(f"#wb-play-{slot.lower()}").click()
    page.wait_for_function(
        "s => { const p = window.__wbPlayer.state(); return p.playing && p.active === s && p.position > 0.4; }",
        arg=slot,
        timeout=15_000,
    )


def vote_buttons_locked(page) -> bool:
    return all(page.locator(sel).is_disabled() for sel in CHOICE_BUTTONS.values())


def answer(page, step: Step, net: NetworkLog, snapshots: list[str]) -> None:
    """Listen to both clips and vote as ``step`` says; returns once the next trial (or the end) shows."""
    step.number = trial_number(page)
    step.audio = {s: clip_url(page, s) for s in "AB"}
    snapshots.append(page.content())
    play(page, "A", step.play)
    assert vote_buttons_locked(page), "voting unlocked before B was played"
    play(page, "B", step.play)
    page.wait_for_timeout(300)
    for sel in CHOICE_BUTTONS.values():
        expect(page.locator(sel)).to_be_enabled()
    for reason in step.reasons:
        page.locator("#wb-reasons").get_by_label(reason, exact=True).check()
    if step.comment:
        box = page.locator("#wb-comment textarea")
        box.fill(step.comment)
        box.press("Escape")  # leave the box so the keys vote again
    if step.vote == "key":
        page.keyboard.press(CHOICE_KEYS[step.choice])
    else:
        page.locator(CHOICE_BUTTONS[step.choice]).click()
    if step.number < 6:
        expect(page.locator("#wb-progress")).to_contain_text(f"Trial {step.number + 1} / 6", timeout=30_000)
    else:
        expect(page.locator("#wb-done-text")).to_contain_text("You answered all 6 trials", timeout=30_000)
    net.collect()


# ---------------------------------------------------------------------------- checks


def served_matches(served: bytes, cached: Path) -> float:
    """Correlation of a served copy with a cached clip (0 when their lengths differ)."""
    y, sr = sf.read(io.BytesIO(served))
    ref, sr_ref = sf.read(cached)
    assert sr == sr_ref == 24000
    if len(y) != len(ref):
        return 0.0
    return float(np.corrcoef(y, ref)[0, 1])


def cached_clips(root: Path) -> dict[tuple[str, str, str, str], Path]:
    """The render cache: (checkpoint, reference, sentence, preset) -> FLAC."""
    out = {}
    for side in (root / "cache" / "clips").rglob("*.json"):
        r = json.loads(side.read_text())["request"]
        out[(r["checkpoint"], r["reference"], r["sentence"], r["enhancement"])] = side.with_suffix(".flac")
    return out


def secrets_of(app) -> list[str]:
    """Strings that would unblind the test: checkpoint names, model paths, cache keys and hashes."""
    out = list(CHECKPOINTS)
    out += [f"models/{c}" for c in CHECKPOINTS] + ["demo/clips", str(app.root / "cache"), str(app.root / "models")]
    for side in (app.root / "cache").rglob("*.json"):
        meta = json.loads(side.read_text())
        out.append(side.stem)
        out += [str(meta[k]) for k in ("key", "source_hash", "audio_sha256", "model_hash") if meta.get(k)]
    return sorted(set(out))


def wav_chunks(body: bytes) -> tuple[list[bytes], bytes]:
    """Chunk ids of a RIFF/WAVE file and every byte of it except the samples."""
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE", body[:16]
    ids, header, pos = [], bytearray(body[:12]), 12
    while pos + 8 <= len(body):
        cid, size = body[pos : pos + 4], int.from_bytes(body[pos + 4 : pos + 8], "little")
        ids.append(cid)
        header += body[pos : pos + 8] if cid == b"data" else body[pos : pos + 8 + size]
        pos += 8 + size + (size & 1)
    return ids, bytes(header)


def find_leaks(texts: list[tuple[str, bytes]], secrets: list[str]) -> list[str]:
    found = []
    for where, data in texts:
        for s in secrets:
            if mentions(data, s):
                i = data.index(s.encode())
                found.append(f"{s!r} in {where}: ...{data[max(0, i - 80) : i + 80]!r}...")
    return found


# ---------------------------------------------------------------------------- the journey


def test_a_rater_completes_a_blind_test_with_mouse_and_keys(page, new_page, auth_app):
    from workbench.abtest import PlanStore
    from workbench.votes import effective_votes, read_votes

    test_id = create_and_open_test(new_page(), auth_app)

    net = NetworkLog(page)
    snapshots: list[str] = []
    login(page, auth_app, "rater")
    expect(page.get_by_text(f"Rating as {RATER}")).to_be_visible()
    start_test(page, done=0)

    # voting stays locked until both clips were played: a key does nothing yet
    assert vote_buttons_locked(page)
    page.keyboard.press("1")
    page.wait_for_timeout(500)
    assert trial_number(page) == 1 and vote_buttons_locked(page)
    assert not auth_app.votes.exists() or read_votes(auth_app.votes).empty

    for step in STEPS[:3]:
        answer(page, step, net, snapshots)
    assert [s.number for s in STEPS[:3]] == [1, 2, 3]

    # trial 4: listen to A, then reload the page in the middle of the trial
    play(page, "A", "mouse")
    snapshots.append(page.content())
    net.collect()
    page.reload()
    page.get_by_role("tab", name="Blind A/B").wait_for()
    start_test(page, done=3)
    expect(page.locator("#wb-status")).to_contain_text("continuing where you left off")
    assert vote_buttons_locked(page), "after the reload the trial must be heard again"
    for step in STEPS[3:]:
        answer(page, step, net, snapshots)
    assert [s.number for s in STEPS] == [1, 2, 3, 4, 5, 6]
    snapshots.append(page.content())
    net.collect()

    # ---- the CSV rows match what was clicked, read through the stored key
    plan = PlanStore(auth_app.root / "data" / "tests").get(test_id)
    schedule = PlanStore(auth_app.root / "data" / "tests").schedule(plan, RATER)
    votes = read_votes(auth_app.votes)
    mine = votes[(votes["rater"] == RATER) & (votes["test_id"] == test_id)]
    assert len(mine) == 6 and len(effective_votes(mine)) == 6 and (mine["supersedes"] == "").all()
    clips = cached_clips(auth_app.root)
    for step in STEPS:
        st = schedule.trials[step.number - 1]
        rows = mine[mine["trial_id"] == st.trial.trial_id]
        assert len(rows) == 1, f"trial {step.number}: {len(rows)} rows"
        row = rows.iloc[0]
        winner = "tie" if step.choice == "none" else st.slot(step.choice)[0]
        assert row["a_side"] == st.a_side, f"trial {step.number}: key says A-side {st.a_side}, CSV {row['a_side']}"
        assert (row["choice"], row["winner"]) == (step.choice, winner), (step, dict(row))
        assert (row["checkpoint_a"], row["checkpoint_b"]) == (st.trial.checkpoint_a, st.trial.checkpoint_b)
        assert (row["reference"], row["sentence_id"]) == (st.trial.reference, st.trial.sentence)
        assert row["reasons"] == ";".join(step.reasons) and row["comment"] == step.comment, dict(row)
        # both slots were heard (how long depends on how quickly the browser moved on)
        assert float(row["played_a_s"]) > 0 and float(row["played_b_s"]) > 0, dict(row)
        assert float(row["decision_s"]) > 0.5, dict(row)
        assert int(row["fetched_a"]) == int(row["fetched_b"]) == 1, dict(row)  # the server counted each fetch
        assert (row["trial_kind"], row["rater_role"]) == ("test", "rater")
        # what each slot played is the cached render of the checkpoint the key puts there
        for slot in "AB":
            ck, preset, _ = st.slot(slot)
            other_ck, other_preset, _ = st.slot("B" if slot == "A" else "A")
            served = net.body_of(f"{auth_app.url}/{step.audio[slot]}")  # what the page fetched (gone since)
            assert served is not None, f"trial {step.number}: the page never fetched slot {slot}"
            mine_r = served_matches(served, clips[(ck, st.trial.reference, st.trial.sentence, preset)])
            other_r = served_matches(served, clips[(other_ck, st.trial.reference, st.trial.sentence, other_preset)])
            assert mine_r > 0.999 and other_r < 0.9, f"trial {step.number} slot {slot}: {mine_r:.4f} / {other_r:.4f}"
            ids, header = wav_chunks(served)
            assert set(ids) <= {b"fmt ", b"data", b"fact"}, f"served WAV carries extra chunks {ids}"
            assert not find_leaks([(f"WAV header of {step.audio[slot]}", header)], secrets_of(auth_app))

    # ---- nothing the rater's browser received names a checkpoint, model path or cache key
    assert len(net.finished) > 50 and any("queue/data" in u for u, _ in net.streamed), "the network log is empty"
    secrets = secrets_of(auth_app)
    assert len(secrets) > 10
    seen: list[tuple[str, bytes]] = [(f"DOM snapshot {i}", s.encode()) for i, s in enumerate(snapshots)]
    for url, _status, body in net.finished:
        seen.append((f"URL {url}", url.encode()))
        if body[:4] == b"RIFF":
            seen.append((f"WAV header of {url}", wav_chunks(body)[1]))
        elif not re.search(r"\.(wav|flac)$", url.split("?")[0]):
            seen.append((f"body of {url}", body))
    seen += [(f"stream {url}", text.encode("utf-8")) for url, text in net.streamed]
    assert any(b"process_completed" in data for _, data in seen), "the queue's events were not captured"
    leaks = find_leaks(seen, secrets)
    assert not leaks, "\n".join(leaks[:10])
