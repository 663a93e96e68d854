"""The app shell builds, serves, and shows the catalog it will use."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from types import SimpleNamespace

import pytest

from tests.conftest import ROOT, free_port


def test_app_serves_page_and_config(demo_catalog_path, tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "app.py",
            "--config",
            str(demo_catalog_path),
            "--port",
            str(port),
            "--votes",
            str(tmp_path / "votes.csv"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                page = urllib.request.urlopen(url + "/", timeout=5).read().decode()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    out = proc.stdout.read() if proc.poll() is not None else ""
                    pytest.fail(f"app did not start: {out[-3000:]}")
                time.sleep(0.5)
        assert "<html" in page.lower()
        config = json.loads(urllib.request.urlopen(url + "/config", timeout=10).read())
        labels = [c.get("props", {}).get("label") for c in config["components"] if c.get("type") == "tabitem"]
        assert [lbl for lbl in labels if lbl in ("Compare", "Blind A/B", "Results")] == [
            "Compare",
            "Blind A/B",
            "Results",
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_catalog_panel_lists_availability_with_reasons(demo_catalog, tmp_path):
    from workbench.ui.catalog_panel import catalog_rows
    from workbench.ui.common import AppContext

    ctx = AppContext.create(catalog=demo_catalog, votes_path=tmp_path / "v.csv", data_dir=tmp_path)
    df = catalog_rows(ctx, SimpleNamespace(username=None))
    cks = df[df.kind == "checkpoint"].set_index("id")
    assert list(cks.index) == ["feb1", "apr24", "apr27"]
    assert set(cks.status) == {"demo"}
    assert all("model.pth" in d or "folder missing" in d for d in cks.detail)
    enh = df[df.kind == "enhancement"].set_index("id")
    assert enh.loc["none", "status"] == "ok"
    assert enh.loc["denoise", "status"] == "demo" and "weights missing" in enh.loc["denoise", "detail"]
    assert "demo stand-in" in enh.loc["denoise", "detail"]


def test_catalog_panel_is_empty_for_raters(demo_catalog, tmp_path):
    from workbench.ui.catalog_panel import catalog_rows
    from workbench.ui.common import AppContext
    from workbench.users import UserStore

    users = UserStore(tmp_path / "users.json")
    users.add("rita", "secret123", "rater")
    ctx = AppContext.create(catalog=demo_catalog, votes_path=tmp_path / "v.csv", data_dir=tmp_path, users=users)
    assert catalog_rows(ctx, SimpleNamespace(username="rita")).empty


def test_bad_catalog_exits_with_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("checkpoints:\n  ck:\n    backend: onnx\n")
    r = subprocess.run([sys.executable, "app.py", "--config", str(bad)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1
    assert "bad.yaml:3: checkpoints.ck.backend must be 'xtts' or 'prerendered'" in r.stderr
    assert "Traceback" not in r.stderr


def test_share_without_users_refuses(tmp_path, demo_catalog_path):
    r = subprocess.run(
        [sys.executable, "app.py", "--config", str(demo_catalog_path), "--share", "--auth", str(tmp_path / "u.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "no users" in r.stderr and "users add" in r.stderr


def test_leak_checks_match_names_as_tokens_not_inside_hashes():
    from tests.conftest import mentions

    assert not mentions('"component_class_id":"8f84475e091717ffeb1c7e32"', "feb1")
    assert mentions('{"label": "feb1"}', "feb1") and mentions("/file=/tmp/clip_feb1.wav", "feb1")
    assert mentions(b"<td>apr24</td>", "apr24") and not mentions("apr245", "apr24")


def test_every_font_weight_the_theme_declares_draws_every_letter_and_digit():
    """Text in one weight comes from one font file: a declared weight whose bundled file lacks
    letters makes the browser draw those from a system font (Gradio's semibold Source Sans Pro
    holds only "A", "B" and Cyrillic, which is how the vote buttons got two typefaces)."""
    import re
    import string
    from pathlib import Path

    import gradio
    from fontTools.ttLib import TTFont

    from workbench.ui import theme

    t = theme()
    frontend = Path(gradio.__file__).parent / "templates" / "frontend"
    files = []
    for font in (*t._font, *t._font_mono):
        if hasattr(font, "stylesheet"):
            files += re.findall(r"url\('([^']+)'\)", font.stylesheet()["css"])
    assert len(files) >= 3, files  # regular and bold text, and code
    needed = {ord(c) for c in string.ascii_letters + string.digits + ".,:;!?'\"()-/ "}
    for url in files:
        cmap = TTFont(frontend / url).getBestCmap()
        assert needed <= set(cmap), (url, sorted(chr(c) for c in needed - set(cmap)))
