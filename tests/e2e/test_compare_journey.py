"""Journey: compare two checkpoints in the browser, listen, read the figures, reopen the link.

The app runs without login (the one local user is an admin) on a copy of the demo
catalog. The selection differs from the page's defaults in every field, so a handler
that ignored a widget would render other clips and fail the provenance checks.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest
import soundfile as sf
from playwright.sync_api import expect

from tests.e2e.conftest import (
    NetworkLog,
    audio_block,
    audio_player,
    choose,
    choose_many,
    chosen,
    dataframe_rows,
    play_briefly,
    seconds_label,
    wait_until,
    waveform_pixels,
)

pytestmark = pytest.mark.e2e

REFERENCE, SENTENCE, CHECKPOINTS = "paul_2", "question", ["apr27", "apr24"]
LABELS = {ck: f"{ck} · none · take 1 · DEMO" for ck in CHECKPOINTS}
REF_LABEL = f"{REFERENCE} · reference"
RUN = "Render and compare"


def _cached_clip(root: Path, file_url: str) -> tuple[Path, dict]:
    """The render-cache FLAC a served file was copied from, and its provenance sidecar."""
    name = Path(unquote(urlparse(file_url).path)).name
    matches = list((root / "cache" / "clips").rglob(name))
    assert len(matches) == 1, f"{name} is not one clip of the app's render cache: {matches}"
    return matches[0], json.loads(matches[0].with_suffix(".json").read_text())


def check_player(page, net: NetworkLog, root: Path, checkpoint: str) -> str:
    """The player of ``checkpoint`` holds its real clip, fetched, decoded and drawn; returns the file URL."""
    label = LABELS[checkpoint]
    player = audio_player(page, label)
    expect(player).to_be_visible()
    href = audio_block(page, label).get_by_test_id("download-link").get_attribute("href")
    assert "gradio_api/file=" in href, href
    # the browser fetched that file, and it is the cached render of this very selection
    wait_until(page, lambda: href in net.file_urls(), what=f"the page to fetch {label}'s audio")
    body = wait_until(page, lambda: net.body_of(href), what=f"the body of {href}")
    cached, meta = _cached_clip(root, href)
    assert hashlib.sha256(body).digest() == hashlib.sha256(cached.read_bytes()).digest()
    assert meta["request"]["checkpoint"] == checkpoint
    assert (meta["request"]["reference"], meta["request"]["sentence"]) == (REFERENCE, SENTENCE)
    y, sr = sf.read(io.BytesIO(body))
    duration = len(y) / sr
    assert duration > 1.0 and float(abs(y).max()) > 0.05, f"{label}: the served audio is empty or silent"
    # the player decoded it: duration label (rounded to whole seconds) and a drawn waveform
    expect(player.locator("#duration")).not_to_have_text("0:00", timeout=20_000)
    shown = seconds_label(player.locator("#duration").inner_text())
    assert abs(shown - duration) <= 0.5 + 1e-6, f"{label}: player says {shown} s, the file holds {duration:.2f} s"
    wait_until(page, lambda: waveform_pixels(player) > 500, timeout_s=15, what=f"{label}'s waveform")
    return href


def check_figures_and_tables(page) -> None:
    """Overlay, spectrum and the other figures load; metrics and pairs tables name both checkpoints."""
    for name in ("overlay", "spectrum", "spectrograms", "pitch", "energy"):
        img = page.locator(f"img[src*='{REFERENCE}_{SENTENCE}_{'-'.join(CHECKPOINTS)}_{name}.png']")
        expect(img).to_be_visible(timeout=20_000)
        wait_until(page, lambda img=img: img.evaluate("i => i.complete && i.naturalWidth > 200"), what=f"{name} PNG")
    metrics = page.locator(".block", has=page.get_by_text("Metrics (st = semitones", exact=False)).last
    headers = metrics.locator("thead").inner_text()
    for col in (f"{REFERENCE} (reference)", *CHECKPOINTS):
        assert col in headers, f"metrics table lacks a column for {col}: {headers!r}"
    rows = {r[0]: r[1:] for r in dataframe_rows(metrics)}
    assert {"duration (s)", "loudness (LUFS)", "F0 median (Hz)", "spectral distance to first (MCD, dB)"} <= set(rows)
    # reference, two checkpoints, then the second's difference to the first
    assert len(rows["duration (s)"]) == 4 and all(float(v) > 1.0 for v in rows["duration (s)"][:3]), rows
    assert all(abs(float(v) + 23) < 0.5 for v in rows["loudness (LUFS)"][1:3]), rows  # clips levelled to -23 LUFS
    assert f"{CHECKPOINTS[1]} − {CHECKPOINTS[0]}" in headers
    pairs = page.locator(".block", has=page.get_by_text("Pairs: spectral distance", exact=False)).last
    cells = dataframe_rows(pairs)[0]
    assert cells[:2] == CHECKPOINTS and cells[3] in {"identical", "equal within tolerance", "different"}, cells
    assert page.get_by_text(f"{CHECKPOINTS[0]} vs {CHECKPOINTS[1]}:", exact=False).first.is_visible()


def test_compare_two_checkpoints_listen_and_reopen_the_link(page, open_app):
    net = NetworkLog(page)
    page.goto(open_app.url + "/")
    # choices arrive from the page-load handler; then pick a selection unlike the defaults
    expect(page.get_by_label("Reference clip", exact=True)).not_to_have_value("", timeout=60_000)
    choose(page, "Reference clip", REFERENCE)
    choose(page, "Sentence", SENTENCE)
    choose_many(page, "Checkpoints (2-4)", CHECKPOINTS)
    page.get_by_role("button", name=RUN).click()
    expect(page.get_by_text("Link to this comparison")).to_be_visible(timeout=90_000)

    # reference + two checkpoints on screen, each with its own real audio
    expect(audio_player(page, REF_LABEL)).to_be_visible()
    hrefs = {ck: check_player(page, net, open_app.root, ck) for ck in CHECKPOINTS}
    assert len(set(hrefs.values())) == 2
    assert play_briefly(audio_player(page, LABELS[CHECKPOINTS[0]])) > 0, "the player never advanced: it does not play"
    check_figures_and_tables(page)

    # the address bar now reproduces the view
    query = parse_qs(urlparse(page.url).query)
    assert query["reference"] == [REFERENCE] and query["sentence"] == [SENTENCE]
    assert query["checkpoints"] == [",".join(CHECKPOINTS)] and query["tab"] == ["compare"]

    other = page.context.new_page()
    net2 = NetworkLog(other)
    try:
        other.goto(page.url)
        expect(other.get_by_text("Link to this comparison")).to_be_visible(timeout=90_000)
        expect(other.get_by_label("Reference clip", exact=True)).to_have_value(REFERENCE)
        expect(other.get_by_label("Sentence", exact=True)).to_have_value(SENTENCE)
        assert chosen(other, "Checkpoints (2-4)") == CHECKPOINTS
        for ck in CHECKPOINTS:  # the same clips (Gradio names served files by content)
            assert check_player(other, net2, open_app.root, ck) == hrefs[ck]
        check_figures_and_tables(other)
    finally:
        other.close()


PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)


def test_a_phone_gets_figures_it_can_read(browser, open_app):
    """At 390x844 with a phone's User-Agent, every figure fills the column and its 10 pt text
    shows at 9 CSS px or more (a desktop figure squeezed into the column shows it at about 4)."""
    from workbench import plots

    context = browser.new_context(
        viewport={"width": 390, "height": 844}, user_agent=PHONE_UA, is_mobile=True, device_scale_factor=3
    )
    page = context.new_page()
    try:
        link = f"/?tab=compare&reference={REFERENCE}&sentence={SENTENCE}&checkpoints={','.join(CHECKPOINTS)}"
        page.goto(open_app.url + link + "&preset=none&take=1")
        expect(page.get_by_text("Link to this comparison")).to_be_visible(timeout=90_000)
        for name in ("overlay", "spectrum", "spectrograms", "pitch", "energy"):
            img = page.locator(f".wb-figure img[src*='_{name}_phone.png']")
            img.scroll_into_view_if_needed(timeout=20_000)
            wait_until(page, lambda img=img: img.evaluate("i => i.complete && i.naturalWidth > 0"), what=name)
            shown_w, natural_w = img.evaluate("i => [i.getBoundingClientRect().width, i.naturalWidth]")
            figure_in = natural_w / plots.NARROW_DPI
            text_px = 10 / 72 * shown_w / figure_in  # 10 pt at the size the figure is shown
            assert shown_w >= 300 and text_px >= 9, (name, shown_w, natural_w, text_px)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
