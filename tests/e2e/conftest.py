"""Browser journeys: the app in a subprocess, driven by Playwright in Debian's Chromium.

Each test gets a fresh browser context; on failure a screenshot and the page HTML are
saved under ``test-artifacts/e2e/`` next to the test report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
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
    proc = subprocess.Popen(args, cwd=root, stdout=open(log, "w"), stderr=subprocess.STDOUT)
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


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: run `make setup-dev` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep


@pytest.fixture
def page(browser, request):
    """A fresh context + page; screenshot and HTML saved on failure."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stem = request.node.name.replace("/", "_")
        try:
            pg.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
            (ARTIFACTS / f"{stem}.html").write_text(pg.content())
        except Exception:
            pass
    context.close()


def login(page, app: RunningApp, who: str) -> None:
    """Log in through the login form as ``who`` (admin | rater | rater2)."""
    user, password = USERS[who]
    page.goto(app.url + "/")
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.get_by_role("tab", name="Blind A/B").wait_for(timeout=60_000)
