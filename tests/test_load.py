"""Load and soak on short settings: the app in its own process on loopback, raters driving
its pages, a tiny XTTS checkpoint rendering through the batch panel.

The full settings (100 raters for 60 s; 200 clips and 1,000 votes) and their targets run
in ``make bench`` (bench/bench_load.py, bench/bench_soak.py); here the same code runs
shorter and checks what must hold at any size: no errors, no vote lost, duplicated or
recorded without being acknowledged, renders and votes at the same time, memory measured.
Latency and memory figures are printed (``pytest -s``), not asserted against the clock.
"""

from __future__ import annotations

from bench.bench_load import REFERENCES, SENTENCES, load_test
from bench.bench_soak import FLAT, soak


def _clean(rows: dict) -> None:
    assert rows["lost"] == 0, rows["examples"]
    assert rows["duplicated"] == 0
    assert rows["unacknowledged"] == 0, rows["examples"]
    assert rows["wrong_rater"] == 0


def test_raters_voting_during_a_render_batch_lose_nothing(tmp_path, tiny_xtts_dir):
    r = load_test(20, 10.0, work=tmp_path, model=tiny_xtts_dir, tests=1, alone_votes=10)
    print(
        f"\n20 raters x 10 s: {r['votes']} votes ({r['rate']:.1f}/s), vote latency p50 {1e3 * r['p50']:.0f} ms, "
        f"p99 {1e3 * r['p99']:.0f} ms (one rater alone: p99 {1e3 * r['alone_p99']:.0f} ms); "
        f"render batch {r['batch'].get('ok')}/{r['batch'].get('clips')} clips, busy {100 * r['batch_busy']:.0f}%"
    )
    assert r["errors"] == []
    assert r["server_alive"]
    assert r["votes"] >= 20  # every rater got votes in
    _clean(r["rows"])
    assert r["rows"]["rows"] == r["votes"] + 10
    batch = r["batch"]
    assert batch["clips"] > 0 and batch["ok"] == batch["clips"] and batch["fresh"] > 0
    assert r["batch_busy"] > 0.5  # the batch rendered through most of the voting window


def test_memory_stays_flat_over_renders_and_votes(tmp_path, tiny_xtts_dir):
    r = soak(24, 120, work=tmp_path, model=tiny_xtts_dir, raters=6, references=REFERENCES[:2], sentences=SENTENCES[:4])
    ratio = r["hwm_end"] / r["hwm_start"]
    print(
        f"\n{r['clips']} clips + {r['votes']} votes in one process: peak RSS {r['hwm_start'] / 1024:.0f} MiB after "
        f"warm-up, {r['hwm_end'] / 1024:.0f} MiB at the end ({ratio:.3f}x); resident {r['rss_start'] / 1024:.0f} -> "
        f"{r['rss_end'] / 1024:.0f} MiB"
    )
    assert r["errors"] == []
    assert r["clips"] >= 24 and r["clips_ok"] and r["warm_clips_ok"]
    assert r["votes"] >= 120
    _clean(r["rows"])
    assert len(r["samples"]) >= 4 and r["hwm_start"] >= r["rss_start"] > 0
    assert ratio <= FLAT
