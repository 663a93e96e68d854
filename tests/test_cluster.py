"""Rendering on a real Ray cluster on loopback: two nodes (127.0.0.2, 127.0.0.3), one CPU worker each.

One cluster serves the whole module and is stopped at its end (only the processes it
started). Node 127.0.0.3 sees the ``mismatch`` checkpoint through WORKBENCH_PATH_MAP at
a folder whose model.pth differs from the head's, like a server with stale files.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tiny_models import build_tiny_xtts, write_tiny_catalog

from bench.raycluster import LoopbackRayCluster
from workbench.catalog import load_catalog
from workbench.errors import ModelUnavailable, RenderError
from workbench.render import Clip, Renderer, RenderRequest, expand_matrix

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ODD_NODE = "127.0.0.3"


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_xtts_dir):
    root = tmp_path_factory.mktemp("cluster")
    mismatch = root / "models" / "mismatch"
    shutil.copytree(tiny_xtts_dir, mismatch)
    stale = root / "node3" / "mismatch"  # what 127.0.0.3 finds at mismatch's path: other weights
    build_tiny_xtts(stale, seed=5)
    catalog = write_tiny_catalog(root / "cat", {"tiny": tiny_xtts_dir, "mismatch": mismatch})
    worker_env = {"WORKBENCH_WORKER_CACHE": str(root / "worker-cache")}
    cluster = LoopbackRayCluster(
        nodes=2,
        node_env={0: worker_env, 1: {**worker_env, "WORKBENCH_PATH_MAP": f"{mismatch}={stale}"}},
    )
    auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # loopback only; the driver in this process must match
    try:
        with cluster:
            yield root, catalog, cluster
    finally:
        if auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = auth


@pytest.fixture(scope="module")
def executor(site):
    """This process's workers on the cluster, shared by the tests that render in-process.

    Created after the CLI test: while it lives it holds every worker slot, and another
    head's workers would wait for them.
    """
    import ray

    from workbench.cluster import RayExecutor

    ex = RayExecutor(site[2].address)
    yield ex
    ex.close()
    ray.shutdown()


def renderer_for(site, executor, name: str) -> Renderer:
    """A renderer with its own cache on the module's shared cluster executor."""
    root, catalog, _ = site
    return Renderer(load_catalog(catalog), cache_dir=root / name, executor=executor)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "RAY_AUTH_MODE": "disabled", **(env or {})},
    )


def manifest_hashes(out: Path) -> dict[str, str]:
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["status"] == "ok" for r in rows), rows
    return {r["file"]: hashlib.sha256((out / r["file"]).read_bytes()).hexdigest() for r in rows}


def test_cli_batch_on_the_cluster_matches_a_local_run_clip_by_clip(site, tmp_path):
    root, catalog, cluster = site
    what = ["--config", str(catalog), "--checkpoints", "tiny", "--references", "ref_a,builtin"]
    what += ["--sentences", "short,question", "--takes", "2"]
    # through Ray Client (ray://), as from a machine outside the cluster
    on_cluster = cli("render", *what, "--out", str(tmp_path / "ray"), "--cluster", cluster.client_address)
    assert on_cluster.returncode == 0, on_cluster.stderr[-3000:] + cluster.logs()
    assert "8 of 8 clips" in on_cluster.stdout and "Ray cluster" in on_cluster.stderr
    # the same catalog with its own cache, so the local run renders everything again;
    # CPU samples depend on torch's thread count, and cluster CPU workers use one thread each
    other = write_tiny_catalog(tmp_path / "local-cat", {"tiny": load_catalog(catalog).checkpoints["tiny"].model_dir})
    what[1] = str(other)
    local = cli("render", *what, "--out", str(tmp_path / "local"), "--cluster", "local", env={"OMP_NUM_THREADS": "1"})
    assert local.returncode == 0, local.stderr[-3000:]
    assert "8 of 8 clips" in local.stdout and "(0 from the cache)" in local.stdout
    assert manifest_hashes(tmp_path / "ray") == manifest_hashes(tmp_path / "local")
    cache = load_catalog(catalog).settings.cache_dir
    sidecars = [p.read_text() for p in cache.glob("clips/*/*.json")]
    assert any('"node": "' in s and "127.0.0.2" in s for s in sidecars)
    assert any("127.0.0.3" in s for s in sidecars)  # both nodes took work


CONNECT_WITH_A_FAILED_START = """
import sys, ray
from workbench import cluster
real, calls = ray.init, []
def init(*args, **kwargs):  # the head's reply when the server for this client did not come up
    calls.append(1)
    if len(calls) <= int(sys.argv[2]):
        raise ConnectionAbortedError("Initialization failure from server:\\nTraceback (most recent call last):\\n"
                                     "  File proxier.py\\nRuntimeError: Starting Ray client server failed.")
    return real(*args, **kwargs)
ray.init = init
cluster.CLIENT_RETRY_S = 0.1
cluster.connect(sys.argv[1])
print(len(calls), sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]))
"""


def test_a_client_session_the_head_failed_to_start_is_tried_again(site):
    cluster = site[2]
    run = [sys.executable, "-c", CONNECT_WITH_A_FAILED_START, cluster.client_address]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    once = subprocess.run([*run, "1"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert once.returncode == 0, once.stderr[-3000:] + cluster.logs()
    assert "2 ['127.0.0.2', '127.0.0.3']" in once.stdout  # connected on the second try, to the real cluster
    assert "trying again" in once.stderr and "Starting Ray client server failed" in once.stderr
    never = subprocess.run([*run, "9"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert never.returncode != 0
    assert "could not start a server for this client (3 tries" in never.stderr
    assert "RuntimeError: Starting Ray client server failed." in never.stderr  # the last line: the real cause


def test_renderers_in_one_process_share_one_set_of_workers(site):
    _, catalog, cluster = site
    cat = load_catalog(catalog)
    first, second = Renderer(cat, cluster=cluster.address), Renderer(cat, cluster=cluster.address)
    assert first.executor is second.executor and first.executor.parallel
    first.close()  # frees the slots for the tests below; a later renderer gets new workers
    third = Renderer(cat, cluster=cluster.address)
    assert third.executor is not first.executor and not third.executor.closed
    third.close()


def test_a_worker_killed_mid_batch_has_its_clip_retried_elsewhere(site, executor):
    cluster = site[2]
    r = renderer_for(site, executor, "kill-cache")
    reqs = expand_matrix(r.catalog, checkpoints="tiny", references="ref_a,ref_b", sentences="short,question", takes=2)
    victims = []

    def on_result(req, result):
        if not victims:  # after the first clip: kill a worker that is rendering now
            busy = [w for w in executor.workers() if w["busy"]]
            victims.append(busy[0] if busy else executor.workers()[0])
            os.kill(victims[0]["pid"], signal.SIGKILL)

    results = r.render_many(reqs, on_result=on_result)
    assert victims and all(isinstance(x, Clip) for x in results), [str(x) for x in results]
    assert r.stats["renders"] == len(reqs)  # each clip written into the cache once
    assert len(list((r.cache_dir / "clips").glob("*/*.flac"))) == len(reqs)
    pids = {w["pid"] for w in executor.workers()}
    assert victims[0]["pid"] not in pids and len(pids) == 2  # the dead worker was replaced

    status = cli("cluster", "status", "--cluster", cluster.address)
    assert status.returncode == 0, status.stderr[-2000:]
    assert "127.0.0.2" in status.stdout and "127.0.0.3" in status.stdout and "tiny" in status.stdout


def test_a_node_with_different_model_files_fails_those_items_naming_the_node(site, executor):
    r = renderer_for(site, executor, "mismatch-cache")
    reqs = [RenderRequest("mismatch", ref, s) for ref in ("ref_a", "ref_b") for s in ("short", "question")]
    reqs += [RenderRequest("tiny", "ref_b", s) for s in ("short", "question")]
    results = r.render_many(reqs)
    failed = [(q, x) for q, x in zip(reqs, results, strict=True) if not isinstance(x, Clip)]
    assert failed, "the node with other model files never got an item"
    for q, x in failed:
        assert q.checkpoint == "mismatch" and isinstance(x, ModelUnavailable)
        assert ODD_NODE in str(x) and "differ from the head's" in str(x)
    for q, x in zip(reqs, results, strict=True):
        if q.checkpoint == "tiny":
            assert isinstance(x, Clip)
        elif isinstance(x, Clip):  # rendered where the files are the head's
            assert "127.0.0.2" in x.provenance["node"]


def _batch_in_thread(r: Renderer, reqs, cancel=None):
    done_order: list[RenderRequest] = []
    first = threading.Event()
    out = {}

    def on_result(req, result):
        done_order.append(req)
        first.set()

    t = threading.Thread(target=lambda: out.update(results=r.render_many(reqs, on_result=on_result, cancel=cancel)))
    t.start()
    return t, done_order, first, out


def test_an_interactive_render_goes_ahead_of_the_rest_of_a_batch(site, executor):
    r = renderer_for(site, executor, "priority-cache")
    batch = expand_matrix(r.catalog, checkpoints="tiny", references="ref_a,ref_b", sentences="all", takes=2)
    t, done_order, first, out = _batch_in_thread(r, batch)
    assert first.wait(300)
    before = len(done_order)
    clip = r.render(RenderRequest("tiny", "builtin", "question", take=3))  # interactive by default
    during = len(done_order) - before
    t.join(400)
    assert not clip.from_cache and all(isinstance(x, Clip) for x in out["results"])
    # each of the 2 workers finished at most the clip it was on (and one more while the
    # interactive clip rendered on the other); the rest of the batch came after
    assert during <= 4 and len(batch) - (before + during) >= 4


def test_cancel_stops_a_batch_within_one_clip_per_worker(site, executor):
    r = renderer_for(site, executor, "cancel-cache")
    batch = expand_matrix(r.catalog, checkpoints="tiny", references="ref_a,ref_b", sentences="all", takes=2)
    cancel = threading.Event()
    t, done_order, first, out = _batch_in_thread(r, batch, cancel)
    assert first.wait(300)
    cancel.set()
    at_cancel = len(done_order)
    t.join(400)
    results = out["results"]
    rendered = [x for x in results if isinstance(x, Clip)]
    cancelled = [x for x in results if isinstance(x, RenderError) and "cancelled" in str(x)]
    # after the cancel only clips already on a worker finish (2 workers; a clip finished
    # just before may not have been counted yet, so at most 2 more per worker)
    assert len(rendered) <= at_cancel + 4 and len(rendered) + len(cancelled) == len(batch)
    assert len(cancelled) >= len(batch) - at_cancel - 4 >= 6


def test_a_node_lost_mid_batch_has_its_clips_retried_on_the_others(site, executor):
    """Last in the module: node 127.0.0.3 is gone afterwards."""
    cluster = site[2]
    r = renderer_for(site, executor, "node-loss-cache")
    reqs = expand_matrix(r.catalog, checkpoints="tiny", references="ref_a,ref_b", sentences="short,question", takes=2)
    lost = []

    def on_result(req, result):
        if not lost:  # the server at 127.0.0.3 goes down (raylet and its workers) after the first clip
            cluster.kill_node(ODD_NODE)
            lost.append(len([w for w in executor.workers() if ODD_NODE in w["node"]]))

    results = r.render_many(reqs, on_result=on_result)
    assert lost == [1] and all(isinstance(x, Clip) for x in results), [str(x) for x in results]
    assert r.stats["renders"] == len(reqs)  # each clip written into the cache once
    assert len(list((r.cache_dir / "clips").glob("*/*.flac"))) == len(reqs)
