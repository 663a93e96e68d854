"""Load: simulated raters vote through the app's real endpoints while a render batch runs.

``app.py`` runs in its own process on loopback (127.0.0.1) with login on, as on a public
link, the demo catalog plus a tiny random XTTS checkpoint (``tiny``). The admin's page
creates and opens blind tests over the three demo checkpoints (96 trials per rater
each), times a few fresh ``tiny`` clips, then starts one render batch sized to outlast
the voting window through the **Batch render** panel (the app's single render slot).
As it starts, ``raters`` client threads, each logged in as its own rater, behave like a
rater's page, back to back with no pause: play and pause A and B, tick a reason, type a
unique comment, vote, load the next trial (a rater who finishes a test goes on with the
next one).

Checked afterwards against the vote CSV: every acknowledged vote is there exactly once
(matched by its unique comment), no row that was not acknowledged, no (rater, test,
trial) twice. Reported: errors, lost/duplicated rows, vote latency (one vote request,
which returns after the row is fsynced) at p50/p99, and that p99 as a multiple of the
p99 of one rater voting alone on the idle app in the same run. Back to back, the
simulated raters ask for more than the app serves (a person needs ~10 s per trial to
hear both clips), so the votes per second reached is the app's capacity on this machine
and the latency is the latency at that capacity.

The full setting (100 raters for 60 s) runs in ``make bench``; the test suite runs a
short one (tests/test_load.py). ``python bench/bench_load.py [--quick]`` runs it alone.
The helpers here (start the app, open a test, a rater's page) also serve the soak
benchmark and the fault tests.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tests.support.loopback import CallFailed, PageClient  # noqa: E402

#: the full setting (``make bench``)
RATERS, SECONDS = 100, 60.0
#: the short setting (``--quick`` and the test suite)
QUICK_RATERS, QUICK_SECONDS = 20, 10.0
CHECKPOINTS = ("feb1", "apr24", "apr27")
VOTE_BUTTONS = {"A": "wb-vote-a", "B": "wb-vote-b", "none": "wb-vote-none"}
REASON_CYCLE = ("accent", "naturalness", "artifacts", "")


# ---------------------------------------------------------------------------- the app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_catalog(root: Path, tiny_model: Path | None = None) -> Path:
    """A private copy of the demo catalog under ``root`` (cache, data inside it).

    With ``tiny_model`` (an XTTS checkpoint folder) it also names checkpoint ``tiny``,
    which renders with the model from the demo reference recordings.
    """
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "demo", root / "demo", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    text = (ROOT / "checkpoints.yaml").read_text()
    text = text.replace("cache_dir: .workbench/cache", f"cache_dir: {root / 'cache'}")
    text = text.replace("data_dir: .workbench ", f"data_dir: {root / 'data'} ")
    if tiny_model is not None:
        assert text.count("\ncheckpoints:\n") == 1
        text = text.replace(
            "\ncheckpoints:\n", f"\ncheckpoints:\n  tiny:\n    model_dir: {Path(tiny_model).resolve()}\n"
        )
    path = root / "checkpoints.yaml"
    path.write_text(text)
    return path


ADMIN = ("boss", "boss-pass-1")


def password(name: str) -> str:
    return f"{name}-pass-1"


def write_users(root: Path, raters: list[str]) -> Path:
    """``users.json`` with the admin :data:`ADMIN` and ``raters`` (password: :func:`password`)."""
    from workbench.users import UserStore

    store = UserStore(root / "users.json")
    store.add(*ADMIN, role="admin")
    for name in raters:
        store.add(name, password(name), role="rater")
    return store.path


def tiny_model(folder: Path) -> Path:
    """A tiny random XTTS v2 checkpoint (tests/tiny_models.py) under ``folder``."""
    from tiny_models import build_tiny_xtts

    return build_tiny_xtts(folder / "tiny-xtts", seed=0)


@dataclass
class App:
    """``app.py`` running in a subprocess."""

    proc: subprocess.Popen
    url: str
    root: Path
    config: Path
    votes: Path
    users: Path | None
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> tuple[int, int]:
        """``(VmRSS, VmHWM)`` of the app process in KiB: resident now, and its peak so far."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(rest.split()[0])
        return fields["VmRSS"], fields["VmHWM"]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout: float = 180.0) -> App:
        """Start the app again on the same catalog, votes, users and data (a new port)."""
        return start_app(self.root, self.config, self.votes, users=self.users, timeout=timeout, log_name="restarted")


def start_app(
    root: Path,
    config: Path,
    votes: Path,
    *,
    users: Path | None = None,
    timeout: float = 180.0,
    log_name: str = "app",
    env: dict | None = None,
) -> App:
    """Run ``app.py`` on loopback with ``config``, ``votes`` (and login from ``users``); return once it serves."""
    import httpx

    port = free_port()
    args = [sys.executable, str(ROOT / "app.py"), "--config", str(config), "--votes", str(votes)]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    if users is not None:
        args += ["--auth", str(users)]
    log = root / f"{log_name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(args, cwd=root, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/", timeout=2).status_code in (200, 401):
                return App(proc, url, root, config, votes, users, log)
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.25)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the app did not start within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _choices(page: PageClient, elem_id: str) -> list[str]:
    return [c[1] if isinstance(c, list | tuple) else c for c in page.props[page.find(elem_id)].get("choices", [])]


def admin_page(app: App) -> PageClient:
    """The admin's page, loaded (logged in when the app has login)."""
    page = PageClient(app.url, auth=ADMIN if app.users else None, record=False)
    page.page_load()
    return page


def open_test(app: App, title: str = "Load test", *, references=None, sentences=None) -> str:
    """Create a blind test over the demo checkpoints through the admin panel and open it; its id."""
    admin = admin_page(app)
    try:
        admin.set("wb-admin-title", title)
        admin.set("wb-admin-checkpoints", list(CHECKPOINTS))
        admin.set("wb-admin-references", list(references or _choices(admin, "wb-admin-references")))
        admin.set("wb-admin-sentences", list(sentences or _choices(admin, "wb-admin-sentences")))
        admin.set("wb-admin-presets", ["none"])
        admin.set("wb-admin-repeats", 0)
        admin.set("wb-admin-require-play", True)
        msg = admin.trigger("wb-admin-create")[0].data[0]
        test_id = re.search(r"`(ab-[0-9a-f]+)`", msg).group(1)
        admin.set("wb-admin-test", test_id)
        opened = admin.trigger("wb-admin-open")[0].data[0]
        if "is open" not in opened:
            raise RuntimeError(f"could not open {test_id}: {opened}")
        return test_id
    finally:
        admin.close()


def render_batch(
    admin: PageClient, *, checkpoint: str, references: list[str], sentences: list[str], takes: int
) -> dict:
    """Run one batch through the **Batch render** panel of a loaded admin page; its summary and timing.

    ``fresh`` counts the clips rendered now (the others came from the cache).
    """
    button = admin.find(label="Render batch", kind="button")
    dep = admin.deps_for(button, "click")[0]
    cks, refs, sents, presets, n_takes = dep["inputs"]
    admin.set(cks, [checkpoint])
    admin.set(refs, list(references))
    admin.set(sents, list(sentences))
    admin.set(presets, ["none"])
    admin.set(n_takes, takes)
    t0 = time.perf_counter()
    res = admin.call(dep["id"], [admin.values.get(i) for i in dep["inputs"]], trigger_id=button)
    seconds = time.perf_counter() - t0
    table = res.data[1] or {}
    rows = table.get("data", []) if isinstance(table, dict) else []
    cached = re.search(r"(\d+) were already in the cache", str(res.data[0]))
    return {
        "summary": res.data[0],
        "seconds": seconds,
        "clips": len(rows),
        "ok": sum("ok" in r for r in rows),
        "fresh": len(rows) - (int(cached.group(1)) if cached else 0),
    }


# ---------------------------------------------------------------------------- a rater


def listen(pc: PageClient) -> None:
    """What the rater page does for a trial: fetch A and B from the server, then say each played."""
    for slot in ("a", "b"):
        pc.fetch(pc.values[pc.find(f"wb-audio-{slot}")])
    pc.trigger("wb-audio-a", "play")
    pc.trigger("wb-audio-a", "pause")
    pc.trigger("wb-audio-b", "play")
    pc.trigger("wb-audio-b", "stop")


class RaterPage:
    """One rater's browser tab, logged in when the app has login (else the name is typed).

    Works through ``test_ids`` in order: when one is finished, the next one starts.
    """

    def __init__(self, app: App, name: str, test_ids: list[str]):
        self.app, self.name, self.test_ids = app, name, list(test_ids)
        self.current = 0
        self.pc = PageClient(app.url, auth=(name, password(name)) if app.users else None, record=False)
        self.pc.page_load()
        self.start()

    def value(self, elem_id: str):
        return self.pc.values[self.pc.find(elem_id)]

    def visible(self, elem_id: str) -> bool:
        return bool(self.pc.props[self.pc.find(elem_id)].get("visible", True))

    def start(self) -> None:
        if not self.app.users:
            self.pc.set("wb-name", self.name)
        self.pc.set("wb-test", self.test_ids[self.current])
        self.pc.trigger("wb-start")
        if self.visible("wb-instructions"):  # a first start shows the instructions before trial 1
            self.pc.trigger("wb-begin")

    def reload(self) -> None:
        """Reload the page and start the test again (resumes at the next open trial)."""
        self.pc.reload()
        self.pc.page_load()
        self.start()

    def progress(self) -> tuple[int, int]:
        """``(trial number shown, trials in the test)`` from the progress bar (0, 0 when none shows)."""
        m = re.search(r"Trial <b>(\d+)</b> / (\d+)", self.value("wb-progress") or "")
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

    def vote(self, choice: str, comment: str, reasons: list[str]) -> float:
        """Listen to both clips and vote; returns the vote request's latency (s).

        Raises :class:`CallFailed` when the app refuses or fails the vote (then it was
        not acknowledged), :class:`StopIteration` when every test is finished.
        """
        while not self.visible("wb-trial"):  # this test is finished: the next one
            self.current += 1
            if self.current >= len(self.test_ids):
                raise StopIteration(f"{self.name} finished every test")
            self.start()
        listen(self.pc)
        self.pc.set("wb-reasons", reasons)
        self.pc.set("wb-comment", comment)
        results = self.pc.trigger(VOTE_BUTTONS[choice])
        status = results[0].data[0]
        if not str(status).startswith("✓ Saved"):
            raise CallFailed(f"the vote was not acknowledged: {status!r}", results[0].fn_index)
        return results[0].seconds

    def close(self) -> None:
        self.pc.close()


@dataclass
class Crowd:
    """What a group of raters did: acknowledged votes, latencies, errors."""

    acked: dict[str, str] = field(default_factory=dict)  # comment -> rater name
    latencies: list[float] = field(default_factory=list)  # s, one per acknowledged vote
    errors: list[str] = field(default_factory=list)
    finished: int = 0  # raters who ran out of trials
    seconds: float = 0.0  # the voting window, from the first vote to the last answer
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_raters(
    app: App,
    test_ids: list[str],
    names: list[str],
    seconds: float | None = None,
    *,
    votes_each: int | None = None,
    on_start=None,
    tag: str = "",
) -> Crowd:
    """Each of ``names`` votes back to back for ``seconds`` (or ``votes_each`` votes each).

    Pages are loaded and tests started first; the window opens when all are ready
    (``on_start()`` is called then). Each vote carries a unique comment
    (``<name>#<tag><k>``). Every failure is recorded in ``Crowd.errors``; the rater
    reloads the page and goes on.
    """
    crowd = Crowd()
    ready = threading.Barrier(len(names) + 1)
    deadline = [math.inf]

    def more(k: int) -> bool:
        return k < votes_each if votes_each is not None else time.monotonic() < deadline[0]

    def work(name: str) -> None:
        page = None
        try:
            page = RaterPage(app, name, test_ids)
        except Exception as e:  # reported with the others
            with crowd.lock:
                crowd.errors.append(f"{name} start: {type(e).__name__}: {e}")
        ready.wait()
        if page is None:
            return
        k = 0
        while more(k):
            comment = f'{name}#{tag}{k} ,"q"'
            reason = REASON_CYCLE[k % len(REASON_CYCLE)]
            try:
                latency = page.vote(("A", "B", "none")[k % 3], comment, [reason] if reason else [])
            except StopIteration:
                with crowd.lock:
                    crowd.finished += 1
                break
            except Exception as e:
                with crowd.lock:
                    crowd.errors.append(f"{name} vote {k}: {type(e).__name__}: {e}")
                try:
                    page.reload()
                except Exception as e2:
                    with crowd.lock:
                        crowd.errors.append(f"{name} reload: {type(e2).__name__}: {e2}")
                    break
            else:
                with crowd.lock:
                    crowd.acked[comment] = name
                    crowd.latencies.append(latency)
            k += 1
        page.close()

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    ready.wait()
    t0 = time.monotonic()
    if on_start is not None:
        on_start()
    if seconds is not None:
        deadline[0] = t0 + seconds
    for t in threads:
        t.join(timeout=(seconds or 0) + 900)
    crowd.seconds = time.monotonic() - t0
    return crowd


def check_rows(votes: Path, acked: dict[str, str]) -> dict:
    """Compare the vote CSV with the acknowledged votes (keyed by their unique comments)."""
    from workbench.votes import read_votes

    df = read_votes(votes)
    comments = list(df["comment"])
    present = set(comments)
    lost = sorted(c for c in acked if c not in present)
    duplicated = len(comments) - len(present) + int(df.duplicated(["rater", "test_id", "trial_id"]).sum())
    unacked = sorted(c for c in present if c not in acked)
    wrong_rater = sum(1 for r in df.itertuples() if r.comment in acked and acked[r.comment] != r.rater)
    return {
        "rows": len(df),
        "lost": len(lost),
        "duplicated": duplicated,
        "unacknowledged": len(unacked),
        "wrong_rater": wrong_rater,
        "examples": (lost + unacked)[:5],
    }


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


# ---------------------------------------------------------------------------- the load test


REFERENCES = ["surya_1", "surya_2", "paul_1", "paul_2"]
SENTENCES = ["pangram", "numbers", "names", "question", "exclamation", "long", "phone", "emphasis"]


def load_test(
    raters: int,
    seconds: float,
    *,
    work: Path,
    model: Path | None = None,
    tests: int = 2,
    alone_votes: int = 30,
    login_flood: bool = True,
) -> dict:
    """Run the load test in ``work``; returns its measurements (see the module docstring).

    ``tests`` blind tests are opened (96 trials each per rater; a rater who finishes one
    goes on with the next); ``alone_votes`` votes of one rater on the idle app give the
    baseline latency. ``model``: an XTTS checkpoint folder (default: a tiny one built here).
    ``login_flood``: during the window, 8 clients also send wrong logins back to back from
    rotating addresses (every attempt reaches a password check; bench/bench_security.py).
    """
    model = model or tiny_model(work)
    root = work / "app"
    config = write_catalog(root, tiny_model=model)
    names = [f"r{i:03d}" for i in range(raters)]
    users = write_users(root, [*names, "solo"])
    app = start_app(root, config, root / "votes" / "votes.csv", users=users)
    try:
        test_ids = [open_test(app, f"Load test, part {k + 1}") for k in range(tests)]
        # Load the model and condition the references, then time fresh clips to size the batch.
        admin = admin_page(app)
        render_batch(admin, checkpoint="tiny", references=REFERENCES, sentences=SENTENCES[-1:], takes=1)
        calib = render_batch(admin, checkpoint="tiny", references=REFERENCES, sentences=SENTENCES[-1:], takes=2)
        per_clip = calib["seconds"] / max(calib["clips"] - len(REFERENCES), 1)
        alone = run_raters(app, test_ids, ["solo"], votes_each=alone_votes, tag="alone")
        # Fresh clips for 3/4 of the window at idle speed: under load each clip takes about
        # twice as long here, so the batch outlasts the window (the figure says how much of
        # the window it covered).
        want = max(8, math.ceil(0.75 * seconds / max(per_clip, 0.02)))
        takes = min(20, math.ceil(want / (len(REFERENCES) * (len(SENTENCES) - 1))))
        n_sents = min(len(SENTENCES) - 1, max(1, math.ceil(want / (len(REFERENCES) * takes))))
        batch: dict = {}

        def batch_job() -> None:
            batch["started"] = time.monotonic()
            try:
                batch.update(
                    render_batch(
                        admin, checkpoint="tiny", references=REFERENCES, sentences=SENTENCES[:n_sents], takes=takes
                    )
                )
            except Exception as e:
                batch["error"] = f"{type(e).__name__}: {e}"
            batch["ended"] = time.monotonic()

        batch_thread = threading.Thread(target=batch_job, daemon=True)
        window: dict = {}

        flood: dict = {}

        def go() -> None:
            window["start"] = time.monotonic()
            batch_thread.start()
            if login_flood:
                from bench.bench_security import flood_process

                flood["proc"] = flood_process(app.url, seconds, rotate=True)

        crowd = run_raters(app, test_ids, names, seconds, on_start=go)
        if "proc" in flood:
            import json

            out, _ = flood["proc"].communicate(timeout=seconds + 120)
            flood["counts"] = {int(k): v for k, v in json.loads(out or "{}").items()}
        window["end"] = window["start"] + crowd.seconds
        batch_thread.join(timeout=1800)
        rows = check_rows(app.votes, {**alone.acked, **crowd.acked})
        alive = app.proc.poll() is None
    finally:
        app.stop()
    busy = min(batch.get("ended", window["end"]), window["end"]) - max(
        batch.get("started", window["end"]), window["start"]
    )
    return {
        "raters": raters,
        "seconds": seconds,
        "votes": len(crowd.latencies),
        "window_s": crowd.seconds,
        "finished": crowd.finished,
        "errors": crowd.errors + alone.errors + ([f"render batch: {batch['error']}"] if "error" in batch else []),
        "p50": percentile(crowd.latencies, 50),
        "p99": percentile(crowd.latencies, 99),
        "max": max(crowd.latencies, default=float("nan")),
        "alone_p99": percentile(alone.latencies, 99),
        "rate": len(crowd.latencies) / max(crowd.seconds, 1e-9),
        "per_clip_idle_s": per_clip,
        "batch": batch,
        "batch_busy": max(0.0, busy) / max(crowd.seconds, 1e-9),
        "rows": rows,
        "server_alive": alive,
        "flood": flood.get("counts"),
    }


def _flood_text(counts: dict[int, int]) -> str:
    total = sum(counts.values())
    return f"{total} wrong logins ({counts.get(400, 0)} checked, {counts.get(429, 0)} refused as too many)"


def run(quick: bool = False) -> list[dict]:
    raters, seconds = (QUICK_RATERS, QUICK_SECONDS) if quick else (RATERS, SECONDS)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as d:
        r = load_test(raters, seconds, work=Path(d))
    rows, batch = r["rows"], r["batch"]
    ratio = r["p99"] / r["alone_p99"]
    n_err = len(r["errors"])
    return [
        {
            "name": f"load: errors, {raters} raters x {seconds:.0f} s + render batch + login flood",
            "figure": (
                f"{n_err} errors in {r['votes']} votes ({r['rate']:.0f} votes/s); render batch "
                f"{batch.get('ok', 0)}/{batch.get('clips', 0)} clips in {batch.get('seconds', 0):.0f} s, "
                f"rendering {100 * r['batch_busy']:.0f}% of the window"
            )
            + (f"; login flood: {_flood_text(r['flood'])}" if r.get("flood") is not None else "")
            + (f"; first: {r['errors'][0][:120]}" if n_err else ""),
            "value": float(n_err),
            "target": "0 errors",
            "passed": n_err == 0 and r["server_alive"] and batch.get("ok", 0) == batch.get("clips", -1),
        },
        {
            "name": "load: lost or duplicated vote rows",
            "figure": (
                f"{rows['lost']} lost, {rows['duplicated']} duplicated, {rows['unacknowledged']} not acknowledged "
                f"of {rows['rows']} rows"
            ),
            "value": float(rows["lost"] + rows["duplicated"] + rows["unacknowledged"]),
            "target": "0",
            "passed": rows["lost"] == rows["duplicated"] == rows["unacknowledged"] == rows["wrong_rater"] == 0,
        },
        {
            "name": "load: p99 vote latency vs one rater alone",
            "figure": (
                f"p99 {1e3 * r['p99']:.0f} ms (p50 {1e3 * r['p50']:.0f} ms) = {ratio:.1f}x the p99 of one rater "
                f"alone on the idle app ({1e3 * r['alone_p99']:.0f} ms)"
            ),
            "value": ratio,
            "target": "p99 <= 1 s",
            "passed": r["p99"] <= 1.0,
        },
    ]


if __name__ == "__main__":
    from bench.__main__ import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
    os._exit(0)
