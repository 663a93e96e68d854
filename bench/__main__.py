"""Run every benchmark in bench/ and print one table.

``python -m bench [--quick] [--only NAME ...] [--json FILE]``

Each ``bench/bench_<name>.py`` exposes ``run(quick: bool = False) -> list[dict]`` whose rows
have ``name``, ``figure`` (text), ``value`` (float), ``target`` (text) and ``passed``
(bool, or None when skipped). Figures are ratios measured in the same run, so they do
not depend on how fast this machine is.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    return sorted(p.stem for p in HERE.glob("bench_*.py"))


def format_table(rows: list[dict]) -> str:
    cols = ["benchmark", "figure", "target", "result"]
    cells = [
        [
            r["name"],
            str(r.get("figure", "")),
            str(r.get("target", "")),
            {True: "pass", False: "FAIL", None: "skipped"}[r.get("passed")],
        ]
        for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(cols)]
    line = "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join([line, sep, *body])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter settings (for smoke runs)")
    ap.add_argument("--only", nargs="*", help="module names (e.g. bench_render)")
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    rows: list[dict] = []
    for name in args.only or discover():
        t0 = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            mod = importlib.import_module(f"bench.{name}")
            rows.extend(mod.run(quick=args.quick))
        except Exception as e:  # one broken benchmark must not hide the others
            traceback.print_exc()
            rows.append({"name": name, "figure": f"error: {type(e).__name__}: {e}", "target": "", "passed": False})
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    return 0 if all(r.get("passed") is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
