"""Regenerate the bundled demo: reference stand-ins and pre-rendered clips.

The team's weights and voices are private, so the demo uses Debian's espeak-ng
(``apt-get install espeak-ng``), a real formant speech synthesizer, to make
stand-ins that differ the way the real checkpoints were reported to differ:

- ``feb1``  : the baseline voice, normal pitch range and rate.
- ``apr24`` : flatter (narrow pitch range), slower and duller (low-passed at 3.2 kHz).
- ``apr27`` : livelier (wide pitch range, "unnecessary inflections"), slightly faster.

One take is broken on purpose (:data:`BROKEN_TAKE`: a 3 s pause mid-sentence) for the
quality flags to find.

Each reference id maps to an espeak voice; every checkpoint speaks every catalog
sentence in that voice. Output: 24 kHz mono 16-bit FLAC (XTTS's output rate), laid out
as ``demo/clips/<checkpoint>/<reference>/<sentence>.flac`` and
``demo/references/<reference>.flac``.

Run: ``.venv/bin/python demo/make_demo.py`` (deterministic: same files every run).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfiltfilt

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from workbench import audio  # noqa: E402
from workbench.catalog import load_catalog  # noqa: E402

SR = 24000

#: espeak voice per reference (two "speakers", two clips each)
VOICES = {
    "surya_1": ("en-gb-x-rp+m3", 0),
    "surya_2": ("en-gb-x-rp+m3", 4),
    "paul_1": ("en-us+m1", 0),
    "paul_2": ("en-us+m1", -4),
}
#: what the speaker says in the reference recording
REFERENCE_TEXT = {
    "surya_1": "Good morning. I am recording this sample so the model can learn my voice.",
    "surya_2": "This is a second take, read a little more slowly and calmly than the first.",
    "paul_1": "Hello there. This short recording is my reference voice for cloning.",
    "paul_2": "Here is another sample of my voice, recorded on a different day.",
}
#: prosody per demo checkpoint: espeak rate (wpm), pitch range keyword, low-pass cutoff (Hz)
STYLES = {
    "feb1": {"rate": 160, "range": "medium", "lowpass": None},
    "apr24": {"rate": 148, "range": "x-low", "lowpass": 3200.0},
    "apr27": {"rate": 172, "range": "x-high", "lowpass": None},
}
#: a deliberately bad take, like XTTS's occasional ones: a long pause in the middle of the
#: sentence, so the quality flags (workbench.quality) have something to find in the demo
BROKEN_TAKE = ("apr27", "surya_2", "names")
BROKEN_PAUSE_S = 3.0


def speak(text: str, voice: str, *, pitch_shift: int = 0, rate: int = 160, prange: str = "medium") -> np.ndarray:
    """Synthesize ``text`` with espeak-ng; returns 24 kHz mono float32."""
    ssml = (
        f'<speak><prosody rate="{rate / 175:.3f}" range="{prange}" pitch="{50 + pitch_shift}">'
        f"{text.replace('&', 'and').replace('<', ' ').replace('>', ' ')}</prosody></speak>"
    )
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-m", "-v", voice, "-w", str(wav), ssml], check=True)
        y, _ = audio.load(wav, sr=SR)
    return y


def finish(y: np.ndarray, *, lowpass: float | None) -> np.ndarray:
    if lowpass:
        y = sosfiltfilt(butter(6, lowpass, btype="low", fs=SR, output="sos"), y).astype(np.float32)
    pad = np.zeros(int(0.15 * SR), dtype=np.float32)
    return audio.normalize_loudness(np.concatenate([pad, y, pad]), SR, target_lufs=-20.0)


def insert_pause(y: np.ndarray, seconds: float) -> np.ndarray:
    """Insert ``seconds`` of silence at the quietest 20 ms of the clip's middle third."""
    hop = int(0.02 * SR)
    third = len(y) // 3
    middle = y[third : 2 * third]
    energy = np.add.reduceat(middle.astype(np.float64) ** 2, np.arange(0, len(middle), hop))
    at = third + int(np.argmin(energy[:-1])) * hop + hop // 2
    return np.concatenate([y[:at], np.zeros(int(seconds * SR), dtype=np.float32), y[at:]])


def break_take(path: Path) -> None:
    """Rewrite a demo clip as a bad take (see :data:`BROKEN_TAKE`)."""
    y, _ = audio.load(path, sr=SR)
    audio.write(path, insert_pause(y, BROKEN_PAUSE_S), SR, subtype="PCM_16")


def main() -> None:
    cat = load_catalog(ROOT.parent / "checkpoints.yaml")
    (ROOT / "references").mkdir(exist_ok=True)
    for ref_id, (voice, shift) in VOICES.items():
        y = finish(speak(REFERENCE_TEXT[ref_id], voice, pitch_shift=shift), lowpass=None)
        audio.write(ROOT / "references" / f"{ref_id}.flac", y, SR, subtype="PCM_16")
    for ck, style in STYLES.items():
        for ref_id, (voice, shift) in VOICES.items():
            for sid, sent in cat.sentences.items():
                y = speak(sent.text, voice, pitch_shift=shift, rate=style["rate"], prange=style["range"])
                out = ROOT / "clips" / ck / ref_id / f"{sid}.flac"
                audio.write(out, finish(y, lowpass=style["lowpass"]), SR, subtype="PCM_16")
        print(f"{ck}: {len(VOICES) * len(cat.sentences)} clips")
    ck, ref_id, sid = BROKEN_TAKE
    break_take(ROOT / "clips" / ck / ref_id / f"{sid}.flac")
    print(f"{ck}/{ref_id}/{sid}: {BROKEN_PAUSE_S:g} s pause inserted (a deliberately bad take)")


if __name__ == "__main__":
    main()
