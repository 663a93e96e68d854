"""`python -m workbench` commands: exit codes and messages."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT

FIVE_MISTAKES = """\
checkpoints:
  feb1:
    model_dir: models/feb1
    inference:
      temperature: -1
      top_p: 1.5
  apr24:
    backend: onnx
    model_dir: models/apr24
references:
  surya_1:
    audio: refs/surya_1.doc
sentences:
  s1:
    txt: Hello.
"""


def wb(*args, **kw):
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, capture_output=True, text=True, **kw)


def test_check_valid_demo_catalog(demo_catalog_path):
    r = wb("check", "--config", str(demo_catalog_path))
    assert r.returncode == 0, r.stderr
    assert re.search(r"checkpoint\s+feb1\s+demo", r.stdout)
    assert re.search(r"enhancement\s+denoise\s+demo .*stand-in.*weights missing", r.stdout)
    assert "valid; 3 checkpoints, 4 references, 8 sentences, 4 enhancement presets" in r.stdout


def test_check_reports_all_five_mistakes_with_file_and_line(tmp_path):
    p = tmp_path / "checkpoints.yaml"
    p.write_text(FIVE_MISTAKES)
    r = wb("check", "--config", str(p))
    assert r.returncode == 1
    assert "5 problems" in r.stderr
    for line in (5, 6, 8, 12, 15):
        assert f"checkpoints.yaml:{line}: " in r.stderr, (line, r.stderr)
    assert "Traceback" not in r.stderr


def test_check_missing_file():
    r = wb("check", "--config", "/nonexistent/cat.yaml")
    assert r.returncode == 1 and "file not found" in r.stderr


def test_usage_error_exits_2():
    assert wb("frobnicate").returncode == 2


def test_users_add_list_remove(tmp_path):
    f = str(tmp_path / "users.json")
    r = wb("users", "add", "alice", "--role", "admin", "--file", f, input="s3cret-pw-long\n")
    assert r.returncode == 0, r.stderr
    assert wb("users", "add", "bob", "--password", "another-pw-long", "--file", f).returncode == 0
    out = wb("users", "list", "--file", f).stdout
    assert "alice\tadmin" in out and "bob\trater" in out
    assert "s3cret-pw-long" not in (tmp_path / "users.json").read_text()
    from workbench.users import UserStore

    store = UserStore(f)
    assert store.verify("alice", "s3cret-pw-long") and not store.verify("alice", "wrong")
    assert wb("users", "remove", "bob", "--file", f).returncode == 0
    r = wb("users", "remove", "bob", "--file", f)
    assert r.returncode == 1 and "no user 'bob'" in r.stderr
    r = wb("users", "add", "x", "--password", "123", "--file", f)
    assert r.returncode == 1 and "use at least 10" in r.stderr
