"""Enhancement steps: resemble-enhance on a small random run folder, and loudness."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from workbench import audio
from workbench.catalog import EnhancePreset
from workbench.enhance import apply_preset, enhancer_checkpoint, enhancer_step, loudness_step
from workbench.errors import ModelUnavailable, RenderError

SR = 24000


@pytest.fixture(scope="module")
def noisy() -> np.ndarray:
    """1 s of a 220 Hz tone with white noise, 24 kHz."""
    rng = np.random.default_rng(0)
    return (audio.sine(220, sr=SR, seconds=1.0, amplitude=0.3) + 0.02 * rng.standard_normal(SR)).astype(np.float32)


def preset(run: Path | None, **kw) -> EnhancePreset:
    return EnhancePreset(name=kw.pop("name", "p"), weights_dir=run, **kw)


def test_loudness_step_reaches_target(noisy):
    y, info = loudness_step(noisy, SR, target_lufs=-23.0)
    assert abs(audio.loudness(y, SR) + 23.0) < 0.1
    assert info["loudness_out_lufs"] == pytest.approx(-23.0, abs=0.1)
    same, info = loudness_step(noisy, SR, target_lufs=None)
    assert same is noisy and "loudness_out_lufs" not in info


def test_no_enhancer_preset_only_normalises(noisy):
    y, info = apply_preset(noisy, SR, EnhancePreset(name="none"))
    assert info["enhancement"] == "none" and "enhancer_step" not in info
    np.testing.assert_allclose(y / np.max(np.abs(y)), noisy / np.max(np.abs(noisy)), atol=1e-6)


def test_denoise_runs_resemble_enhance(noisy, tiny_enhancer_dir):
    y, sr, info = enhancer_step(noisy, SR, preset(tiny_enhancer_dir, denoise=True), device="cpu")
    assert sr == 44100 and info["enhancer_step"] == "denoise"
    assert y.dtype == np.float32 and abs(len(y) - 44100) <= 2 and np.all(np.isfinite(y))
    # a random network changes the signal: the output is not the input resampled
    back = audio.resample(y, orig_sr=44100, target_sr=SR)[:SR]
    assert np.corrcoef(back, noisy[: len(back)])[0, 1] < 0.99


def test_enhance_runs_the_cfm_solver_and_is_seeded(noisy, tiny_enhancer_dir):
    p = preset(tiny_enhancer_dir, enhance=True, nfe=2, solver="euler", lambd=0.5, tau=0.5)
    a, sr, info = enhancer_step(noisy, SR, p, device="cpu", seed=1)
    b, _, _ = enhancer_step(noisy, SR, p, device="cpu", seed=1)
    c, _, _ = enhancer_step(noisy, SR, p, device="cpu", seed=2)
    assert sr == 44100 and info["enhancer_step"] == "enhance(nfe=2, solver=euler, lambd=0.5, tau=0.5)"
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_apply_preset_returns_to_the_clip_rate_at_target_loudness(noisy, tiny_enhancer_dir):
    y, info = apply_preset(noisy, SR, preset(tiny_enhancer_dir, denoise=True, target_lufs=-20.0), device="cpu")
    assert abs(len(y) - SR) <= 2
    assert info["loudness_out_lufs"] == pytest.approx(-20.0, abs=0.2) or audio.peak_dbfs(y) == pytest.approx(-1.0)
    assert info["enhancer_weights"] == str(tiny_enhancer_dir)


def test_missing_weights_make_the_preset_unavailable(noisy, tmp_path):
    with pytest.raises(ModelUnavailable, match=r"preset 'p' is unavailable: .*mp_rank_00_model_states\.pt"):
        apply_preset(noisy, SR, preset(tmp_path / "nothing", denoise=True))


def test_truncated_weights_name_the_file(noisy, tmp_path, tiny_enhancer_dir):
    run = tmp_path / "run"
    ckpt = enhancer_checkpoint(run)
    ckpt.parent.mkdir(parents=True)
    shutil.copy(tiny_enhancer_dir / "hparams.yaml", run / "hparams.yaml")
    with open(enhancer_checkpoint(tiny_enhancer_dir), "rb") as f:
        ckpt.write_bytes(f.read(1 << 20))
    with pytest.raises(ModelUnavailable, match=r"model_states\.pt: cannot be loaded, .*truncated or corrupt"):
        enhancer_step(noisy, SR, preset(run, denoise=True), device="cpu")


def test_weights_of_another_shape_name_hparams(noisy, tmp_path, tiny_enhancer_dir):
    run = tmp_path / "run"
    enhancer_checkpoint(run).parent.mkdir(parents=True)
    enhancer_checkpoint(run).symlink_to(enhancer_checkpoint(tiny_enhancer_dir))
    text = (tiny_enhancer_dir / "hparams.yaml").read_text().replace("univnet_nc: 8", "univnet_nc: 16")
    (run / "hparams.yaml").write_text(text)
    with pytest.raises(ModelUnavailable, match=r"does not match .*hparams\.yaml"):
        enhancer_step(noisy, SR, preset(run, denoise=True), device="cpu")


def test_nfe_above_resemble_enhance_limit(noisy, tiny_enhancer_dir):
    with pytest.raises(RenderError, match="nfe 200 is above resemble-enhance's limit of 128"):
        enhancer_step(noisy, SR, preset(tiny_enhancer_dir, enhance=True, nfe=200), device="cpu")


def test_download_offline_says_to_use_a_local_folder(noisy):
    with pytest.raises(ModelUnavailable, match=r"could not be downloaded .*set the preset's weights_dir"):
        enhancer_step(noisy, SR, preset(None, denoise=True), device="cpu")
