"""Quality-estimate and post-processing-chain benchmarks (ratios measured in one run).

- quality estimate per clip (DNSMOS P.835 through speechmos' ONNX models, silences,
  clipping, speaker similarity to the reference) as a fraction of the clip's duration, in
  CPU time of this process (all its threads; the wall clock is printed too and depends on
  what else the machine runs), warm (the ONNX sessions and the speaker encoder load once per process; the first call's
  extra cost is printed beside the figure): target at most 0.5x real time, so measuring a
  batch costs less than rendering it with real XTTS on a CPU;
- a cached chain step (a ``command`` step running a small Python filter program) read
  back from the step cache, against computing it (starting the program, which imports
  numpy and scipy, filtering, writing and reading the WAV): target at most 5% of computing.

``python -m bench --only bench_quality`` or ``python bench/bench_quality.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SR = 24000


def _clip(seconds: float) -> np.ndarray:
    from workbench import audio

    y, _ = audio.load(ROOT / "demo" / "clips" / "feb1" / "surya_1" / "long.flac", sr=SR)
    n = int(seconds * SR)
    return np.resize(y, n).astype(np.float32) if len(y) < n else y[:n]


def bench_quality_cost(quick: bool) -> dict:
    from workbench import analysis, audio, quality

    ref, ref_sr = audio.load(ROOT / "demo" / "references" / "surya_1.flac")
    t0 = time.perf_counter()
    emb = analysis.speaker_embedding(ref, sr=ref_sr)
    quality.measure(_clip(3.0), sr=SR, text="warm up", reference_embedding=emb)
    first = time.perf_counter() - t0
    lengths = (3.0, 8.0) if quick else (3.0, 8.0, 15.0)
    cpu_ratios, wall_ratios, dnsmos_share = [], [], []
    for seconds in lengths:
        y = _clip(seconds)
        w, c = time.perf_counter(), time.process_time()
        quality.measure(y, sr=SR, text="x" * int(14 * seconds), reference_embedding=emb)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        c = time.process_time()
        quality.dnsmos(y, sr=SR)
        dnsmos_share.append((time.process_time() - c) / cpu)
        cpu_ratios.append(cpu / seconds)
        wall_ratios.append(wall / seconds)
    worst = max(cpu_ratios)
    per = ", ".join(f"{s:g} s: {r:.3f}x" for s, r in zip(lengths, cpu_ratios, strict=True))
    return {
        "name": "quality estimate per clip (DNSMOS + checks + speaker sim.)",
        "figure": f"{worst:.3f}x real time in CPU time at worst ({per}; wall clock {max(wall_ratios):.3f}x on "
        f"this machine's load); DNSMOS is {statistics.median(dnsmos_share):.0%} of it; first call +{first:.1f} s "
        "(model loads)",
        "value": worst,
        "target": "<= 0.5x real time (CPU time)",
        "passed": worst <= 0.5,
    }


def bench_cached_step(quick: bool) -> dict:
    from workbench.catalog import parse_catalog
    from workbench.enhance import StepCache, apply_preset

    program = ROOT / "tests" / "programs" / "lowpass.py"
    y = _clip(5.0)
    with tempfile.TemporaryDirectory() as tmp:
        text = (
            "checkpoints:\n  c:\n    backend: prerendered\n    clips_dir: x\nreferences:\n  r:\n    audio: r.wav\n"
            "sentences:\n  s:\n    text: Hi.\nenhancements:\n  lp:\n    steps:\n      - type: command\n"
            f"        argv: ['{sys.executable}', '{program}', '{{input}}', '{{output}}', '1500']\n"
        )
        preset = parse_catalog(text, path=Path(tmp) / "cat.yaml").enhancement("lp")
        computed, cached = [], []
        for i in range(2 if quick else 4):
            cache = StepCache(Path(tmp) / f"steps{i}")
            t = time.perf_counter()
            apply_preset(y, SR, preset, cache=cache)
            computed.append(time.perf_counter() - t)
            t = time.perf_counter()
            _, info = apply_preset(y, SR, preset, cache=cache)
            cached.append(time.perf_counter() - t)
            assert info["chain"][0]["cached"]
    miss, hit = statistics.median(computed), statistics.median(cached)
    ratio = hit / miss
    return {
        "name": "chain step: cached vs computed (5 s clip, command step)",
        "figure": f"a cached step costs {ratio:.1%} of computing it ({hit * 1000:.1f} ms vs {miss * 1000:.0f} ms)",
        "value": ratio,
        "target": "<= 5% of computing",
        "passed": ratio <= 0.05,
    }


def run(quick: bool = False) -> list[dict]:
    return [bench_quality_cost(quick), bench_cached_step(quick)]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from bench.__main__ import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
