"""Chain-step test program: inserts SECONDS of digital silence in the middle (a bad take on demand).

Usage: python gap.py INPUT OUTPUT SECONDS [SEED ONLY_SEED]
With SEED and ONLY_SEED (e.g. ``{seed} 1234``) only the take with that seed gets the pause;
the others pass through unchanged (a flaky model: one bad take among good ones).
"""

import sys

import numpy as np
import soundfile as sf

src, dst, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
y, sr = sf.read(src, dtype="float32")
if len(sys.argv) > 5 and sys.argv[4] != sys.argv[5]:
    seconds = 0.0
mid = len(y) // 2
sf.write(dst, np.concatenate([y[:mid], np.zeros(int(seconds * sr), np.float32), y[mid:]]), sr, subtype="FLOAT")
