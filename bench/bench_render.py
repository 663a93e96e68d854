"""Rendering benchmarks on tiny random XTTS checkpoints (ratios measured in one run).

- cache hit vs fresh render: a hit costs at most 1% of a miss;
- conditioning reuse: the second render with a reference loads its latents instead of
  computing them; reported as the cached/computed time ratio and the time saved;
- peak memory (RSS, measured in fresh subprocesses): three checkpoints rendered in turn
  with ``max_loaded_models=1`` stay within 1.2x of one loaded model; a control run
  with ``max_loaded_models=3`` shows what the limit prevents;
- real-time factor CPU vs CUDA (skipped, with a message, without a GPU).

The tiny checkpoints keep Coqui's full-size HiFi-GAN decoder and speaker encoder but a
2-layer GPT, so a fresh render here is far cheaper than with a real XTTS v2: the cache
ratios are conservative (a real miss costs seconds, a hit stays a file read).

``python -m bench --only bench_render`` or ``python bench/bench_render.py``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def _catalog(folder: Path, checkpoints: dict[str, Path], max_loaded: int = 1):
    from tiny_models import write_tiny_catalog

    from workbench.catalog import load_catalog

    return load_catalog(write_tiny_catalog(folder, checkpoints, max_loaded_models=max_loaded))


def bench_cache(model: Path, work: Path, n: int) -> dict:
    """Median time of a cache hit over median time of a fresh render (same request shape)."""
    from workbench.render import Renderer, RenderRequest

    cat = _catalog(work / "cache_bench", {"tiny": model})
    r = Renderer(cat, device="cpu")
    r.render(RenderRequest("tiny", "ref_a", "short", take=1))  # load the model, condition the reference
    misses, hits = [], []
    for take in range(2, n + 2):
        req = RenderRequest("tiny", "ref_a", "short", take=take)
        t0 = time.perf_counter()
        clip = r.render(req)
        misses.append(time.perf_counter() - t0)
        assert not clip.from_cache
    restarted = Renderer(cat, device="cpu")  # hits as after a restart: nothing in memory but hash memos
    for take in range(2, n + 2):
        req = RenderRequest("tiny", "ref_a", "short", take=take)
        t0 = time.perf_counter()
        clip = restarted.render(req)
        hits.append(time.perf_counter() - t0)
        assert clip.from_cache
    miss, hit = statistics.median(misses), statistics.median(hits)
    ratio = hit / miss
    return {
        "name": "render cache: hit vs miss",
        "figure": f"a hit costs {100 * ratio:.2f}% of a miss ({1e3 * hit:.1f} ms vs {1e3 * miss:.0f} ms, tiny model)",
        "value": ratio,
        "target": "<= 1% of a miss",
        "passed": ratio <= 0.01,
    }


def bench_conditioning(model: Path, work: Path, n: int) -> dict:
    """Conditioning time of a second render with the same reference vs the first."""
    from tiny_models import write_reference

    from workbench.render import Renderer, RenderRequest

    computed, cached, first_total = [], [], []
    for i in range(n):
        cat = _catalog(work / f"cond_{i}", {"tiny": model})
        write_reference(cat.path.parent / "refs" / "ref_b.flac", seconds=6.0, f0=120.0 + 10 * i, seed=i)
        r = Renderer(cat, device="cpu")
        r.render(RenderRequest("tiny", "builtin", "short"))  # model loaded before timing
        a = r.render(RenderRequest("tiny", "ref_b", "short")).provenance
        b = r.render(RenderRequest("tiny", "ref_b", "question")).provenance
        assert (a["conditioning"], b["conditioning"]) == ("computed", "cached")
        computed.append(a["timings_s"]["conditioning"])
        cached.append(b["timings_s"]["conditioning"])
        first_total.append(a["timings_s"]["synthesis"])
    c, k = statistics.median(computed), statistics.median(cached)
    ratio = k / c
    saved = c - k
    return {
        "name": "conditioning reuse (same reference)",
        "figure": (
            f"cached latents cost {100 * ratio:.1f}% of computing them; saves {1e3 * saved:.0f} ms "
            f"({100 * saved / statistics.median(first_total):.0f}% of a first tiny-model synthesis, 6 s reference)"
        ),
        "value": ratio,
        "target": "conditioning skipped (< 10% of computing)",
        "passed": ratio < 0.10,
    }


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(catalog_path: str, names: str) -> None:
    """Subprocess body: RSS (bytes) after imports, and its peak over one render per checkpoint.

    Imports alone briefly peak above one tiny model, so the kernel's peak counter
    (VmHWM) is reset after them (``5`` to ``/proc/self/clear_refs``, Linux >= 4.0).
    """
    import TTS.tts.models.xtts  # noqa: F401 - count library imports in the baseline

    import workbench.synth.xtts  # noqa: F401
    from workbench.catalog import load_catalog
    from workbench.render import Renderer, RenderRequest
    from workbench.synth import limit_loaded_models

    cat = load_catalog(catalog_path)
    limit_loaded_models(cat.settings.max_loaded_models)  # as the app and the render command do
    r = Renderer(cat, device="cpu")
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_kib("VmRSS") * 1024
    for take, name in enumerate(names.split(","), start=1):
        r.render(RenderRequest(name, "builtin", "short", take=take))  # a new take: always a fresh render
    peak = _status_kib("VmHWM") * 1024
    loaded = len(r.backends["xtts"].models.loaded())
    print(json.dumps({"base": base, "peak": peak, "loaded": loaded}))


def _measure(catalog_path: Path, names: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "child", str(catalog_path), ",".join(names)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_memory(models: list[Path], work: Path) -> list[dict]:
    """Peak RSS of three fresh renders: one checkpoint vs three in turn (limit 1, and 3 as a control)."""
    three = {f"ck{i}": m for i, m in enumerate(models)}
    one = _measure(_catalog(work / "mem_one", three, 1).path, ["ck0"] * 3)
    lru = _measure(_catalog(work / "mem_lru", three, 1).path, list(three))
    ctl = _measure(_catalog(work / "mem_ctl", three, 3).path, list(three))
    mb = 1 / 2**20
    ratio = lru["peak"] / one["peak"]
    growth_one, growth_lru, growth_ctl = (m["peak"] - m["base"] for m in (one, lru, ctl))
    return [
        {
            "name": "peak memory: 3 checkpoints, max_loaded_models=1",
            "figure": (
                f"{ratio:.2f}x of one loaded model (peak RSS {lru['peak'] * mb:.0f} MiB vs {one['peak'] * mb:.0f} MiB "
                f"over 3 renders; {lru['loaded']} model left loaded)"
            ),
            "value": ratio,
            "target": "<= 1.2x",
            "passed": ratio <= 1.2,
        },
        {
            "name": "peak memory above imports (same runs)",
            "figure": (
                f"3 checkpoints with limit 1: +{growth_lru * mb:.0f} MiB, one model: +{growth_one * mb:.0f} MiB "
                f"({growth_lru / growth_one:.2f}x); control without the limit (3 loaded): "
                f"+{growth_ctl * mb:.0f} MiB ({growth_ctl / growth_one:.2f}x)"
            ),
            "value": growth_lru / growth_one,
            "target": "below the control without the limit",
            "passed": growth_lru < growth_ctl,
        },
    ]


def bench_cuda_rtf(model: Path, work: Path, n: int) -> dict:
    """Real-time factor (inference seconds per audio second) on CPU vs CUDA."""
    from workbench.devices import cuda_available

    if not cuda_available():
        return {
            "name": "real-time factor CPU vs CUDA",
            "figure": "skipped: no CUDA GPU visible to torch on this machine",
            "value": float("nan"),
            "target": "GPU faster than CPU",
            "passed": None,
        }
    from workbench.render import Renderer, RenderRequest

    rtf = {}
    for device in ("cpu", "cuda"):
        cat = _catalog(work / f"rtf_{device}", {"tiny": model})
        r = Renderer(cat, device=device)
        r.render(RenderRequest("tiny", "ref_a", "short", take=1))  # load + warm up
        vals = []
        for take in range(2, n + 2):
            p = r.render(RenderRequest("tiny", "ref_a", "long", take=take)).provenance
            vals.append(p["timings_s"]["inference"] / (p["duration_s"] or 1))
        rtf[device] = statistics.median(vals)
    import torch

    return {
        "name": "real-time factor CPU vs CUDA",
        "figure": (
            f"RTF {rtf['cpu']:.3f} on CPU, {rtf['cuda']:.3f} on {torch.cuda.get_device_name(0)} "
            f"({rtf['cpu'] / rtf['cuda']:.1f}x faster, tiny model)"
        ),
        "value": rtf["cpu"] / rtf["cuda"],
        "target": "GPU faster than CPU",
        "passed": rtf["cuda"] < rtf["cpu"],
    }


def run(quick: bool = False) -> list[dict]:
    """All rendering benchmarks; ``quick`` uses fewer repetitions."""
    from tiny_models import build_tiny_xtts

    n = 3 if quick else 8
    with tempfile.TemporaryDirectory(prefix="bench_render_") as tmp:
        work = Path(tmp)
        models = [build_tiny_xtts(work / f"model_{i}", seed=i) for i in range(3)]
        rows = [bench_cache(models[0], work, n), bench_conditioning(models[0], work, max(2, n // 2))]
        rows += bench_memory(models, work)
        rows.append(bench_cuda_rtf(models[0], work, n))
    return rows


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "child":
        _child(sys.argv[2], sys.argv[3])
    else:
        from bench.__main__ import format_table

        print(format_table(run(quick="--quick" in sys.argv)))
