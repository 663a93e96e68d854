"""Chain-step test program: one-pole low-pass filter; writes 16 kHz 16-bit WAV.

Usage: python lowpass.py INPUT OUTPUT [CUTOFF_HZ]
"""

import sys

import numpy as np
import scipy.signal
import soundfile as sf

src, dst = sys.argv[1], sys.argv[2]
cutoff = float(sys.argv[3]) if len(sys.argv) > 3 else 1000.0
y, sr = sf.read(src, dtype="float32")
a = np.exp(-2 * np.pi * cutoff / sr)
y = scipy.signal.lfilter([1 - a], [1, -a], y)
y = scipy.signal.resample_poly(y, 2, 3) if sr == 24000 else y
sf.write(dst, y.astype(np.float32), 16000 if sr == 24000 else sr, subtype="PCM_16")
print(f"low-passed at {cutoff:g} Hz", file=sys.stderr)
