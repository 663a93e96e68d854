"""Browser journeys: the app in a subprocess, driven by Playwright in Debian's Chromium.

Each test gets a fresh browser context; on failure a screenshot and the page HTML are
saved under ``test-artifacts/e2e/`` next to the test report.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

ARTIFACTS = ROOT / "test-artifacts" / "e2e"
USERS = {"admin": ("ada", "admin-pass-1"), "rater": ("rita", "rater-pass-1"), "rater2": ("ravi", "rater-pass-2")}


@dataclass
class RunningApp:
    url: str
    root: Path  # temp folder holding catalog, demo copy, votes, users
    votes: Path
    proc: subprocess.Popen
    log: Path


def _start_app(root: Path, *, auth: bool) -> RunningApp:
    shutil.copytree(ROOT / "demo", root / "demo", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    text = (ROOT / "checkpoints.yaml").read_text()
    text = text.replace("cache_dir: .workbench/cache", f"cache_dir: {root / 'cache'}")
    text = text.replace("data_dir: .workbench ", f"data_dir: {root / 'data'} ")
    (root / "checkpoints.yaml").write_text(text)
    votes = root / "votes" / "votes.csv"
    args = [sys.executable, str(ROOT / "app.py"), "--config", str(root / "checkpoints.yaml"), "--votes", str(votes)]
    if auth:
        from workbench.users import UserStore

        store = UserStore(root / "users.json")
        store.add(*USERS["admin"], role="admin")
        store.add(*USERS["rater"], role="rater")
        store.add(*USERS["rater2"], role="rater")
        args += ["--auth", str(root / "users.json")]
    port = free_port()
    args += ["--port", str(port)]
    log = root / "app.log"
    with open(log, "w") as out:  # the child keeps its own copy of the file descriptor
        proc = subprocess.Popen(args, cwd=root, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=5)
            break
        except OSError as e:
            if getattr(e, "code", None) in (401, 403):
                break
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"app did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
    return RunningApp(url=url, root=root, votes=votes, proc=proc, log=log)


def _stop(app: RunningApp) -> None:
    app.proc.terminate()
    try:
        app.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        app.proc.kill()


@pytest.fixture(scope="module")
def open_app(tmp_path_factory):
    """The app without login (one local admin) on the demo catalog."""
    app = _start_app(tmp_path_factory.mktemp("app-open"), auth=False)
    yield app
    _stop(app)


@pytest.fixture(scope="module")
def auth_app(tmp_path_factory):
    """The app with login: users ada (admin), rita and ravi (raters)."""
    app = _start_app(tmp_path_factory.mktemp("app-auth"), auth=True)
    yield app
    _stop(app)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep


def _new_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    return pg


def _close(request, pages: list, stem: str) -> None:
    """Save a screenshot and the HTML of each page if the test failed, then close them."""
    rep = getattr(request.node, "rep_call", None)
    failed = rep is None or rep.failed
    for i, pg in enumerate(pages):
        if failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = stem if i == 0 else f"{stem}-{i + 1}"
            try:
                pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                (ARTIFACTS / f"{name}.html").write_text(pg.content())
            except Exception:
                pass
        pg.context.close()


@pytest.fixture
def page(browser, request):
    """A fresh context + page; screenshot and HTML saved on failure."""
    pg = _new_page(browser)
    yield pg
    _close(request, [pg], request.node.name.replace("/", "_"))


@pytest.fixture
def new_page(browser, request):
    """Make more pages, each in its own fresh context (another person); artifacts saved on failure."""
    pages: list = []

    def make():
        pages.append(_new_page(browser))
        return pages[-1]

    yield make
    _close(request, pages, request.node.name.replace("/", "_") + "-other")


def login(page, app: RunningApp, who: str, path: str = "/") -> None:
    """Log in through the login form as ``who`` (admin | rater | rater2), starting at ``path``.

    Returns once the page has settled: for an admin, when the page-load handler has
    revealed the admin tabs (so a tab clicked next is not switched away from).
    """
    user, password = USERS[who]
    page.goto(app.url + path)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.get_by_role("tab", name="Blind A/B").wait_for(timeout=60_000)
    if who == "admin":
        page.get_by_role("tab", name="Results").wait_for(timeout=60_000)


# ---------------------------------------------------------------------------- page helpers

#: the nearest enclosing component block of an element
_BLOCK = "xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' block ')][1]"


def choose(page, label: str, value: str) -> None:
    """Pick ``value`` in the single-choice dropdown labelled ``label``."""
    from playwright.sync_api import expect

    box = page.get_by_label(label, exact=True)
    box.click()
    page.get_by_role("option", name=value, exact=True).click()
    expect(box).to_have_value(value)


def dropdown_block(page, label: str):
    """The component block around the dropdown labelled ``label``."""
    return page.get_by_label(label, exact=True).locator(_BLOCK)


def chosen(page, label: str) -> list[str]:
    """The values shown as tokens in the multi-choice dropdown labelled ``label``."""
    return dropdown_block(page, label).locator(".token > span").all_inner_texts()


def choose_many(page, label: str, values: list[str]) -> None:
    """Clear the multi-choice dropdown labelled ``label`` and pick ``values`` in order."""
    block = dropdown_block(page, label)
    clear = block.get_by_title("Clear")
    if clear.count():
        clear.click()
    box = page.get_by_label(label, exact=True)
    for v in values:
        box.click()
        page.get_by_role("option", name=v, exact=True).click()
    box.press("Escape")
    assert chosen(page, label) == values


def audio_player(page, label: str):
    """The waveform player of the ``gr.Audio`` labelled ``label`` (time labels, buttons, waveform)."""
    return page.get_by_test_id(f"waveform-{label}")


def audio_block(page, label: str):
    """The whole ``gr.Audio`` block labelled ``label`` (player plus download link)."""
    return audio_player(page, label).locator(_BLOCK)


def seconds_label(text: str) -> float:
    """``"1:05"`` -> 65.0 (the player's time labels)."""
    minutes, seconds = text.strip().split(":")
    return 60 * int(minutes) + float(seconds)


def waveform_pixels(player) -> int:
    """Painted pixels of the player's waveform canvases (wavesurfer draws them in a shadow root)."""
    return player.locator("#waveform").evaluate(
        """el => {
            let n = 0;
            for (const host of el.querySelectorAll('*')) {
                if (!host.shadowRoot) continue;
                for (const c of host.shadowRoot.querySelectorAll('canvas')) {
                    if (!c.width || !c.height) continue;
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
                }
            }
            return n;
        }"""
    )


def play_briefly(player, *, timeout_s: float = 10.0) -> float:
    """Press Play and wait until the elapsed-time label moves; returns the seconds it shows.

    Pauses again before returning (the label only moves while real audio is decoded and playing).
    """
    player.get_by_role("button", name="Play", exact=True).click()
    deadline = time.time() + timeout_s
    shown = 0.0
    while time.time() < deadline:
        shown = seconds_label(player.locator("#time").inner_text())
        if shown > 0:
            break
        player.page.wait_for_timeout(100)
    pause = player.get_by_role("button", name="Pause", exact=True)
    if pause.count():
        pause.click()
    return shown


class NetworkLog:
    """Every response a page receives, with bodies.

    Two sources: Playwright's ``requestfinished`` (documents, scripts, images, files and
    any finished fetch) and an init script that tees every ``fetch`` body and
    ``EventSource`` message inside the page as it streams, so the queue's server-sent
    events are captured even while their stream is still open.
    """

    INIT_SCRIPT = """
    (() => {
      const log = (window.__wbNet = []);
      const origFetch = window.fetch;
      window.fetch = async function (...args) {
        const res = await origFetch.apply(this, args);
        try {
          const entry = {url: res.url, status: res.status, chunks: []};
          log.push(entry);
          const reader = res.clone().body.getReader();
          const dec = new TextDecoder('latin1');
          (async () => {
            for (;;) {
              const {done, value} = await reader.read();
              if (done) break;
              entry.chunks.push(dec.decode(value, {stream: true}));
            }
          })().catch(() => {});
        } catch (e) {}
        return res;
      };
      const OrigES = window.EventSource;
      if (OrigES) {
        window.EventSource = function (url, opts) {
          const es = new OrigES(url, opts);
          const entry = {url: String(url), status: 0, chunks: []};
          log.push(entry);
          es.addEventListener('message', (ev) => entry.chunks.push(String(ev.data)));
          return es;
        };
        window.EventSource.prototype = OrigES.prototype;
      }
    })();
    """

    def __init__(self, page):
        self.page = page
        self.finished: list[tuple[str, int, bytes]] = []  # (url, status, body)
        self.streamed: list[tuple[str, str]] = []  # (url, text) from inside the page
        self.responses: list = []  # playwright Response objects, in arrival order
        page.add_init_script(self.INIT_SCRIPT)
        page.on("response", lambda r: self.responses.append(r))
        page.on("requestfinished", self._finished)

    def _finished(self, request) -> None:
        try:
            resp = request.response()
            body = resp.body() if resp is not None else b""
        except Exception:  # a body the browser did not keep (redirect, aborted stream)
            return
        self.finished.append((request.url, resp.status, body))

    def collect(self) -> None:
        """Pull what the in-page tee has seen so far (call before a reload or navigation)."""
        try:
            entries = self.page.evaluate("() => (window.__wbNet || []).map(e => [e.url, e.chunks.join('')])")
        except Exception:
            return
        self.streamed.extend((u, t) for u, t in entries)
        self.page.evaluate("() => { for (const e of (window.__wbNet || [])) e.chunks = []; }")

    def file_urls(self) -> list[str]:
        """URLs of files Gradio served (``gradio_api/file=``) that answered 200."""
        return [r.url for r in self.responses if "gradio_api/file=" in r.url and r.status == 200]

    def body_of(self, url: str) -> bytes | None:
        """The body of the finished 200 response for ``url`` (None while there is none)."""
        for u, status, body in self.finished:
            if u == url and status == 200:
                return body
        return None


def wait_until(page, check, *, timeout_s: float = 30.0, what: str = "condition"):
    """Poll ``check()`` until it returns something truthy; return it (fail after ``timeout_s``).

    Waits with ``page.wait_for_timeout`` so Playwright keeps delivering page events meanwhile.
    """
    deadline = time.time() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        page.wait_for_timeout(200)


def dataframe_rows(block) -> list[list[str]]:
    """Cell texts of the ``gr.Dataframe`` inside ``block``, row by row (the rendered rows)."""
    return block.evaluate(
        """b => {
            const rows = {};
            for (const c of b.querySelectorAll('[role=gridcell][data-row]')) {
                (rows[c.dataset.row] ||= [])[Number(c.dataset.col)] = c.innerText.trim();
            }
            return Object.keys(rows).sort((x, y) => x - y).map(k => rows[k]);
        }"""
    )


def event_index(config: dict, button: str, event: str = "click") -> int:
    """The ``fn_index`` of the ``event`` handler of the button labelled ``button`` in a page config."""
    comps = {c["id"]: c for c in config["components"]}
    for i, dep in enumerate(config["dependencies"]):
        for target, name in dep["targets"]:
            if name == event and comps.get(target, {}).get("props", {}).get("value") == button:
                return dep.get("id", i)
    raise AssertionError(f"no {event} handler on a button labelled {button!r}")


_CALL_JS = """
async ([fn, data]) => {
  const session = 'e2e' + Math.random().toString(36).slice(2);
  const join = await fetch('gradio_api/queue/join', {
    method: 'POST',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({data, fn_index: fn, session_hash: session, event_data: null, trigger_id: null}),
  });
  if (!join.ok) return {success: false, joined: join.status, body: await join.text()};
  const res = await fetch('gradio_api/queue/data?session_hash=' + session);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const {done, value} = await reader.read();
    if (done) return null;
    buf += dec.decode(value, {stream: true});
    const lines = buf.split('\\n');
    buf = lines.pop();
    for (const line of lines) {
      if (!line.startsWith('data:')) continue;
      const msg = JSON.parse(line.slice(5));
      if (msg.msg === 'process_completed') { reader.cancel(); return msg; }
    }
  }
}
"""


def call_in_page(page, fn_index: int, data: list) -> dict | None:
    """Run event ``fn_index`` from inside the page, with its login cookie, the way any script could.

    Returns the queue's final message (``{"success": bool, "output": ...}``), or None if the
    stream ended without one.
    """
    return page.evaluate(_CALL_JS, [fn_index, data])


def fonts_drawing(page, selector: str) -> dict[str, int]:
    """The fonts Chromium actually drew the text of ``selector`` with: family -> glyph count
    (the DevTools protocol's platform fonts, after per-character fallback)."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    finally:
        cdp.detach()
    return {f["familyName"]: f["glyphCount"] for f in fonts}
