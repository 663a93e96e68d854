"""fp16 weights: conversion of the tiny XTTS, the comparison, the CLI verdict and registration."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import write_tiny_catalog

from workbench import fp16
from workbench.catalog import load_catalog
from workbench.cli import main as cli
from workbench.errors import RenderError

SR = 24000


def test_conversion_halves_model_pth_and_keeps_the_other_files(tmp_path, tiny_xtts_dir):
    import torch

    conv = fp16.convert_checkpoint(tiny_xtts_dir, tmp_path / "half")
    assert 0.45 < conv.size_ratio < 0.55 and conv.tensors_cast > 100 and conv.dropped == []
    state = torch.load(tmp_path / "half" / "model.pth", weights_only=True)["model"]
    floats = [v for v in state.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    for name in ("config.json", "vocab.json", "speakers_xtts.pth"):
        assert (tmp_path / "half" / name).read_bytes() == (tiny_xtts_dir / name).read_bytes()
    with pytest.raises(RenderError, match="exists already"):
        fp16.convert_checkpoint(tiny_xtts_dir, tmp_path / "half")
    with pytest.raises(RenderError, match="needs its own folder"):
        fp16.convert_checkpoint(tiny_xtts_dir, tiny_xtts_dir)


def test_training_state_is_dropped(tmp_path, tiny_xtts_dir):
    import shutil

    import torch

    src = tmp_path / "trained"
    shutil.copytree(tiny_xtts_dir, src)
    ckpt = torch.load(src / "model.pth", weights_only=True)
    ckpt["optimizer"] = {"state": {0: {"exp_avg": torch.zeros(1000)}}}
    torch.save(ckpt, src / "model.pth")
    conv = fp16.convert_checkpoint(src, tmp_path / "half")
    assert conv.dropped == ["optimizer"]
    assert set(torch.load(tmp_path / "half" / "model.pth", weights_only=True)) == {"model"}


def voice(seconds: float = 1.5, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * y / np.abs(y).max() + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def test_compare_pair_weighs_the_difference_against_take_variation():
    a = voice()
    same = fp16.compare_pair(a, a.copy(), voice(f0=150.0, seed=1), sr=SR)
    assert same["match"] == "identical" and same["below_take_variation"] and same["mcd_db"] == 0.0
    assert same["similarity"] == pytest.approx(1.0, abs=1e-6)
    far = fp16.compare_pair(a, voice(f0=300.0, seed=2), a + np.float32(0.002), sr=SR)
    assert far["match"] == "different" and not far["below_take_variation"]
    assert far["mcd_db"] > far["take_mcd_db"]


def test_cli_converts_renders_both_and_prints_a_verdict(tmp_path, tiny_xtts_dir, capsys):
    cat_path = write_tiny_catalog(tmp_path / "cat", {"tiny": tiny_xtts_dir})
    out = tmp_path / "cat" / "models" / "tiny-fp16"
    rc = cli(["fp16", "tiny", "--config", str(cat_path), "--out", str(out), "--references", "ref_a",
              "--sentences", "short", "--device", "cpu", "--register"])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "size ratio 0.50" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("ref_a ")]
    assert [ln.split()[1] for ln in lines] == ["short"]  # the grid as selected (3 x 3 by default)
    assert all(ln.rstrip().endswith(("yes", "NO")) for ln in lines)
    assert "verdict: " in text and "model.pth 0.50x the size" in text
    cat = load_catalog(cat_path)  # registered, valid, same settings
    assert cat.checkpoints["tiny-fp16"].model_dir == out
    assert cat.checkpoints["tiny-fp16"].inference == cat.checkpoints["tiny"].inference
    assert f"added checkpoint tiny-fp16 to {cat_path.with_name('checkpoints.added.yaml')}" in text
    assert "tiny-fp16" not in cat_path.read_text()  # the team's catalog file is left alone


def test_cli_refuses_a_checkpoint_without_model_files(demo_catalog_path, capsys):
    rc = cli(["fp16", "feb1", "--config", str(demo_catalog_path), "--out", str(demo_catalog_path.parent / "x")])
    assert rc == 1
    assert "fp16 needs its XTTS model files, but it renders from demo" in capsys.readouterr().err


def test_register_adds_to_the_overlay_and_refuses_a_name_that_exists(tmp_path, tiny_xtts_dir):
    cat_path = write_tiny_catalog(tmp_path / "cat", {"tiny": tiny_xtts_dir})
    cat = load_catalog(cat_path)
    fp16.register(cat_path, fp16.derived_checkpoint(cat.checkpoint("tiny"), tiny_xtts_dir))
    assert load_catalog(cat_path).checkpoints["tiny-fp16"].model_dir == tiny_xtts_dir
    from workbench.errors import CatalogError

    with pytest.raises(CatalogError, match="tiny-fp16 exists already"):
        fp16.register(cat_path, fp16.derived_checkpoint(cat.checkpoint("tiny"), tiny_xtts_dir))
