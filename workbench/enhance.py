"""Post-synthesis chains: resemble-enhance (denoise / enhance), external commands, loudness.

Each step is a plain function on ``(y, sr)`` (mono float32 ``(n_samples,)``, rate in Hz);
:func:`apply_preset` runs a preset's chain (:meth:`EnhancePreset.chain`) in order and
reports what it did for the clip's provenance.

Every step but loudness is cached by content in a :class:`StepCache`: the key hashes the
step's input samples, its settings (for a command: the argument list and the content of
its ``files``; for resemble-enhance: its weights) and the seed where it matters. So
re-running a chain after changing its last step reads the earlier steps' outputs from
the cache, and a changed command (or model file) computes again from that step on.

A ``command`` step writes its input to a temporary ``{input}`` WAV (24-bit), runs the
program without a shell in its ``cwd``, and reads ``{output}`` back (any rate; resampled to
the chain's rate). A non-zero exit, a timeout (the program's whole process group is
killed) or a missing output raises :class:`StepFailed` naming the step, the exit status
and the last lines of its stderr; a batch records that per clip and goes on.

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

import hashlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import audio
from .catalog import CommandStep, EnhancePreset, LoudnessStep, ResembleEnhanceStep, command_problem, preset_availability
from .devices import device_lock, resolve_device, seeded
from .errors import AudioError, ModelUnavailable, RenderError
from .hashing import sha256_file

#: resemble-enhance's upper limit for the CFM solver's function evaluations
MAX_NFE = 128
#: bump when a step's output changes for the same input and settings (invalidates step caches)
CHAIN_VERSION = "1"
#: stderr lines of a failing command quoted in its error
STDERR_TAIL_LINES = 5


class StepFailed(RenderError):
    """A chain step failed for one clip (exit status, timeout, no output); the batch goes on."""


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


def _enhancer_label(p) -> str:
    """What an enhancer preset or step runs, for provenance (``denoise`` or ``enhance(nfe=..., ...)``)."""
    return f"enhance(nfe={p.nfe}, solver={p.solver}, lambd={p.lambd}, tau={p.tau})" if p.enhance else "denoise"


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
            else:
                out, out_sr = denoise(dwav, sr, dev, run_dir=run_dir)
    out = out.detach().float().cpu().numpy().reshape(-1)
    info = {
        "enhancer_step": _enhancer_label(preset),
        "enhancer_device": dev,
        "enhancer_weights": str(run_dir) if run_dir is not None else "huggingface",
        "enhancer_seconds": round(time.perf_counter() - t0, 4),
    }
    return out.astype(np.float32), int(out_sr), info


def weights_hash(weights_dir: Path | None) -> str:
    """Content hash of a resemble-enhance run folder's weights (+ hparams.yaml); a fixed name for Hugging Face."""
    if weights_dir is None:
        return "huggingface:ResembleAI/resemble-enhance"
    h = hashlib.sha256(sha256_file(enhancer_checkpoint(weights_dir)).encode())
    hp = Path(weights_dir) / "hparams.yaml"
    if hp.is_file():
        h.update(sha256_file(hp).encode())
    return h.hexdigest()


def step_fingerprint(step, *, seed: int) -> dict:
    """Everything about a step that changes its output, without paths (a moved folder keeps its cache)."""
    if step.type == "resemble-enhance":
        settings = step.model_dump(mode="json", exclude={"weights_dir"})
        return {**settings, "weights": weights_hash(step.weights_dir), "seed": seed}
    if step.type == "command":
        files = [sha256_file(f) for f in step.files]
        out: dict[str, Any] = {"type": "command", "argv": list(step.argv), "files": files}
        if any("{seed}" in a for a in step.argv):
            out["seed"] = seed
        return out
    return step.model_dump(mode="json")


def preset_identity(preset: EnhancePreset, *, seed: int) -> dict:
    """What a preset adds to a clip's content key, without paths.

    A flat preset keeps its fields (and ``enhancer_hash``, the weights' content) as keys
    always had; a chain lists :func:`step_fingerprint` of each step, so a changed
    command, model file or enhancer weights file gives the clip a new key.
    """
    if preset.steps is None:
        out: dict = {"preset": preset.model_dump(mode="json", exclude={"weights_dir", "steps"})}
        if preset.uses_enhancer:
            out["enhancer_hash"] = weights_hash(preset.weights_dir)
        return out
    return {"preset": {"name": preset.name, "chain": [step_fingerprint(s, seed=seed) for s in preset.steps]}}


def audio_hash(y: np.ndarray, sr: int) -> str:
    """sha256 of a signal's float32 samples and its rate."""
    h = hashlib.sha256(str(int(sr)).encode())
    h.update(np.ascontiguousarray(y, dtype=np.float32).tobytes())
    return h.hexdigest()


def step_key(input_hash: str, step, *, seed: int) -> str:
    """Cache key of one step's output: its input's hash + :func:`step_fingerprint` + :data:`CHAIN_VERSION`."""
    blob = json.dumps(
        {"version": CHAIN_VERSION, "input": input_hash, "step": step_fingerprint(step, seed=seed)}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class StepCache:
    """Outputs of chain steps by :func:`step_key`, as 32-bit float WAV (exact); thread-safe.

    ``stats`` counts ``hits`` (outputs read back) and ``stored`` (outputs computed and stored).
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.stats = {"hits": 0, "stored": 0}
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.wav"

    def get(self, key: str) -> tuple[np.ndarray, int] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            y, sr = audio.load(path)
        except AudioError:  # damaged entry: compute again
            path.unlink(missing_ok=True)
            return None
        self._count("hits")
        return y, sr

    def put(self, key: str, y: np.ndarray, sr: int) -> None:
        audio.write(self._path(key), y, sr, subtype="FLOAT")
        self._count("stored")

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1


def _tail(text: str, n: int = STDERR_TAIL_LINES) -> str:
    lines = [ln.rstrip()[:300] for ln in text.splitlines() if ln.strip()]
    return "\n".join(f"    {ln}" for ln in lines[-n:]) or "    (no stderr)"


def command_step(
    y: np.ndarray, sr: int, step: CommandStep, *, seed: int = 0, name: str = ""
) -> tuple[np.ndarray, dict]:
    """Run an external program on ``y`` (``sr`` Hz); returns its output at ``sr`` and what ran.

    Raises
    ------
    StepFailed
        the program is missing, exits non-zero, runs past ``timeout_s`` or writes no
        readable audio to ``{output}``; the message names ``name`` (the step), the exit
        status and the last lines of its stderr.
    """
    name = name or f"command {step.label}"
    problem = command_problem(step)
    if problem:
        raise StepFailed(f"{name}: {problem}")
    with tempfile.TemporaryDirectory(prefix="workbench-step-") as tmp:
        src, dst = Path(tmp) / "input.wav", Path(tmp) / "output.wav"
        audio.write(src, y, sr, subtype="PCM_24", durable=False)
        subs = {"{input}": str(src), "{output}": str(dst), "{seed}": str(seed)}
        argv = []
        for a in step.argv:
            for k, v in subs.items():
                a = a.replace(k, v)
            argv.append(a)
        if "/" in argv[0] and not Path(argv[0]).is_absolute():
            argv[0] = str((step.cwd or Path.cwd()) / argv[0])
        t0 = time.perf_counter()
        try:
            # a session of its own, so a timeout can kill the program and everything it started
            proc = subprocess.Popen(
                argv,
                cwd=step.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            raise StepFailed(f"{name}: cannot start {argv[0]!r}: {e.strerror or e}") from None
        try:
            _, err = proc.communicate(timeout=step.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            raise StepFailed(
                f"{name}: did not finish within {step.timeout_s:g} s and was stopped "
                f"(raise timeout_s or check the program); last stderr lines:\n{_tail(err.decode(errors='replace'))}"
            ) from None
        seconds = time.perf_counter() - t0
        stderr = err.decode(errors="replace")
        if proc.returncode != 0:
            raise StepFailed(f"{name}: exited with status {proc.returncode}; last stderr lines:\n{_tail(stderr)}")
        if not dst.is_file() or dst.stat().st_size == 0:
            raise StepFailed(
                f"{name}: exited 0 but wrote nothing to {{output}}; check that the program writes the path "
                f"given in place of {{output}}; last stderr lines:\n{_tail(stderr)}"
            )
        try:
            out, out_sr = audio.load(dst)
        except AudioError as e:
            raise StepFailed(f"{name}: wrote audio that cannot be used: {e}") from None
    if out_sr != sr:
        out = audio.resample(out, orig_sr=out_sr, target_sr=sr)
    return out, {"seconds": round(seconds, 4), "output_sr": out_sr}


def _as_preset(step: ResembleEnhanceStep, name: str) -> EnhancePreset:
    fields = step.model_dump(exclude={"type"})
    return EnhancePreset(name=name, **fields)


def apply_preset(
    y: np.ndarray,
    sr: int,
    preset: EnhancePreset,
    *,
    device: str = "auto",
    seed: int = 0,
    cache: StepCache | None = None,
) -> tuple[np.ndarray, dict]:
    """Run ``preset``'s chain on ``y`` at ``sr``; the output stays at ``sr``.

    ``seed`` seeds the enhancer's sampling (and fills ``{seed}`` in commands). With a
    ``cache``, each step but loudness is read from it when its key is there, else
    computed and stored. Returns the audio and provenance: ``enhancement``, ``chain``
    (per step: ``step``, ``key``, ``cached``, ``seconds``), the enhancer's and the loudness
    step's own fields.

    Raises
    ------
    StepFailed
        a command step failed for this clip.
    ModelUnavailable
        a resemble-enhance step's weights cannot be loaded.
    """
    info: dict = {"enhancement": preset.name, "chain": []}
    y = audio.validate(y, sr, name=f"input of preset {preset.name!r}")
    current = audio_hash(y, sr)
    steps = preset.chain()
    for i, step in enumerate(steps, start=1):
        label = f"{preset.name} step {i} ({step.type if step.type != 'command' else 'command ' + step.label})"
        if isinstance(step, LoudnessStep):
            y, loud = loudness_step(y, sr, target_lufs=step.target_lufs)
            info.update(loud)
            info["chain"].append({"step": label, "cached": False})
            continue
        if isinstance(step, ResembleEnhanceStep):  # missing weights: say so before hashing them
            avail = preset_availability(_as_preset(step, preset.name))
            if not avail.ok:
                raise ModelUnavailable(f"preset {preset.name!r} is unavailable: {avail.reason}")
        key = step_key(current, step, seed=seed)
        t0 = time.perf_counter()
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            y, hit_sr = hit
            if isinstance(step, ResembleEnhanceStep):
                info["enhancer_step"] = _enhancer_label(step)
            if hit_sr != sr:
                y = audio.resample(y, orig_sr=hit_sr, target_sr=sr)
        else:
            if isinstance(step, ResembleEnhanceStep):
                y2, sr2, extra = enhancer_step(y, sr, _as_preset(step, preset.name), device=device, seed=seed)
                info.update(extra)
                y = audio.resample(y2, orig_sr=sr2, target_sr=sr) if sr2 != sr else y2
            else:
                y, _ = command_step(y, sr, step, seed=seed, name=label)
            y = audio.validate(y, sr, name=f"output of {label}")
            if cache is not None:
                cache.put(key, y, sr)
        info["chain"].append(
            {"step": label, "key": key, "cached": hit is not None, "seconds": round(time.perf_counter() - t0, 4)}
        )
        current = audio_hash(y, sr)
    return y, info
