"""Rendering on a Ray cluster on loopback: throughput, interactive latency under a batch, votes.

A real cluster (``bench/raycluster.py``: head on 127.0.0.2, nodes on 127.0.0.3, ...,
one CPU worker slot each, one torch thread per worker) renders the tiny random XTTS
checkpoint. Every figure is a ratio of two measurements in the same run:

- **throughput**: fresh clips per second with two workers (two nodes) vs one worker,
  each timed after every worker has loaded the model;
- **interactive latency**: three interactive clips in a row on the two-worker cluster
  while a batch is running vs on the idle cluster (medians); the first one waits for a
  worker to finish its clip, the next ones find the worker the batch leaves free for
  ``INTERACTIVE_HOLD_S`` after an interactive request;
- **vote p99**: ``raters`` raters vote back to back through the app's blind-test page
  (``bench/bench_load.py``'s helpers, app in its own process with ``settings.cluster``)
  with no batch, then while a render batch runs on the cluster through the admin's Batch
  render panel. On this 2-core machine the cluster's workers share the cores with the
  app, so this uses one worker and leaves the other core to the app.

``python bench/bench_cluster.py [--quick]`` runs it alone.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench.raycluster import LoopbackRayCluster  # noqa: E402


def _renderer(catalog_path: Path, cache: Path, address: str):
    from workbench.catalog import load_catalog
    from workbench.render import Renderer

    return Renderer(load_catalog(catalog_path), cache_dir=cache, cluster=address)


def _warm(r, n_workers: int) -> None:
    """Load the model and condition the references on every worker (clips that are not timed)."""
    from workbench.render import RenderRequest

    warm = [RenderRequest("tiny", ref, "short", take=900 + k) for k in range(n_workers) for ref in ("ref_a", "ref_b")]
    r.render_many(warm)


def _timed_batch(r, reqs) -> float:
    t0 = time.perf_counter()
    out = r.render_many(reqs)
    bad = [x for x in out if not hasattr(x, "path")]
    if bad:
        raise RuntimeError(f"{len(bad)} clips failed: {bad[0]}")
    return time.perf_counter() - t0


def throughput(work: Path, catalog: Path, n_clips: int) -> dict:
    """Seconds for ``n_clips`` fresh clips with one worker, then with two."""
    import ray

    from workbench.render import RenderRequest

    reqs = [
        RenderRequest("tiny", ref, s, take=t)
        for t in range(1, 100)
        for ref in ("ref_a", "ref_b")
        for s in ("short", "question")
    ]
    out = {}
    with LoopbackRayCluster(nodes=1) as c:
        r = _renderer(catalog, work / "cache-1", c.address)
        _warm(r, 1)
        out["one"] = _timed_batch(r, reqs[:n_clips])
        c.add_node(1)
        r.close()
        r = _renderer(catalog, work / "cache-2", c.address)  # new workers: one per node now
        _warm(r, 2)
        out["two"] = _timed_batch(r, reqs[:n_clips])
        # interactive latency on the same two-worker cluster: idle, then during a batch
        from workbench.executor import INTERACTIVE

        def interactive(k: int) -> float:
            t0 = time.perf_counter()
            r.render(RenderRequest("tiny", "ref_a", "question", take=500 + k), priority=INTERACTIVE)
            return time.perf_counter() - t0

        idle = [interactive(k) for k in range(3)]
        # past the interactive hold of the idle renders: the batch starts on every worker
        from workbench.cluster import INTERACTIVE_HOLD_S

        time.sleep(INTERACTIVE_HOLD_S + 1)
        started = threading.Event()
        batch = reqs[n_clips : n_clips + 24]
        t = threading.Thread(target=lambda: r.render_many(batch, on_result=lambda q, x: started.set()))
        t.start()
        started.wait(600)
        busy = [interactive(10 + k) for k in range(3)]
        t.join(1200)
        out["idle"], out["busy"], out["first"] = statistics.median(idle), statistics.median(busy), busy[0]
        r.close()
        ray.shutdown()
    return out


def votes_during_batch(work: Path, model: Path, raters: int, seconds: float) -> dict:
    """Vote p99 of ``raters`` raters without a batch, then during a cluster batch (app with settings.cluster)."""
    from bench import bench_load as bl

    with LoopbackRayCluster(nodes=1) as c:
        root = work / "app"
        config = bl.write_catalog(root, tiny_model=model)
        text = config.read_text()
        assert "  cluster: null" in text
        config.write_text(text.replace("  cluster: null", f"  cluster: {c.address}", 1))
        names = [f"r{i:03d}" for i in range(raters)]
        users = bl.write_users(root, names)
        env = {"RAY_AUTH_MODE": "disabled"}
        app = bl.start_app(root, config, root / "votes" / "votes.csv", users=users, env=env)
        try:
            test_ids = [bl.open_test(app, f"Cluster vote test {k + 1}") for k in range(2)]
            admin = bl.admin_page(app)
            bl.render_batch(admin, checkpoint="tiny", references=bl.REFERENCES, sentences=bl.SENTENCES[-1:], takes=1)
            quiet = bl.run_raters(app, test_ids, names, seconds, tag="quiet")
            batch: dict = {}
            thread = threading.Thread(
                target=lambda: batch.update(
                    bl.render_batch(
                        admin, checkpoint="tiny", references=bl.REFERENCES, sentences=bl.SENTENCES[:-1], takes=6
                    )
                ),
                daemon=True,
            )
            busy = bl.run_raters(app, test_ids, names, seconds, on_start=thread.start, tag="busy")
            thread.join(timeout=1800)
        finally:
            app.stop()
    return {
        "quiet_p99": bl.percentile(quiet.latencies, 99),
        "busy_p99": bl.percentile(busy.latencies, 99),
        "votes": (len(quiet.latencies), len(busy.latencies)),
        "errors": quiet.errors + busy.errors,
        "batch": batch,
    }


def run(quick: bool = False) -> list[dict]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # loopback only
    from tiny_models import build_tiny_xtts, write_tiny_catalog

    n_clips = 8 if quick else 16
    raters, seconds = (20, 8.0) if quick else (50, 20.0)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as d:
        work = Path(d)
        model = build_tiny_xtts(work / "tiny", seed=0)
        catalog = write_tiny_catalog(work / "cat", {"tiny": model})
        t = throughput(work, catalog, n_clips)
        v = votes_during_batch(work, model, raters, seconds)
    speedup = t["one"] / t["two"]
    lat = t["busy"] / t["idle"]
    vote = v["busy_p99"] / v["quiet_p99"]
    return [
        {
            "name": "cluster: throughput, 2 workers vs 1",
            "figure": f"{speedup:.2f}x ({n_clips} fresh clips: {t['one']:.1f} s on 1 worker, {t['two']:.1f} s on 2)",
            "value": speedup,
            "target": ">= 1.6x",
            "passed": speedup >= 1.6,
        },
        {
            "name": "cluster: interactive latency during a batch vs idle",
            "figure": (
                f"{lat:.2f}x (median of 3 in a row: {t['busy']:.2f} s during a batch, the first "
                f"{t['first']:.2f} s; {t['idle']:.2f} s idle; 2 workers)"
            ),
            "value": lat,
            "target": "<= 2x",
            "passed": lat <= 2.0,
        },
        {
            "name": f"cluster: vote p99, {raters} raters during a cluster batch vs none",
            "figure": (
                f"{vote:.2f}x (p99 {1e3 * v['busy_p99']:.0f} ms during a batch of {v['batch'].get('clips', 0)} clips, "
                f"{1e3 * v['quiet_p99']:.0f} ms without; {v['votes'][0]}+{v['votes'][1]} votes, "
                f"{len(v['errors'])} errors, {seconds:.0f} s each)"
            ),
            "value": vote,
            "target": "<= 2x",
            "passed": vote <= 2.0 and not v["errors"],
        },
    ]


if __name__ == "__main__":
    from bench.__main__ import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
