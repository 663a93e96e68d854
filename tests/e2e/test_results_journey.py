"""Journey: an admin reads the results of a blind test; a rater cannot open them.

The test and its votes are written before the browser arrives, through the same APIs the
Blind A/B tab uses (:class:`~workbench.abtest.PlanStore`, :class:`~workbench.votes.VoteStore`),
with a known answer: every rater prefers apr27 to feb1 to apr24.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, mentions
from tests.e2e.conftest import audio_player, call_in_page, event_index, login

pytestmark = pytest.mark.e2e

ORDER = ("apr27", "feb1", "apr24")  # best first, for every rater
RATERS = ("rita", "ravi")
TITLE = "Spring listening test"
SHOTS = ROOT / "test-artifacts" / "e2e" / "screens"


@pytest.fixture(scope="module")
def seeded(auth_app):
    """A stored 6-trial test (3 pairs x 2 sentences) with one vote per trial from each rater."""
    from workbench.abtest import PlanSpec, PlanStore, make_plan
    from workbench.catalog import load_catalog
    from workbench.votes import Vote, VoteStore

    catalog = load_catalog(auth_app.root / "checkpoints.yaml")
    spec = PlanSpec(
        title=TITLE,
        checkpoints=["feb1", "apr24", "apr27"],
        references=["surya_1"],
        sentences=["pangram", "question"],
        seed=7,
        status="open",
    )
    plan = PlanStore(catalog.settings.data_dir / "tests").save(make_plan(catalog, spec, created_by="ada"))
    store = VoteStore(auth_app.votes)
    for rater in RATERS:
        for i, t in enumerate(plan.trials):
            a_side = "AB"[i % 2]
            b_side = "AB"[(i + 1) % 2]
            a_wins = ORDER.index(t.checkpoint_a) < ORDER.index(t.checkpoint_b)
            store.append(
                Vote.create(
                    rater=rater,
                    test_id=plan.test_id,
                    trial_id=t.trial_id,
                    reference=t.reference,
                    sentence_id=t.sentence,
                    checkpoint_a=t.checkpoint_a,
                    checkpoint_b=t.checkpoint_b,
                    preset_a=t.preset_a,
                    preset_b=t.preset_b,
                    a_side=a_side,
                    choice=a_side if a_wins else b_side,
                    reasons=["accent"],
                    played_a_s=2.0,
                    played_b_s=2.5,
                    decision_s=6.0,
                )
            )
    return plan


def table_rows(table) -> list[list[str]]:
    """Cell texts of an HTML ``<table>``'s body, row by row."""
    return table.evaluate("t => [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.innerText.trim()))")


def test_admin_sees_tables_and_charts_and_follows_a_link_to_compare(page, auth_app, seeded):
    login(page, auth_app, "admin", path="/?tab=results")  # a link straight to the Results tab
    expect(page.get_by_role("tab", name="Results")).to_have_attribute("aria-selected", "true")
    test_box = page.get_by_label("Test", exact=True).locator("visible=true")
    test_box.click()
    page.get_by_role("option", name=f"{TITLE} ({seeded.test_id})", exact=True).click()

    expect(
        page.get_by_text(f"12 counted votes (0 without preference) from 2 raters on test {seeded.test_id}")
    ).to_be_visible()
    # 4 decisive votes per pair from 2 raters: preliminary, and not told apart
    expect(page.get_by_text("Ranking of checkpoints, best first", exact=False)).to_be_visible()
    expect(page.get_by_text("Not settled", exact=False).first).to_be_visible()
    # the four charts are drawn images
    charts = page.locator("[data-testid=matplotlib] img")
    expect(charts).to_have_count(4)
    for i in range(4):
        assert charts.nth(i).evaluate("img => img.complete && img.naturalWidth > 300"), f"chart {i} not drawn"
    # head to head: each pair met 4 times (2 sentences x 2 raters), always won by the better one
    table = page.locator("table", has=page.get_by_role("columnheader", name="Wins")).first
    rows = [r[1:6] for r in table_rows(table)]
    assert sorted(rows) == sorted(
        [["feb1", "apr24", "4", "0", "0"], ["feb1", "apr27", "0", "4", "0"], ["apr24", "apr27", "0", "4", "0"]]
    ), rows
    SHOTS.mkdir(parents=True, exist_ok=True)
    for w, h in ((1440, 900), (390, 844)):  # looked at when the page changes
        page.set_viewport_size({"width": w, "height": h})
        page.screenshot(path=str(SHOTS / f"results-{w}x{h}.png"))
    page.set_viewport_size({"width": 1440, "height": 900})
    # per-rater breakdown names both raters
    page.get_by_role("tab", name="Raters").click()
    for rater in RATERS:
        expect(page.get_by_role("cell", name=rater, exact=True).first).to_be_visible()

    # a linked cell opens that comparison in Compare, in a new tab
    page.get_by_role("tab", name="Head to head").click()
    link = table.get_by_role("link", name="apr27").first
    with page.context.expect_page() as opened:
        link.click()
    compare = opened.value
    try:
        expect(compare.get_by_text("Link to this comparison")).to_be_visible(timeout=90_000)
        for ck in ("feb1", "apr27"):
            expect(audio_player(compare, f"{ck} · none · take 1 · DEMO")).to_be_visible()
        expect(compare.get_by_label("Reference clip", exact=True)).to_have_value("surya_1")
    finally:
        compare.close()


def test_a_rater_cannot_open_results(page, auth_app, seeded):
    login(page, auth_app, "rater")
    # the tab is not there at all
    expect(page.get_by_role("tab")).to_have_text(["Blind A/B"])
    page.wait_for_timeout(1000)  # let every page-load handler answer
    expect(page.get_by_role("tab")).to_have_text(["Blind A/B"])
    html = page.content()
    for secret in ("apr27", "feb1", "apr24", "without preference", str(auth_app.votes)):
        assert not mentions(html, secret), f"{secret!r} is on the rater's page"
    # and the Results handlers refuse a rater who calls them directly from the page
    config = page.evaluate("() => fetch('config').then(r => r.json())")
    for button in ("Refresh", "HTML report"):
        fn = event_index(config, button)
        answer = call_in_page(page, fn, [seeded.test_id, False])
        assert answer is not None and answer["success"] is False, answer
        text = json.dumps(answer)
        assert "for admins" in text, text
        for name in ("apr27", "feb1", "apr24", "rita", "votes.csv"):
            assert not mentions(text, name), f"the refusal of {button!r} leaks {name!r}: {text}"


def test_the_same_direct_call_works_for_an_admin(page, auth_app, seeded):
    """The refusal above is the role check, not a broken call: an admin's identical call succeeds."""
    login(page, auth_app, "admin")
    config = page.evaluate("() => fetch('config').then(r => r.json())")
    answer = call_in_page(page, event_index(config, "Refresh"), [seeded.test_id, False])
    assert answer is not None and answer["success"] is True, answer
    assert "Ranking of checkpoints" in json.dumps(answer["output"]["data"])
