"""Soak: one app process renders 200 clips and records 1,000 votes; its memory stays flat.

``app.py`` runs in its own process (login on, loopback) with the demo catalog plus a tiny
random XTTS checkpoint. After a warm-up (model loaded, references conditioned, every
sentence rendered once, every rater's page loaded and a few votes cast), the process's resident
memory is read from ``/proc/<pid>/status``: ``VmRSS`` (now) and ``VmHWM`` (its peak so
far). Then render batches of fresh ``tiny`` clips run through the **Batch render** panel
while 10 raters vote back to back through the blind-test page, until ``clips`` clips and
``votes`` votes are done; memory is sampled every half second and read again at the end.

Reported: peak RSS after warm-up and at the end (and their ratio, target <= 1.2), the
resident set at both points, the largest sample, and that every acknowledged vote is in
the CSV exactly once. (``app.py`` caps glibc's heap arenas at 2: with glibc's default
of 8 per core, freed memory stayed spread over the threads' arenas and the peak grew
1.15-1.18x here; with the cap, about 1.06x.) The full setting (200 clips, 1,000 votes) runs in ``make bench``;
the test suite runs a short one (tests/test_load.py).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_load import (  # noqa: E402
    REFERENCES,
    SENTENCES,
    admin_page,
    check_rows,
    open_test,
    render_batch,
    run_raters,
    start_app,
    tiny_model,
    write_catalog,
    write_users,
)

CLIPS, VOTES = 200, 1000
QUICK_CLIPS, QUICK_VOTES = 40, 150
RATERS = 10
#: the end/start ratio of peak RSS that counts as flat
FLAT = 1.2


def soak(
    clips: int,
    votes: int,
    *,
    work: Path,
    model: Path | None = None,
    raters: int = RATERS,
    references: list[str] = REFERENCES,
    sentences: list[str] = SENTENCES,
) -> dict:
    """Run the soak in ``work``; returns memory figures (KiB) and checks (see the module docstring).

    Clips are ``tiny`` renders of ``references`` x ``sentences`` in ever higher takes;
    the blind tests cover the same references and sentences. ``model``: an XTTS
    checkpoint folder (default: a tiny one built here).
    """
    model = model or tiny_model(work)
    root = work / "app"
    config = write_catalog(root, tiny_model=model)
    names = [f"s{i:02d}" for i in range(raters)]
    users = write_users(root, names)
    app = start_app(root, config, root / "votes" / "votes.csv", users=users)
    try:
        per_test = 3 * len(references) * len(sentences)  # 3 pairs x references x sentences
        n_tests = max(1, math.ceil(votes / raters / per_test) + 1)
        tests = [open_test(app, f"Soak {k + 1}", references=references, sentences=sentences) for k in range(n_tests)]
        # Warm-up: the model, every reference's conditioning, each rater's page and first votes.
        admin = admin_page(app)  # one admin page runs every batch, as a person would
        warm = render_batch(admin, checkpoint="tiny", references=references, sentences=sentences, takes=1)
        warm_votes = run_raters(app, tests, names, votes_each=3, tag="warm")
        rss0, hwm0 = app.rss_kib()
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    samples.append(app.rss_kib()[0])
                except (OSError, KeyError):
                    return
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # One batch per sentence and take, each adding fresh clips (lower takes are cache hits).
        batches: list[dict] = []
        errors: list[str] = []

        def render_all() -> None:
            done = 0
            for take in range(1, 21):
                for sent in sentences:
                    if done >= clips:
                        return
                    try:
                        b = render_batch(admin, checkpoint="tiny", references=references, sentences=[sent], takes=take)
                    except Exception as e:
                        errors.append(f"render batch: {type(e).__name__}: {e}")
                        return
                    batches.append(b)
                    done += b["fresh"]

        renderer = threading.Thread(target=render_all, daemon=True)
        t0 = time.monotonic()
        crowd = run_raters(app, tests, names, votes_each=math.ceil(votes / raters), on_start=renderer.start)
        renderer.join(timeout=3600)
        seconds = time.monotonic() - t0
        stop.set()
        sampler.join(timeout=5)
        rss1, hwm1 = app.rss_kib()
        rows = check_rows(app.votes, {**warm_votes.acked, **crowd.acked})
    finally:
        app.stop()
    return {
        "clips": sum(b.get("fresh", 0) for b in batches),
        "clips_ok": all(b["ok"] == b["clips"] for b in batches) and bool(batches),
        "warm_clips_ok": warm["ok"] == warm["clips"],
        "votes": len(crowd.latencies),
        "errors": crowd.errors + warm_votes.errors + errors,
        "rss_start": rss0,
        "hwm_start": hwm0,
        "rss_end": rss1,
        "hwm_end": hwm1,
        "rss_max_sampled": max(samples, default=rss1),
        "samples": samples,
        "seconds": seconds,
        "rows": rows,
    }


def run(quick: bool = False) -> list[dict]:
    clips, votes = (QUICK_CLIPS, QUICK_VOTES) if quick else (CLIPS, VOTES)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as d:
        r = soak(clips, votes, work=Path(d))
    ratio = r["hwm_end"] / r["hwm_start"]
    rows = r["rows"]
    ok = not r["errors"] and r["clips_ok"] and r["clips"] >= clips and r["votes"] >= votes
    ok = ok and rows["lost"] == rows["duplicated"] == rows["unacknowledged"] == 0
    mib = 1024.0
    return [
        {
            "name": f"soak: peak RSS, {r['clips']} clips + {r['votes']} votes in one process",
            "figure": (
                f"peak {r['hwm_end'] / mib:.0f} MiB at the end vs {r['hwm_start'] / mib:.0f} MiB after warm-up "
                f"= {ratio:.3f}x (resident {r['rss_start'] / mib:.0f} -> {r['rss_end'] / mib:.0f} MiB, "
                f"{r['seconds']:.0f} s)"
            ),
            "value": ratio,
            "target": f"<= {FLAT}x",
            "passed": ratio <= FLAT and ok,
        },
        {
            "name": "soak: errors, lost or duplicated votes",
            "figure": (
                f"{len(r['errors'])} errors; {rows['lost']} lost, {rows['duplicated']} duplicated, "
                f"{rows['unacknowledged']} not acknowledged of {rows['rows']} rows"
            )
            + (f"; first: {r['errors'][0][:120]}" if r["errors"] else ""),
            "value": float(len(r["errors"]) + rows["lost"] + rows["duplicated"] + rows["unacknowledged"]),
            "target": "0",
            "passed": ok,
        },
    ]


if __name__ == "__main__":
    from bench.__main__ import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
    os._exit(0)
