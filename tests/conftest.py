"""Shared fixtures: one per resource. Feature-specific fixtures live in their test files.

Test tiers: :func:`pytest_collection_modifyitems` marks every test that starts a
server, a browser, a subprocess, a load run or a model as ``slow`` (and browser journeys
as ``e2e``), so ``make test-fast`` (``-m "not slow"``) runs the pure-logic tests in the
edit-test loop while ``make test`` runs everything.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


#: modules whose tests serve the app, spawn processes or run load: slow as a whole
SLOW_MODULES = frozenset(
    {
        "test_app",
        "test_auth",
        "test_cli",
        "test_faults",
        "test_hostile_input",
        "test_load",
        "test_security",
        "test_ui_blind",
        "test_ui_compare",
        "test_ui_results",
    }
)
#: fixtures that build or load a model, a browser or a cluster: a test using one is slow
SLOW_FIXTURES = frozenset({"tiny_xtts_dir", "tiny_enhancer_dir", "browser", "ray_cluster"})


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if "e2e" in path.parts:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
        elif path.stem in SLOW_MODULES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def demo_catalog_path(tmp_path: Path) -> Path:
    """A private copy of checkpoints.yaml + demo/ (cache under tmp_path), safe to modify."""
    shutil.copytree(ROOT / "demo", tmp_path / "demo", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    text = (ROOT / "checkpoints.yaml").read_text()
    text = text.replace("cache_dir: .workbench/cache", f"cache_dir: {tmp_path / 'cache'}")
    text = text.replace("data_dir: .workbench ", f"data_dir: {tmp_path / 'data'} ")
    path = tmp_path / "checkpoints.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def demo_catalog(demo_catalog_path):
    from workbench.catalog import load_catalog

    return load_catalog(demo_catalog_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_xtts_dir(tmp_path_factory) -> Path:
    """A tiny random XTTS v2 checkpoint folder (tests/tiny_models.py), built once; treat as read-only."""
    from tiny_models import build_tiny_xtts

    return build_tiny_xtts(tmp_path_factory.mktemp("tiny_xtts") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_enhancer_dir(tmp_path_factory) -> Path:
    """A small random resemble-enhance run folder (about 360 MB), built once; treat as read-only."""
    from tiny_models import build_tiny_enhancer

    return build_tiny_enhancer(tmp_path_factory.mktemp("tiny_enhancer") / "run", seed=0)


#: Debian's chromium; Playwright's own browser download does not work offline
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium per test session (Playwright's sync API allows one per thread)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: run `make setup-dev` (installs Debian's chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # assertions wait longer than the default 5 s on a busy 2-core machine
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def mentions(text: str | bytes, name: str) -> bool:
    """True when ``name`` occurs in ``text`` as a token of its own.

    A leak check must not fire on a name hidden inside a longer run of letters and
    digits: "feb1" is valid hex, and Gradio's page config carries hex hashes (component
    class ids) that differ with the install path and sometimes contain it.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", text) is not None
