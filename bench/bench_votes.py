"""Blind-test voting under load: 50 raters voting at once over loopback.

Starts ``app.py`` on the demo catalog in a separate process (no login, names typed),
creates and opens a test through the admin panel, then 50 client threads each work
through trials the way the page does (play A, play B, vote, load the next trial).

Three phases on the same 50 sessions:

- paced: 50 raters voting at once, each listening 1-2.5 s per clip and taking 0.5-1.5 s
  to decide (about three times faster than people with real clips): vote latency
  p50/p99, the issue's target;
- burst: all 50 click a vote button at the same instant, a few times;
- saturated: no pauses at all, to measure how many votes per second the app takes
  while every client also plays both clips and loads its next trial.

Vote latency is the vote request alone, from click to "saved" (the handler answers
after the row is fsynced). Finally the CSV is checked: every acknowledged vote present
exactly once, no other rows. For scale it also times bare :meth:`VoteStore.append`
calls in this process (one fsync each).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from tests.support.loopback import PageClient

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 50


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_app(root: Path) -> tuple[subprocess.Popen, str]:
    shutil.copytree(ROOT / "demo", root / "demo", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    text = (ROOT / "checkpoints.yaml").read_text()
    text = text.replace("cache_dir: .workbench/cache", f"cache_dir: {root / 'cache'}")
    text = text.replace("data_dir: .workbench ", f"data_dir: {root / 'data'} ")
    (root / "checkpoints.yaml").write_text(text)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--config", str(root / "checkpoints.yaml"), "--port", str(port)]
        + ["--votes", str(root / "votes.csv")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "server.log", "w"),  # noqa: SIM115 - closed with the process
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/config", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"app did not start; see {root / 'server.log'}")


def _open_test(url: str) -> str:
    admin = PageClient(url, record=False)
    admin.page_load()
    admin.set("wb-admin-title", "Load test")
    admin.set("wb-admin-checkpoints", ["feb1", "apr24", "apr27"])
    admin.set("wb-admin-references", ["surya_1", "surya_2", "paul_1", "paul_2"])
    admin.set("wb-admin-sentences", ["pangram", "numbers", "names", "question"])
    admin.set("wb-admin-presets", ["none"])
    msg = admin.trigger("wb-admin-create")[0].data[0]
    test_id = msg.split("`")[1]
    admin.set("wb-admin-test", test_id)
    admin.trigger("wb-admin-open")
    return test_id


def _store_append_rate(n: int) -> float:
    from workbench.votes import Vote, VoteStore

    with tempfile.TemporaryDirectory() as d:
        store = VoteStore(Path(d) / "v.csv")
        t0 = time.perf_counter()
        for i in range(n):
            store.append(
                Vote.create(
                    rater="r",
                    test_id="ab-00000000",
                    trial_id=f"t{i}",
                    reference="x",
                    sentence_id="y",
                    checkpoint_a="a",
                    checkpoint_b="b",
                    preset_a="none",
                    preset_b="none",
                    a_side="A",
                    choice="A",
                )
            )
        return n / (time.perf_counter() - t0)


def _pctl(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q)) if xs else float("nan")


def run(quick: bool = False) -> list[dict]:
    from workbench.votes import read_votes

    paced_s = 12.0 if quick else 40.0
    saturated_votes = 3 if quick else 6
    bursts = 2 if quick else 4
    root = Path(tempfile.mkdtemp(prefix="bench-votes-"))
    proc, url = _start_app(root)
    try:
        test_id = _open_test(url)
        raters = []
        for i in range(CLIENTS):
            pc = PageClient(url, record=False)
            pc.page_load()
            pc.set("wb-name", f"rater{i:02d}")
            pc.set("wb-test", test_id)
            pc.trigger("wb-start")
            pc.trigger("wb-begin")  # past the instructions
            raters.append(pc)
        lock = threading.Lock()
        acked = [0]
        errors: list[BaseException] = []

        def fetch_both(pc: PageClient) -> None:  # the page fetches each clip before it plays
            for slot in ("a", "b"):
                pc.fetch(pc.values[pc.find(f"wb-audio-{slot}")])

        def vote(i: int, pc: PageClient, k: int) -> float:
            res = pc.trigger(("wb-vote-a", "wb-vote-b", "wb-vote-none")[(i + k) % 3])
            with lock:
                acked[0] += 1
            return res[0].seconds  # the vote handler: joins, appends + fsyncs, answers "saved"

        def phase(body) -> tuple[list[float], float]:
            lat: list[float] = []
            barrier = threading.Barrier(CLIENTS + 1)

            def worker(i, pc):
                try:
                    barrier.wait()
                    body(i, pc, lat)
                except BaseException as e:
                    errors.append(e)

            threads = [threading.Thread(target=worker, args=(i, pc)) for i, pc in enumerate(raters)]
            for t in threads:
                t.start()
            barrier.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
            return lat, time.perf_counter() - t0

        play_lat: list[float] = []

        def paced(i, pc, lat):
            # 50 raters at once, about 3x faster than people: 1-2.5 s per clip, 0.5-1.5 s to decide
            rng = np.random.default_rng(i)
            end = time.monotonic() + paced_s
            k = 0
            while time.monotonic() < end:
                fetch_both(pc)
                pc.trigger("wb-audio-a", "play")
                time.sleep(rng.uniform(1.0, 2.5))
                played = pc.trigger("wb-audio-b", "play")[0].seconds  # a request that does next to nothing
                with lock:
                    play_lat.append(played)
                time.sleep(rng.uniform(1.0, 2.5) + rng.uniform(0.5, 1.5))
                t = vote(i, pc, k)
                with lock:
                    lat.append(t)
                k += 1

        def saturated(i, pc, lat):
            for k in range(saturated_votes):  # no pauses at all: what the server can take
                fetch_both(pc)
                pc.trigger("wb-audio-a", "play")
                pc.trigger("wb-audio-b", "play")
                t = vote(i, pc, k)
                with lock:
                    lat.append(t)

        burst_barrier = threading.Barrier(CLIENTS)

        def burst(i, pc, lat):
            for k in range(bursts):  # everyone clicks at the same instant
                fetch_both(pc)
                pc.trigger("wb-audio-a", "play")
                pc.trigger("wb-audio-b", "play")
                burst_barrier.wait()
                t = vote(i, pc, k)
                with lock:
                    lat.append(t)

        load_before = os.getloadavg()[0]
        paced_lat, paced_wall = phase(paced)
        burst_lat, _ = phase(burst)
        sat_lat, sat_wall = phase(saturated)
        df = read_votes(root / "votes.csv")
        expected = acked[0]
        dup = int(df.duplicated(["rater", "test_id", "trial_id"]).sum()) + int(df["vote_id"].duplicated().sum())
        lost = expected - (len(df) - dup)
        store_rate = _store_append_rate(200)
        load_after = os.getloadavg()[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)
    p99 = _pctl(paced_lat, 99)
    sat_rate = len(sat_lat) / sat_wall
    cores = os.cpu_count() or 1
    load = f"load average {load_before:.1f} -> {load_after:.1f} on {cores} cores"
    return [
        {
            "name": f"vote latency, {CLIENTS} raters voting at once over loopback",
            "figure": (
                f"p99 {p99:.0f} ms, p50 {_pctl(paced_lat, 50):.0f} ms over {len(paced_lat)} votes "
                f"({len(paced_lat) / paced_wall:.1f} votes/s); a no-op player event meanwhile: "
                f"p99 {_pctl(play_lat, 99):.0f} ms, so a vote costs {p99 / _pctl(play_lat, 99):.1f}x "
                f"the app's floor ({load})"
            ),
            "value": p99,
            "target": "p99 < 100 ms",
            "passed": p99 < 100,
        },
        {
            "name": f"{CLIENTS} votes at the same instant",
            "figure": f"p99 {_pctl(burst_lat, 99):.0f} ms, p50 {_pctl(burst_lat, 50):.0f} ms ({bursts} bursts)",
            "value": _pctl(burst_lat, 99),
            "target": "all saved < 1 s",
            "passed": _pctl(burst_lat, 100) < 1000,
        },
        {
            "name": f"votes per second, {CLIENTS} clients without pauses",
            "figure": (
                f"{sat_rate:.0f} votes/s incl. playing both clips and loading the next trial "
                f"(vote p99 then {_pctl(sat_lat, 99):.0f} ms; bare fsynced appends: {store_rate:.0f}/s)"
            ),
            "value": sat_rate,
            "target": f">= {CLIENTS / 5:.0f} votes/s ({CLIENTS} raters, one vote each 5 s)",
            "passed": sat_rate >= CLIENTS / 5,
        },
        {
            "name": "lost or duplicated vote rows",
            "figure": f"{lost} lost, {dup} duplicated of {expected} acknowledged votes",
            "value": float(lost + dup),
            "target": "0",
            "passed": lost == 0 and dup == 0 and len(df) == expected,
        },
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
    os._exit(0)
