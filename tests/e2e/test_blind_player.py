"""The rater page in Chromium: one transport for A, B and the reference, keys, phone layout.

- At 1440x900: an invite link opens the page with its test picked; instructions come
  before trial 1; the question, sentence text and a Reference button are shown when the
  plan allows them; the whole trial (question to vote buttons) is on screen without
  scrolling, before and after a vote; a mouse click on A then the B key switches sources at the same
  position in the clip (within 50 ms); keys vote after mouse clicks.
- At 390x844 (a phone): no key hints, the Reference button is absent when the plan does
  not allow it, reason tags sit above the vote buttons, nothing is wider than the screen,
  each button's label is drawn in one typeface,
  and "Saved", the transport and the vote buttons are on screen after tapping a vote.

Screenshots go to ``test-artifacts/blind/`` (looked at when the page changes).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT
from tests.e2e.conftest import choose_many, fonts_drawing, login

pytestmark = pytest.mark.e2e

SHOTS = ROOT / "test-artifacts" / "blind"
QUESTION = "Which accent is closer to the reference?"


def make_test(app, title: str, **options) -> str:
    """Store an open test straight into the app's plan folder (the app reads plans from disk)."""
    from workbench.abtest import PlanSpec, PlanStore, make_plan
    from workbench.catalog import load_catalog

    cat = load_catalog(app.root / "checkpoints.yaml")
    spec = PlanSpec(
        title=title,
        checkpoints=["feb1", "apr27"],
        references=["paul_1"],
        sentences=["names", "pangram"],
        status="open",
        seed=5,
        **options,
    )
    return PlanStore(app.root / "data" / "tests").save(make_plan(cat, spec)).test_id


def state(page) -> dict:
    return page.evaluate("() => window.__wbPlayer.state()")


def wait_playing(page, slot: str, after: float = 0.0) -> None:
    page.wait_for_function(
        "([s, t]) => { const p = window.__wbPlayer && window.__wbPlayer.state();"
        " return p && p.playing && p.active === s && p.position > t; }",
        arg=[slot, after],
        timeout=15_000,
    )


VOTES = ("#wb-vote-a", "#wb-vote-b", "#wb-vote-none")
#: what a rater needs to answer a trial, top to bottom
TRIAL_PARTS = ("#wb-question", "#wb-play-a", "#wb-play-b", "#wb-toggle", "#wb-reasons", "#wb-comment", *VOTES)


def assert_in_view(page, selectors, height: int) -> None:
    """Each element's box lies inside the viewport (``height`` px tall) as the page is scrolled now."""
    for sel in selectors:
        box = page.locator(sel).bounding_box()
        assert box is not None, f"{sel} is not shown"
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, f"{sel} is outside the screen: {box}"


def begin(page) -> None:
    page.locator("#wb-start").click()
    expect(page.locator("#wb-instructions")).to_be_visible(timeout=30_000)
    expect(page.locator("#wb-instructions")).to_contain_text(QUESTION)


def test_rater_page_on_a_desktop(page, auth_app):
    SHOTS.mkdir(parents=True, exist_ok=True)
    test_id = make_test(
        auth_app, "Accent round", question=QUESTION, play_reference=True, show_text=True, takes=2, controls=1
    )
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, auth_app, "rater", path=f"/?tab=blind&test={test_id}")
    expect(page.locator("#wb-test input")).to_have_value(re.compile("Accent round"), timeout=30_000)  # the invite
    begin(page)
    page.screenshot(path=str(SHOTS / "desktop-1-instructions.png"))
    page.locator("#wb-begin").click()
    expect(page.locator("#wb-trial")).to_be_visible()
    expect(page.locator("#wb-question")).to_contain_text(QUESTION)
    expect(page.locator("#wb-text")).to_contain_text(re.compile("Surya and Paul|quick brown fox"))
    expect(page.locator("#wb-play-ref")).to_be_visible()
    assert page.locator("#wb-vote-a").is_disabled()
    # the whole trial fits the screen: a mouse user reaches the votes without scrolling
    assert page.evaluate("() => window.scrollY") == 0
    assert_in_view(page, (*TRIAL_PARTS, "#wb-text", "#wb-play-ref"), 900)

    # the reference plays on its own
    page.locator("#wb-play-ref").click()
    page.wait_for_function("() => window.__wbPlayer.state().reference", timeout=15_000)

    # mouse on A, then the B key: B starts where A was
    page.locator("#wb-play-a").click()
    wait_playing(page, "A", after=0.8)
    assert not state(page)["reference"]
    page.keyboard.press("b")  # focus is on the A button the mouse clicked: keys still work
    wait_playing(page, "B")
    starts = page.evaluate("() => window.__wbPlayer.starts")
    a = [s for s in starts if s["slot"] == "A"][-1]
    b = [s for s in starts if s["slot"] == "B"][-1]
    expected = a["offset"] + (b["at"] - a["at"])  # where A was in its clip when B started
    assert b["offset"] > 0.5 and abs(b["offset"] - expected) < 0.05, (a, b)
    expect(page.locator("#wb-vote-a")).to_be_enabled(timeout=15_000)
    page.screenshot(path=str(SHOTS / "desktop-2-trial.png"))

    # back to A: the same position again, then loop on and pause with the keys
    before = state(page)["position"]
    page.keyboard.press("a")
    wait_playing(page, "A")
    assert state(page)["position"] >= before
    page.keyboard.press("l")
    assert state(page)["loop"]
    page.keyboard.press(" ")
    page.wait_for_function("() => !window.__wbPlayer.state().playing")

    # a reason ticked with the mouse, then the vote with a key
    page.locator("#wb-reasons").get_by_label("accent", exact=True).check()
    page.keyboard.press("2")
    expect(page.locator("#wb-status")).to_contain_text("Saved: B is better on trial 1", timeout=15_000)
    expect(page.locator("#wb-progress")).to_contain_text("Trial 2 /", timeout=30_000)
    page.wait_for_function(  # a new trial starts from the top, nothing playing
        "() => { const s = window.__wbPlayer.state(); return s.position === 0 && !s.playing && !s.active; }"
    )
    assert page.evaluate("() => window.scrollY") == 0  # nothing moved: "Saved" and the next trial fit
    assert_in_view(page, ("#wb-status", "#wb-change", *TRIAL_PARTS), 900)
    page.screenshot(path=str(SHOTS / "desktop-3-saved.png"))


def test_rater_page_on_a_phone(page, auth_app):
    SHOTS.mkdir(parents=True, exist_ok=True)
    test_id = make_test(auth_app, "Phone round", question=QUESTION, play_reference=False)
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, auth_app, "rater2", path=f"/?tab=blind&test={test_id}")
    expect(page.locator("#wb-test input")).to_have_value(re.compile("Phone round"), timeout=30_000)
    begin(page)
    page.screenshot(path=str(SHOTS / "phone-1-instructions.png"))
    page.locator("#wb-begin").click()
    expect(page.locator("#wb-trial")).to_be_visible()
    assert not page.locator("#wb-play-ref").is_visible()  # the plan does not allow the reference
    assert not page.locator(".wb-keys").is_visible()  # no key hints on a phone
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    reasons, votes = page.locator("#wb-reasons").bounding_box(), page.locator("#wb-vote-a").bounding_box()
    assert reasons["y"] + reasons["height"] <= votes["y"]  # tick reasons first, then vote
    page.locator("#wb-play-a").click()
    wait_playing(page, "A", after=0.3)
    page.locator("#wb-play-b").click()
    wait_playing(page, "B")
    expect(page.locator("#wb-vote-b")).to_be_enabled(timeout=15_000)
    page.screenshot(path=str(SHOTS / "phone-2-trial.png"))
    a, b = page.locator("#wb-play-a").bounding_box(), page.locator("#wb-play-b").bounding_box()
    assert (a["y"], a["width"], a["height"]) == (b["y"], b["width"], b["height"]), (a, b)  # A and B alike
    for button in (*VOTES, "#wb-play-a"):  # one typeface per label: no letter drawn by a fallback font
        assert len(fonts_drawing(page, button)) == 1, (button, fonts_drawing(page, button))
    page.locator("#wb-vote-b").click()
    status = page.locator("#wb-status")
    expect(status).to_contain_text("Saved", timeout=15_000)
    expect(page.locator("#wb-progress")).to_contain_text("Trial 2 /", timeout=30_000)
    page.wait_for_timeout(300)
    # "Saved" in view with the next trial's transport and vote buttons
    assert_in_view(page, ("#wb-status", "#wb-play-a", "#wb-play-b", "#wb-toggle", *VOTES), 844)
    assert not page.locator("#wb-picker").is_visible()  # the test picker is out of the way while rating
    page.screenshot(path=str(SHOTS / "phone-3-saved.png"))


def test_an_admin_sets_up_the_accent_test_in_the_form(page, auth_app):
    """feb1 vs apr27 on paul_1 and paul_2, the accent question, reference playable, 2 takes, 4 controls,
    4 repeats, each trial rated by 2 of 3 raters: filled in the form, the design shown before creating it."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, auth_app, "admin")
    page.get_by_role("tab", name="Blind A/B").click()
    page.get_by_text("Admin: blind tests").click()
    summary = page.locator("#wb-admin-summary")
    expect(summary).to_contain_text("every rater rates every trial", timeout=30_000)  # the defaults
    page.locator("#wb-admin-title input").fill("Accent check")
    page.locator("#wb-admin-question input").fill(QUESTION)
    choose_many(page, "Checkpoints", ["feb1", "apr27"])
    choose_many(page, "References", ["paul_1", "paul_2"])
    for elem, value in (("takes", "2"), ("controls", "4"), ("repeats", "4"), ("raters", "3")):
        box = page.locator(f"#wb-admin-{elem} input")
        box.fill(value)
        box.press("Tab")
    expect(summary).to_contain_text("raters: 3 raters, each trial rated by 2-3", timeout=15_000)
    expect(summary).to_contain_text("x 2 takes")
    expect(summary).to_contain_text("30 trials = 22 test + 4 repeats + 4 identical-pair controls")
    expect(summary).to_contain_text("reference playable: yes")
    summary.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "admin-design.png"))
    page.locator("#wb-admin-create").click()
    msg = page.locator("#wb-admin-msg")
    expect(msg).to_contain_text("Created", timeout=30_000)
    test_id = re.search(r"ab-[0-9a-f]+", msg.inner_text()).group(0)
    invite = page.locator("#wb-admin-invite input, #wb-admin-invite textarea").first
    expect(invite).to_have_value(re.compile(rf"/\?tab=blind&test={test_id}$"))
    from workbench.abtest import PlanStore

    plan = PlanStore(auth_app.root / "data" / "tests").get(test_id)
    assert (plan.question, plan.takes, plan.controls, plan.repeats, plan.raters, plan.play_reference) == (
        QUESTION,
        2,
        4,
        4,
        3,
        True,
    )
