"""Make the demo's enhancement-preset variants: every demo clip through every preset.

resemble-enhance's weights cannot ship with the app, so on demo checkpoints a preset
whose weights are missing runs a labelled **demo stand-in** (``workbench/demo_enhance.py``):

- raw take   = the bundled clip + room noise (pink noise and a little 50 Hz hum, 20 dB
  below the speech, seeded by the clip's seed);
- ``denoise`` = noisereduce spectral gating of the raw take;
- ``enhance`` = gating at the preset's ``lambd`` strength, then a +6 dB high shelf above 3 kHz;
- ``denoise+enhance`` = full gating, then the high shelf;

then loudness normalisation to the preset's ``target_lufs``, like every preset.

The app makes a variant on first use (about 0.1 s a clip), so nothing has to be run
before Compare, Enhancement diff or a blind test with a preset factor works. This
script makes all of them at once, into the render cache (so first use is a cache read)
and, with ``--out DIR``, as files to listen to:
``DIR/<checkpoint>/<reference>/<sentence>.<preset>.take1.flac`` plus ``manifest.csv``.
Deterministic: the same files every run.

Run: ``.venv/bin/python demo/make_enhance_variants.py [--config checkpoints.yaml] [--out DIR]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from workbench.catalog import checkpoint_availability, load_catalog  # noqa: E402
from workbench.render import Renderer, expand_matrix, render_batch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT.parent / "checkpoints.yaml"), help="catalog (default: the repo's)")
    ap.add_argument("--out", default=None, help="also copy the variants here (default: cache only)")
    args = ap.parse_args(argv)
    cat = load_catalog(args.config)
    demo = [n for n, ck in cat.checkpoints.items() if checkpoint_availability(ck).is_demo]
    if not demo:
        print("no checkpoint plays demo clips; nothing to do")
        return 0
    reqs = expand_matrix(cat, checkpoints=demo, enhancements="all")
    with tempfile.TemporaryDirectory(prefix="demo-variants-") as tmp:
        _, rows = render_batch(Renderer(cat), reqs, Path(args.out or tmp))
    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        print(f"failed: {r['checkpoint']}/{r['reference']}/{r['sentence']} {r['enhancement']}: {r['error']}")
    where = f"; files in {args.out}" if args.out else ""
    print(f"{len(rows) - len(failed)} of {len(rows)} clips ready in the cache{where}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
