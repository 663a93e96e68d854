"""Demo stand-in for resemble-enhance, so enhancement can be studied on a fresh machine.

resemble-enhance's weights cannot ship with the app, so on the bundled demo every preset
but ``none`` would be unavailable. For checkpoints that play **demo** clips (and only
for them), a preset whose weights are missing runs this stand-in instead, labelled
"demo stand-in" wherever it is shown. It is not resemble-enhance and never claims to be:

- the **raw take** is the bundled clip with room noise added (pink noise plus a little
  50 Hz hum, 20 dB below the speech, seeded by the clip's seed), i.e. what a denoiser would
  receive from a real recording chain;
- ``denoise`` = spectral gating of the raw take (``noisereduce``, stationary noise
  estimate, full strength);
- ``enhance`` = spectral gating at strength ``lambd`` (the preset's "denoise before
  enhancement" blend, as in resemble-enhance), then a high shelf of +6 dB above 3 kHz
  (a brighter top end, like bandwidth extension);
- both flags: full-strength gating, then the high shelf.

Loudness normalisation to the preset's ``target_lufs`` follows, like for real presets.
Output is deterministic: same clip, preset and seed -> same samples.

``demo/make_enhance_variants.py`` renders every demo clip through every stand-in preset
into the cache (and optionally to a folder to listen to).
"""

from __future__ import annotations

import numpy as np

from .catalog import Availability, Catalog, EnhancePreset, checkpoint_availability, preset_availability

#: bump when the stand-in's processing changes (part of every stand-in clip's cache key)
STAND_IN_VERSION = "demo-stand-in-1"
#: how far the added room noise sits below the speech (dB, RMS over the voiced part)
NOISE_SNR_DB = 20.0
#: high shelf of the "enhance" stand-in: corner (Hz) and gain (dB)
SHELF_HZ, SHELF_DB = 3000.0, 6.0
#: one-line description shown beside stand-in clips
DESCRIPTION = "demo stand-in, not resemble-enhance: room noise added, then noisereduce spectral gating (+ high shelf)"


def stand_in_importable() -> str | None:
    """None when the stand-in can run, else why not (``noisereduce`` missing)."""
    try:
        import noisereduce  # noqa: F401
    except ImportError:
        return "the demo stand-in needs the noisereduce package (pip install -r requirements.txt)"
    return None


def preset_availability_for(catalog: Catalog, preset: str, checkpoints: list[str] | tuple[str, ...]) -> Availability:
    """Whether ``preset`` can run for every one of ``checkpoints`` now.

    Returns the real preset's availability when its weights are there; ``demo`` when they
    are missing but every checkpoint plays demo clips (the stand-in runs); else
    ``unavailable`` with the weights problem as the reason.
    """
    p = catalog.enhancement(preset)
    real = preset_availability(p)
    if real.ok:
        return real
    not_demo = [c for c in checkpoints if not checkpoint_availability(catalog.checkpoint(c)).is_demo]
    missing = stand_in_importable()
    if checkpoints and not not_demo and missing is None:
        return Availability("demo", f"{DESCRIPTION} ({real.reason})")
    if missing is not None and not not_demo:
        return Availability("unavailable", f"{real.reason}; {missing}")
    return real


def runs_as_stand_in(catalog: Catalog, preset: EnhancePreset, checkpoint_source: str) -> bool:
    """True when ``preset`` on a clip from ``checkpoint_source`` should run the stand-in."""
    return (
        preset.uses_enhancer
        and preset.steps is None  # a chain (commands, several steps) has no stand-in
        and checkpoint_source == "demo"
        and not preset_availability(preset).ok
        and stand_in_importable() is None
    )


# ---------------------------------------------------------------------------- processing


def room_noise(n: int, sr: int, *, seed: int) -> np.ndarray:
    """Unit-RMS room noise, ``(n,)`` float32: pink noise (1/f power) plus a little 50 Hz hum."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[1:] /= np.sqrt(f[1:] / f[1])  # 1/f power: -3 dB per octave
    spec[0] = 0
    pink = np.fft.irfft(spec, n)
    pink /= np.sqrt(np.mean(pink**2)) + 1e-12
    t = np.arange(n) / sr
    hum = 0.3 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t)
    out = pink + hum
    return (out / (np.sqrt(np.mean(out**2)) + 1e-12)).astype(np.float32)


def raw_take(y: np.ndarray, sr: int, *, seed: int, snr_db: float = NOISE_SNR_DB) -> np.ndarray:
    """``y`` plus room noise ``snr_db`` below the RMS of its louder half (the speech)."""
    y = np.asarray(y, dtype=np.float32)
    frame = max(1, sr // 50)
    n = len(y) // frame * frame
    rms = np.sqrt(np.mean(y[:n].reshape(-1, frame) ** 2, axis=1)) if n else np.array([np.sqrt(np.mean(y**2))])
    speech = float(np.sqrt(np.mean(np.sort(rms)[len(rms) // 2 :] ** 2)))
    return (y + room_noise(len(y), sr, seed=seed) * np.float32(speech * 10 ** (-snr_db / 20))).astype(np.float32)


def spectral_gate(y: np.ndarray, sr: int, *, strength: float = 1.0) -> np.ndarray:
    """Noisereduce's stationary spectral gating; ``strength`` in [0, 1] is how much noise is removed."""
    import noisereduce

    out = noisereduce.reduce_noise(y=y, sr=sr, stationary=True, prop_decrease=float(strength), n_jobs=1)
    return np.asarray(out, dtype=np.float32)


def high_shelf(y: np.ndarray, sr: int, *, freq: float = SHELF_HZ, gain_db: float = SHELF_DB) -> np.ndarray:
    """RBJ-cookbook high shelf (slope 1): ``gain_db`` above about ``freq`` Hz."""
    from scipy.signal import lfilter

    a_gain = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * freq / sr
    alpha = np.sin(w0) / 2 * np.sqrt(2)
    cos, sq = np.cos(w0), 2 * np.sqrt(a_gain) * alpha
    b = [
        a_gain * ((a_gain + 1) + (a_gain - 1) * cos + sq),
        -2 * a_gain * ((a_gain - 1) + (a_gain + 1) * cos),
        a_gain * ((a_gain + 1) + (a_gain - 1) * cos - sq),
    ]
    a = [
        (a_gain + 1) - (a_gain - 1) * cos + sq,
        2 * ((a_gain - 1) - (a_gain + 1) * cos),
        (a_gain + 1) - (a_gain - 1) * cos - sq,
    ]
    return lfilter(np.array(b) / a[0], np.array(a) / a[0], y).astype(np.float32)


def stand_in(y: np.ndarray, sr: int, preset: EnhancePreset, *, seed: int) -> tuple[np.ndarray, dict]:
    """Run the stand-in for ``preset`` on a demo clip ``y`` (``sr`` Hz); returns audio and provenance.

    Loudness is not touched here (the caller's loudness step follows).
    """
    noisy = raw_take(y, sr, seed=seed)
    steps = [f"room noise {NOISE_SNR_DB:g} dB below speech (seed {seed})"]
    strength = 1.0 if preset.denoise else preset.lambd
    out = spectral_gate(noisy, sr, strength=strength)
    steps.append(f"noisereduce spectral gating (strength {strength:g})")
    if preset.enhance:
        out = high_shelf(out, sr)
        steps.append(f"high shelf +{SHELF_DB:g} dB above {SHELF_HZ:g} Hz")
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 1.0:  # the shelf can push peaks over full scale; the loudness step sets the level anyway
        out = out / np.float32(peak)
    info = {"enhancer_step": "demo stand-in: " + ", ".join(steps), "stand_in": STAND_IN_VERSION}
    return out.astype(np.float32), info


def apply_stand_in(y: np.ndarray, sr: int, preset: EnhancePreset, *, seed: int) -> tuple[np.ndarray, dict]:
    """The stand-in for ``preset``, then its loudness step: what :func:`enhance.apply_preset` does for real."""
    from . import audio
    from .enhance import loudness_step

    out, info = stand_in(y, sr, preset, seed=seed)
    out = audio.validate(out, sr, name=f"output of the demo stand-in for preset {preset.name!r}")
    out, loud = loudness_step(out, sr, target_lufs=preset.target_lufs)
    return out, {"enhancement": preset.name, **info, **loud}
