from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from workbench import audio
from workbench.errors import AudioError

SR = 24000


def speechlike(rng: np.random.Generator, seconds: float = 2.0, sr: int = SR) -> np.ndarray:
    """Amplitude-modulated harmonic tone + a little noise: a stand-in for speech."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    return (0.2 * y * env + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize(
    ("ext", "fmt", "tol"), [(".wav", "WAV", 1e-4), (".flac", "FLAC", 1e-4), (".ogg", "OGG", 0.2), (".mp3", "MP3", 0.3)]
)
def test_reads_common_formats_as_mono_float32(tmp_path, rng, ext, fmt, tol):
    y = speechlike(rng, 1.0)
    stereo = np.stack([y, y], axis=1)
    p = tmp_path / f"clip{ext}"
    sf.write(p, stereo, SR, format=fmt)
    out, sr = audio.load(p)
    assert sr == SR and out.dtype == np.float32 and out.ndim == 1
    # lossy codecs add delay/padding; compare loudness and length instead of samples
    assert abs(len(out) - len(y)) < 0.1 * SR
    if tol < 0.01:
        np.testing.assert_allclose(out, y, atol=tol)
    else:
        assert abs(audio.loudness(out, sr) - audio.loudness(y, SR)) < 1.5


def test_stereo_is_averaged(tmp_path):
    left = audio.sine(440, sr=SR, seconds=0.5)
    p = tmp_path / "st.wav"
    sf.write(p, np.stack([left, np.zeros_like(left)], axis=1), SR, subtype="FLOAT")
    out, _ = audio.load(p)
    np.testing.assert_allclose(out, left / 2, atol=1e-6)


@pytest.mark.parametrize(("orig", "target"), [(44100, 24000), (16000, 24000), (22050, 16000)])
def test_resampling_keeps_frequency_and_level(orig, target):
    y = audio.sine(1000.0, sr=orig, seconds=1.0, amplitude=0.5)
    out = audio.resample(y, orig_sr=orig, target_sr=target)
    assert abs(len(out) - target) <= 1
    spec = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak_hz = np.argmax(spec) * target / len(out)
    assert abs(peak_hz - 1000.0) < 2.0
    mid = out[len(out) // 4 : 3 * len(out) // 4]
    assert abs(np.sqrt(np.mean(mid**2)) - 0.5 / np.sqrt(2)) < 0.005
    # no aliasing: energy away from 1 kHz is tiny (> 80 dB down)
    spec_db = 20 * np.log10(spec / spec.max() + 1e-12)
    far = np.abs(np.arange(len(spec)) * target / len(out) - 1000) > 50
    assert spec_db[far].max() < -80


def test_load_with_target_rate(tmp_path, rng):
    p = tmp_path / "a.flac"
    audio.write(p, speechlike(rng, 1.0, 16000), 16000)
    y, sr = audio.load(p, sr=SR)
    assert sr == SR and abs(len(y) - SR) <= 1


@pytest.mark.parametrize("target", [-16.0, -23.0, -30.0])
def test_loudness_normalisation_within_half_lu(rng, target):
    y = speechlike(rng, 3.0)
    out = audio.normalize_loudness(y, SR, target_lufs=target)
    assert abs(audio.loudness(out, SR) - target) < 0.5


def test_loudness_of_full_scale_sine_matches_bs1770():
    # BS.1770: a 997 Hz full-scale sine reads -3.01 LUFS
    y = audio.sine(997, sr=48000, seconds=3.0, amplitude=1.0)
    assert abs(audio.loudness(y, 48000) - (-3.01)) < 0.1


def test_normalisation_never_clips(rng):
    y = speechlike(rng, 2.0)
    y[1000] = 0.99  # a spike: raising loudness to -5 LUFS would clip
    out = audio.normalize_loudness(y, SR, target_lufs=-5.0)
    assert np.max(np.abs(out)) <= 10 ** (-1 / 20) + 1e-6


def test_write_is_atomic_and_roundtrips(tmp_path, rng):
    y = speechlike(rng, 0.5)
    p = audio.write(tmp_path / "sub" / "x.flac", y, SR)
    back, sr = audio.load(p)
    assert sr == SR and np.max(np.abs(back - y)) < 1e-4
    assert [f.name for f in p.parent.iterdir()] == ["x.flac"]  # no temp files left
    with pytest.raises(AudioError, match="NaN"):
        audio.write(tmp_path / "bad.wav", np.array([0.1, np.nan], dtype=np.float32), SR)


def _bad_files(tmp_path, rng):
    files = {}
    (tmp_path / "empty.wav").write_bytes(b"")
    files["empty.wav"] = "zero-length"
    sf.write(tmp_path / "nosamples.wav", np.zeros((0,), dtype=np.float32), SR)
    files["nosamples.wav"] = "no audio samples"
    sf.write(tmp_path / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    files["silent.wav"] = "all silent"
    bad = speechlike(rng, 0.5)
    bad[100] = np.nan
    sf.write(tmp_path / "nan.wav", bad, SR, subtype="FLOAT")
    files["nan.wav"] = "NaN"
    (tmp_path / "text.wav").write_text("this is not audio at all " * 40)
    files["text.wav"] = "not a readable audio file"
    (tmp_path / "clip.txt").write_text("hello")
    files["clip.txt"] = "unsupported extension"
    good = tmp_path / "good.wav"
    sf.write(good, speechlike(rng, 1.0), SR)
    (tmp_path / "truncated.wav").write_bytes(good.read_bytes()[:30])
    files["truncated.wav"] = "not a readable audio file"
    return files


def test_each_bad_input_names_the_file_and_problem(tmp_path, rng):
    for name, problem in _bad_files(tmp_path, rng).items():
        with pytest.raises(AudioError) as exc:
            audio.load(tmp_path / name)
        assert name in str(exc.value) and problem in str(exc.value), (name, str(exc.value))


def test_over_long_input_refused(tmp_path):
    p = tmp_path / "long.wav"
    sf.write(p, audio.sine(200, sr=8000, seconds=5.0), 8000)
    with pytest.raises(AudioError, match=r"long\.wav: 5\.0 s is longer than the 4 s limit"):
        audio.load(p, max_seconds=4)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        audio.load(tmp_path / "nope.wav")


def test_validate_in_memory_arrays():
    with pytest.raises(AudioError, match="take 3: all silent"):
        audio.validate(np.zeros(100, dtype=np.float32), SR, name="take 3")
    with pytest.raises(AudioError, match="expected a 1-D or 2-D"):
        audio.validate(np.zeros((2, 2, 2), dtype=np.float32), SR)
