"""Chain-step test program: appends 0.1 s of a sine at FREQ Hz (shows the order of steps).

Usage: python tag.py INPUT OUTPUT FREQ_HZ
"""

import sys

import numpy as np
import soundfile as sf

src, dst, freq = sys.argv[1], sys.argv[2], float(sys.argv[3])
y, sr = sf.read(src, dtype="float32")
t = np.arange(int(0.1 * sr)) / sr
sf.write(dst, np.concatenate([y, 0.3 * np.sin(2 * np.pi * freq * t)]).astype(np.float32), sr, subtype="FLOAT")
