"""Post-synthesis steps: resemble-enhance (denoise / enhance) and loudness normalisation.

Each step is a plain function on ``(y, sr)`` (mono float32 ``(n_samples,)``, rate in Hz);
:func:`apply_preset` runs a preset's steps in order and reports what it did for the
clip's provenance.

resemble-enhance runs through its own inference API
(``resemble_enhance.enhancer.inference.denoise`` / ``enhance``) from a local run folder
(``weights_dir``: ``hparams.yaml`` + ``ds/G/default/mp_rank_00_model_states.pt``). A preset
with ``denoise`` only runs the denoiser; a preset with ``enhance`` runs the enhancer,
whose built-in denoiser is blended in with strength ``lambd`` (resemble-enhance's own
app does "denoise before enhancement" the same way, with ``lambd`` 0.9 instead of 0.1).
The enhancer samples noise, so it is seeded like synthesis: same clip, same seed,
same output on the same device.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np

from . import audio
from .catalog import EnhancePreset, preset_availability
from .devices import device_lock, resolve_device, seeded
from .errors import ModelUnavailable, RenderError

#: resemble-enhance's upper limit for the CFM solver's function evaluations
MAX_NFE = 128


def loudness_step(y: np.ndarray, sr: int, *, target_lufs: float | None) -> tuple[np.ndarray, dict]:
    """Normalise to ``target_lufs`` (None: untouched). Returns the audio and what was measured."""
    before = audio.loudness(y, sr)
    if target_lufs is None:
        return y, {"loudness_in_lufs": round(before, 2)}
    out = audio.normalize_loudness(y, sr, target_lufs=target_lufs)
    return out, {"loudness_in_lufs": round(before, 2), "loudness_out_lufs": round(audio.loudness(out, sr), 2)}


def enhancer_checkpoint(weights_dir: Path) -> Path:
    """The weights file inside a resemble-enhance run folder."""
    return Path(weights_dir) / "ds" / "G" / "default" / "mp_rank_00_model_states.pt"


def _decay_time_mapping(t, n: int = 4):
    """resemble-enhance's ``Solver.exponential_decay_mapping`` (same maths), NumPy-2 safe.

    The original takes ``float()`` of the 1-element array ``scipy.optimize.fsolve``
    returns, which NumPy 2.4 refuses, so every CFM ``enhance`` call fails there.
    """
    import scipy.optimize

    def h(t, a):
        return (a**t - 1) / (a - 1)

    a = float(np.ravel(scipy.optimize.fsolve(lambda a: h(1 / n, a) - 0.5, x0=0))[0])
    return h(t, a=a)


def _make_solver_work(enhancer) -> None:
    """Give the enhancer's CFM solver a working time mapping when the installed one fails."""
    solver = enhancer.lcfm.cfm.solver
    try:
        solver._time_mapping(np.linspace(0.0, 1.0, 3))
    except TypeError:
        solver._time_mapping = partial(_decay_time_mapping, n=enhancer.hp.cfm_time_mapping_divisor)


def _load(run_dir: Path | None, device: str):
    """resemble-enhance's own (memoised) loader, with its failures turned into ModelUnavailable."""
    from resemble_enhance.enhancer.inference import load_enhancer

    where = str(run_dir) if run_dir is not None else "Hugging Face (ResembleAI/resemble-enhance)"
    try:
        return load_enhancer(run_dir, device)
    except ModelUnavailable:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:240]
        if run_dir is None:
            raise ModelUnavailable(
                f"resemble-enhance weights could not be downloaded from {where} ({first}); this machine may be "
                "offline: copy a resemble-enhance run folder here and set the preset's weights_dir to it"
            ) from None
        ckpt = enhancer_checkpoint(run_dir)
        if "state_dict" in str(e) or "size mismatch" in str(e):
            raise ModelUnavailable(
                f"{ckpt}: does not match {run_dir / 'hparams.yaml'} ({first}); "
                "use the hparams.yaml saved with these weights"
            ) from None
        if "hparams" in str(e).lower() or type(e).__module__.startswith(("omegaconf", "yaml")):
            raise ModelUnavailable(f"{run_dir / 'hparams.yaml'}: cannot be read ({first}); restore it") from None
        if "Weights only load failed" in str(e):
            raise ModelUnavailable(
                f"{ckpt}: torch refuses to unpickle it safely ({first}); list what it needs with "
                "torch.serialization.get_unsafe_globals_in_checkpoint and re-save the weights as a plain state dict"
            ) from None
        raise ModelUnavailable(
            f"{ckpt}: cannot be loaded, the file is truncated or corrupt ({type(e).__name__}: {first}); "
            "copy the resemble-enhance weights again"
        ) from None


def enhancer_step(
    y: np.ndarray, sr: int, preset: EnhancePreset, *, device: str = "auto", seed: int = 0
) -> tuple[np.ndarray, int, dict]:
    """Run resemble-enhance's denoiser or enhancer on ``y`` (``sr`` Hz).

    Returns ``(y, sr, info)`` at the enhancer's rate (44100 Hz) and what was run.

    Raises
    ------
    ModelUnavailable
        the preset's weights are missing, unreadable or cannot be downloaded.
    """
    avail = preset_availability(preset)
    if not avail.ok:
        raise ModelUnavailable(f"preset {preset.name!r} is unavailable: {avail.reason}")
    if preset.enhance and not 0 < preset.nfe <= MAX_NFE:
        raise RenderError(f"preset {preset.name!r}: nfe {preset.nfe} is above resemble-enhance's limit of {MAX_NFE}")
    import torch
    from resemble_enhance.enhancer.inference import denoise, enhance

    dev = resolve_device(device)
    run_dir = Path(preset.weights_dir) if preset.weights_dir is not None else None
    dwav = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    t0 = time.perf_counter()
    with device_lock(dev):
        _make_solver_work(_load(run_dir, dev))
        with seeded(dev, seed):
            if preset.enhance:
                out, out_sr = enhance(
                    dwav,
                    sr,
                    dev,
                    nfe=preset.nfe,
                    solver=preset.solver,
                    lambd=preset.lambd,
                    tau=preset.tau,
                    run_dir=run_dir,
                )
                step = f"enhance(nfe={preset.nfe}, solver={preset.solver}, lambd={preset.lambd}, tau={preset.tau})"
            else:
                out, out_sr = denoise(dwav, sr, dev, run_dir=run_dir)
                step = "denoise"
    out = out.detach().float().cpu().numpy().reshape(-1)
    info = {
        "enhancer_step": step,
        "enhancer_device": dev,
        "enhancer_weights": str(run_dir) if run_dir is not None else "huggingface",
        "enhancer_seconds": round(time.perf_counter() - t0, 4),
    }
    return out.astype(np.float32), int(out_sr), info


def apply_preset(
    y: np.ndarray, sr: int, preset: EnhancePreset, *, device: str = "auto", seed: int = 0
) -> tuple[np.ndarray, dict]:
    """Apply ``preset`` (enhancer step, then loudness) to ``y`` at ``sr``; output stays at ``sr``.

    ``seed`` seeds the enhancer's sampling (ignored by the other steps).
    """
    info: dict = {"enhancement": preset.name}
    if preset.uses_enhancer:
        y2, sr2, step = enhancer_step(y, sr, preset, device=device, seed=seed)
        info.update(step)
        y = audio.resample(y2, orig_sr=sr2, target_sr=sr) if sr2 != sr else y2
        y = audio.validate(y, sr, name=f"output of preset {preset.name!r}")
    y, loud = loudness_step(y, sr, target_lufs=preset.target_lufs)
    info.update(loud)
    return y, info
