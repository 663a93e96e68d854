"""Shared fixtures: one per resource. Feature-specific fixtures live in their test files."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


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
