"""`python -m workbench check` reads every reference and clip and names each unusable one."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT
from workbench import audio
from workbench.catalog import audio_problems, load_catalog
from workbench.errors import AudioError

SR = 24000


def wb_check(path):
    return subprocess.run(
        [sys.executable, "-m", "workbench", "check", "--config", str(path)], cwd=ROOT, capture_output=True, text=True
    )


def break_empty(p):
    p.write_bytes(b"")


def break_text(p):
    p.write_text("this is a text file, not a recording\n")


def break_truncated(p):
    y = audio.sine(200, sr=SR, seconds=2.0)
    data = p.with_suffix(".tmp.wav")
    sf.write(data, y, SR, subtype="PCM_16")
    raw = data.read_bytes()
    data.unlink()
    p.write_bytes(raw[: len(raw) // 2])  # the header still promises 2 s


def break_nan(p):
    y = audio.sine(200, sr=SR, seconds=2.0)
    y[1000:1010] = np.nan
    sf.write(p, y, SR, subtype="FLOAT", format="WAV")


def break_silent(p):
    sf.write(p, np.zeros(2 * SR, np.float32), SR, subtype="PCM_16", format="WAV")


def break_single_sample(p):
    sf.write(p, np.array([0.5], np.float32), SR, subtype="PCM_16", format="WAV")


def break_too_long(p):
    sr = 1000  # keeps a 15-minute file small
    sf.write(p, audio.sine(100, sr=sr, seconds=audio.MAX_SECONDS + 5), sr, subtype="PCM_16", format="WAV")


BROKEN = [
    (break_empty, "zero-length file"),
    (break_text, "not a readable audio file"),
    (break_truncated, "cut short"),
    (break_nan, "NaN or infinite"),
    (break_silent, "all silent"),
    (break_single_sample, "only 0.000 s of audio (1 samples)"),
    (break_too_long, "longer than the 900 s limit"),
]


@pytest.mark.parametrize(("breaker", "message"), BROKEN, ids=[b.__name__.removeprefix("break_") for b, _ in BROKEN])
def test_each_kind_of_broken_reference_is_an_error(demo_catalog_path, breaker, message):
    ref = demo_catalog_path.parent / "references" / "surya_1.wav"  # the recording wins over the demo stand-in
    ref.parent.mkdir()
    breaker(ref)
    problems = audio_problems(load_catalog(demo_catalog_path))
    assert len(problems) == 1
    assert problems[0].startswith("reference surya_1: references/surya_1.wav: ") and message in problems[0]


@pytest.mark.slow  # reads every demo audio file
def test_check_exits_1_and_names_every_unusable_file(demo_catalog_path):
    root = demo_catalog_path.parent
    break_silent(root / "demo" / "references" / "paul_2.flac")
    break_text(root / "demo" / "clips" / "apr24" / "surya_1" / "names.flac")
    r = wb_check(demo_catalog_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "error: reference paul_2: demo/references/paul_2.flac: all silent" in r.stderr
    assert "error: checkpoint apr24: demo/clips/apr24/surya_1/names.flac: not a readable audio file" in r.stderr
    assert "2 audio file(s) cannot be used" in r.stdout


def test_the_bundled_demo_passes(demo_catalog_path):
    assert audio_problems(load_catalog(demo_catalog_path)) == []


def test_check_file_refuses_too_short_and_returns_seconds(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, audio.sine(200, sr=SR, seconds=0.5), SR)
    assert audio.check_file(p) == pytest.approx(0.5)
    with pytest.raises(AudioError, match=r"a\.wav: only 0\.500 s of audio .* at least 1 s"):
        audio.check_file(p, min_seconds=1.0)
