"""Executors without a cluster: the local default, cancelling a batch, cluster settings and paths.

The Ray executor itself runs against a real loopback cluster in tests/test_cluster.py.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from tiny_models import write_tiny_catalog

from workbench.catalog import load_catalog
from workbench.cli import main as cli
from workbench.cluster import RenderWorker, _local_path
from workbench.enhance import enhancer_checkpoint
from workbench.errors import CatalogError, ModelUnavailable, RenderError
from workbench.executor import LocalExecutor
from workbench.render import Clip, Renderer, RenderRequest, expand_matrix


def test_the_default_executor_is_local_and_needs_no_ray(demo_catalog):
    r = Renderer(demo_catalog)
    assert isinstance(r.executor, LocalExecutor) and not r.executor.parallel
    assert isinstance(Renderer(demo_catalog, cluster="local").executor, LocalExecutor)


def test_cancel_stops_a_local_batch_after_the_current_clip(demo_catalog):
    r = Renderer(demo_catalog)
    reqs = expand_matrix(demo_catalog, checkpoints="feb1", references="all", sentences="all")
    cancel = threading.Event()
    results = r.render_many(reqs, on_result=lambda q, x: cancel.set(), cancel=cancel)
    assert isinstance(results[0], Clip) and len(results) == len(reqs) > 2
    assert all(isinstance(x, RenderError) and "cancelled before it was rendered" in str(x) for x in results[1:])
    assert r.stats["renders"] == 1


@pytest.mark.parametrize("value", ["ray://gpu1:10001", "gpu1.lab:6379", "auto", "local", "10.0.0.5:6379"])
def test_cluster_setting_accepts_addresses(demo_catalog_path, value):
    path = demo_catalog_path
    path.write_text(path.read_text().replace("  cluster: null", f"  cluster: {value}", 1))
    assert load_catalog(path).settings.cluster == value


@pytest.mark.parametrize("value", ["gpu1", "http://gpu1:80", "ray://gpu1", "gpu 1:6379"])
def test_cluster_setting_refuses_other_values_naming_the_field(demo_catalog_path, value):
    path = demo_catalog_path
    path.write_text(path.read_text().replace("  cluster: null", f"  cluster: '{value}'", 1))
    with pytest.raises(CatalogError, match=r"settings\.cluster"):
        load_catalog(path)


def test_cluster_status_without_a_cluster_says_how_to_name_one(demo_catalog_path, capsys):
    assert cli(["cluster", "status", "--config", str(demo_catalog_path)]) == 1
    assert "no cluster configured: give --cluster ray://HOST:PORT" in capsys.readouterr().err


def test_path_map_translates_head_paths_to_a_node_s_paths():
    pairs = [("/srv/models", "/data/models"), ("/srv/enh", "/mnt/enh")]
    assert _local_path(Path("/srv/models/feb1"), pairs) == Path("/data/models/feb1")
    assert _local_path(Path("/srv/models"), pairs) == Path("/data/models")
    assert _local_path(Path("/srv/models-old/feb1"), pairs) == Path("/srv/models-old/feb1")  # prefix, not substring
    assert _local_path(Path("/elsewhere"), pairs) == Path("/elsewhere") and _local_path(None, pairs) is None


def test_a_cluster_node_refuses_enhancer_weights_that_differ_from_the_heads(
    tmp_path, tiny_xtts_dir, tiny_enhancer_dir, monkeypatch
):
    cat = load_catalog(write_tiny_catalog(tmp_path / "cat", {"tiny": tiny_xtts_dir}, enhancer_dir=tiny_enhancer_dir))
    plan = Renderer(cat, device="cpu").plan(RenderRequest("tiny", "ref_a", "short", enhancement="denoise"))
    node = RenderWorker.__new__(RenderWorker)  # the node's checks, without starting Ray
    node.node, node.cache = "node-b (127.0.0.3)", tmp_path / "worker-cache"
    here = tmp_path / "node-enhancer"
    shutil.copytree(tiny_enhancer_dir, here)
    monkeypatch.setenv("WORKBENCH_PATH_MAP", f"{tiny_enhancer_dir.resolve()}={here}")
    assert node._localize(plan, None).preset.weights_dir == here  # the same weights at another path
    weights = enhancer_checkpoint(here)
    weights.write_bytes(weights.read_bytes() + b"\0")  # retrained on this node only
    with pytest.raises(ModelUnavailable, match=r"node node-b .* preset 'denoise', enhancer weights: .*differ"):
        node._localize(plan, None)
