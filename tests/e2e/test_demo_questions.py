"""Journeys: the team's questions answered on the bundled demo with the UI alone.

1. "apr24 sounds dull next to feb1: why?" -> the differences in words (tilt, centroid).
2. "Does the reverted feb1 match the old renders exactly?" -> add the old renders as a
   checkpoint from the page, compare: "identical".
3. "Is resemble-enhance the cause?" -> the enhancement diff between none and denoise.
4. A mistake shows one message and leaves the last results on screen.

Each answer is also photographed at 1440x900 and 390x844 into ``test-artifacts/e2e/screens/``.
"""

from __future__ import annotations

import re
import shutil
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, audio_player, choose_many

pytestmark = pytest.mark.e2e

RUN = "Render and compare"
SCREENS = ARTIFACTS / "screens"


def snap(page, name: str, target=None) -> None:
    """Screenshots of ``target`` (scrolled into view) at desktop and phone sizes."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    for w, h in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": w, "height": h})
        page.wait_for_timeout(300)
        if target is not None:
            target.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENS / f"{name}-{w}x{h}.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})


def open_compare(page, url: str) -> None:
    page.goto(url + "/")
    expect(page.get_by_label("Reference clip", exact=True)).not_to_have_value("", timeout=60_000)


def compare(page, checkpoints: list[str]) -> None:
    choose_many(page, "Checkpoints (2-4)", checkpoints)
    page.get_by_role("button", name=RUN).click()
    link = page.get_by_text("Link to this comparison")
    expect(link).to_be_visible(timeout=90_000)
    expect(page.get_by_text(f"checkpoints={'%2C'.join(checkpoints)}", exact=False).first).to_be_visible()


def test_why_is_apr24_dull_next_to_feb1(page, open_app):
    open_compare(page, open_app.url)
    expect(page.get_by_text("Pick a reference, a sentence and 2-4 checkpoints", exact=False)).to_be_visible()
    compare(page, ["feb1", "apr24"])
    answer = page.get_by_text("apr24 vs feb1:", exact=False).first
    expect(answer).to_be_visible()
    text = answer.inner_text()
    assert re.search(r"spectral tilt [\d.]+ dB/oct steeper: duller", text), text
    assert re.search(r"spectral centroid \d+ Hz \(-\d+%\) lower: darker", text), text
    img = page.locator("img[src*='_spectrum.png']")
    expect(img).to_be_visible()
    snap(page, "q1-why-dull", answer)
    snap(page, "q1-spectrum", img)
    metrics = page.locator(".block", has=page.get_by_text("Metrics (st = semitones")).last
    snap(page, "q1-metrics", metrics)
    # on a phone the table scrolls sideways instead of squeezing its columns into letters
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    widths = metrics.locator("th").evaluate_all("ths => ths.map(t => t.getBoundingClientRect().width)")
    assert widths and min(widths) >= 60, widths
    table = metrics.locator("table").first
    assert table.evaluate("t => t.scrollWidth > t.parentElement.clientWidth")
    page.set_viewport_size({"width": 1400, "height": 1000})
    # the address bar holds the comparison on screen, also after a second one
    assert parse_qs(urlparse(page.url).query)["checkpoints"] == ["feb1,apr24"]
    compare(page, ["feb1", "apr27"])
    expect(page.get_by_text("apr27 vs feb1:", exact=False).first).to_be_visible()
    page.wait_for_function("() => location.search.includes('checkpoints=feb1%2Capr27')", timeout=15_000)


def test_is_the_denoiser_the_cause(page, open_app):
    open_compare(page, open_app.url)
    page.get_by_text("Enhancement diff: one clip without and with a preset").click()
    preset = page.get_by_label("Preset", exact=True)
    expect(preset).to_have_value("denoise (demo stand-in)")
    page.get_by_role("button", name="Render both and diff").click()
    expect(audio_player(page, "feb1 · denoise (demo) · take 1 · DEMO")).to_be_visible(timeout=90_000)
    caption = page.get_by_text("not resemble-enhance", exact=False).first
    expect(caption).to_be_visible()
    expect(caption).to_contain_text("preset denoise: demo stand-in")
    table = page.locator(".block", has=page.get_by_text("Metric deltas (after - before)")).last
    expect(table.get_by_text("tilt (dB/oct)")).to_be_visible()
    snap(page, "q4-enhancement-diff", caption)
    snap(page, "q4-enhancement-deltas", table)


def test_a_mistake_keeps_the_last_results(page, open_app):
    open_compare(page, open_app.url)
    compare(page, ["feb1", "apr24"])
    answer = page.get_by_text("apr24 vs feb1:", exact=False).first
    expect(answer).to_be_visible()
    # demo checkpoints have no model files, so they cannot say custom text
    page.get_by_label("Custom text (instead of the sentence; needs model files)").fill("Something new.")
    page.get_by_role("button", name=RUN).click()
    error = page.locator(".prose.wb-error").filter(has_text="Could not compare")
    expect(error).to_be_visible(timeout=60_000)
    expect(error).to_contain_text("cannot say custom text")
    assert "/tmp/" not in error.inner_text() and str(open_app.root) not in error.inner_text()
    expect(answer).to_be_visible()  # the last good comparison is still on screen
    expect(audio_player(page, "apr24 · none · take 1 · DEMO")).to_be_visible()
    assert page.locator(".toast-body").count() <= 1
    snap(page, "q-error-keeps-results", error)


def test_does_the_revert_match_the_old_renders(page, open_app):
    shutil.copytree(open_app.root / "demo" / "clips" / "feb1", open_app.root / "old" / "feb1")
    open_compare(page, open_app.url)
    page.get_by_text("Add old renders as a checkpoint").click()
    page.get_by_label("New checkpoint name").fill("feb1-old")
    page.get_by_label("Folder on the server").fill("old/feb1")
    page.get_by_role("button", name="Add checkpoint").click()
    expect(page.get_by_text("Added checkpoint feb1-old: 32 clips", exact=False)).to_be_visible(timeout=60_000)
    assert "feb1-old" in (open_app.root / "checkpoints.added.yaml").read_text()
    compare(page, ["feb1", "feb1-old"])
    verdict = page.get_by_text("Exact match, feb1 vs feb1-old: identical", exact=False)
    expect(verdict).to_be_visible()
    expect(page.locator("img[src*='_difference.png']")).to_be_visible()  # identical clips line up: drawn
    snap(page, "q2-revert-identical", verdict)
