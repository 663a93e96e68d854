"""XTTS v2 backend: Coqui checkpoints in, mono float32 at 24 kHz out.

Three caches make repeated renders cheap:

- **models**: :class:`ModelCache`, an LRU of loaded checkpoints (``max_loaded_models``),
  shared by every renderer in the process; each checkpoint loads once;
- **conditioning**: the GPT conditioning latents and the speaker embedding depend only
  on (checkpoint files, reference audio, conditioning settings), so they are computed
  once and kept on disk under ``<cache_dir>/conditioning/``;
- rendered clips live in :mod:`workbench.render`'s cache.

Loading goes through Coqui's real code (``XttsConfig``, ``Xtts.init_from_config``,
``load_checkpoint``). A broken folder raises :class:`ModelUnavailable` naming the file
and what to do. Synthesis is deterministic for a seed: the torch RNG is forked and
seeded around each call, so other work in the process neither disturbs nor is disturbed.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import pickle
import re
import textwrap
import threading
import time
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import audio
from ..catalog import Checkpoint, InferenceSettings, Reference, model_dir_problem, reference_audio_path
from ..devices import device_lock, resolve_device, seeded
from ..errors import AudioError, ModelUnavailable, RenderError
from ..fsutil import atomic_open
from ..hashing import model_files_hash, sha256_file
from ..renderplan import RenderPlan
from .base import Synthesis

log = logging.getLogger(__name__)

#: bump when conditioning is computed differently (invalidates cached latents)
CONDITIONING_VERSION = "1"
#: rate XTTS reads references at (its conditioning encoders' rate), Hz
CONDITIONING_SR = 22050
#: Coqui model names of the base models a catalog may name with ``base_model``
BASE_MODELS = {"xtts_v2": "tts_models/multilingual/multi-dataset/xtts_v2"}


# ---------------------------------------------------------------------------- text


_SENTENCE_END = re.compile(r"(?<=[.!?…。！？;])[\"')\]]*\s+")


def split_sentences(text: str, max_chars: int = 250) -> list[str]:
    """Split ``text`` into chunks XTTS can say in one go, like Coqui's own splitter.

    Sentences (ending in . ! ? … ; or CJK stops) are packed greedily into chunks of at
    most ``max_chars`` characters; a single sentence longer than that is wrapped at
    word boundaries. Text shorter than ``max_chars`` is returned as one chunk.

    >>> split_sentences("One. Two!", max_chars=250)
    ['One. Two!']
    >>> split_sentences("One two. Three four.", max_chars=10)
    ['One two.', 'Three four.']
    """
    text = " ".join(text.split())
    if not text:
        return []
    if len(text) < max_chars:
        return [text]
    chunks: list[str] = []
    for sentence in (s.strip() for s in _SENTENCE_END.split(text)):
        if not sentence:
            continue
        if len(sentence) > max_chars:
            chunks.extend(textwrap.wrap(sentence, width=max_chars, break_on_hyphens=False))
        elif chunks and len(chunks[-1]) + 1 + len(sentence) <= max_chars:
            chunks[-1] = f"{chunks[-1]} {sentence}"
        else:
            chunks.append(sentence)
    return chunks


# ---------------------------------------------------------------------------- loading


@dataclass
class LoadedXtts:
    """A checkpoint loaded on a device, ready for conditioning and synthesis."""

    model: Any  # TTS.tts.models.xtts.Xtts in eval mode on ``device``
    model_dir: Path
    model_hash: str  # sha256 over config.json, model.pth, vocab.json, speakers_xtts.pth
    device: str
    sample_rate: int  # output rate (Hz), 24000 for XTTS v2
    languages: tuple[str, ...]
    speakers: tuple[str, ...]  # built-in speaker names from speakers_xtts.pth
    load_s: float  # seconds the load took

    def char_limit(self, language: str) -> int:
        """Characters XTTS says well in one go for ``language`` (Coqui's table, 250 by default)."""
        limits = getattr(self.model.tokenizer, "char_limits", {}) or {}
        return int(limits.get(language.split("-")[0], 250))


def _first_sentence(e: BaseException, limit: int = 200) -> str:
    """The first sentence of an exception's message (library messages run long)."""
    text = (str(e).strip().splitlines() or [""])[0]
    text = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".")
    return f"{type(e).__name__}: {text[:limit]}" if text else type(e).__name__


def _read_config(path: Path):
    from TTS.tts.configs.xtts_config import XttsConfig

    fix = f"restore the config.json saved with this checkpoint in {path.parent}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelUnavailable(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); {fix}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ModelUnavailable(f"{path}: cannot be read ({e}); {fix}") from None
    if not isinstance(data, dict):
        raise ModelUnavailable(f"{path}: expected a JSON object with model settings, got {type(data).__name__}; {fix}")
    if data.get("model") != "xtts":
        raise ModelUnavailable(
            f"{path}: model is {data.get('model')!r}, not 'xtts', so this is not an XTTS v2 checkpoint; {fix}"
        )
    config = XttsConfig()
    try:
        config.from_dict(data)
        config.check_values()
    except Exception as e:  # coqpit raises TypeError/ValueError/KeyError for wrong fields
        raise ModelUnavailable(f"{path}: not a valid XTTS config ({type(e).__name__}: {e}); {fix}") from None
    return config


def _vocab_size(path: Path) -> int:
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:
        raise ModelUnavailable(
            f"{path}: not a tokenizer vocab ({e}); copy the vocab.json saved with this checkpoint"
        ) from None
    return max(tok.get_vocab().values()) + 1


def _check_speakers(path: Path) -> None:
    import torch

    if not path.is_file():
        return
    try:
        table = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelUnavailable(
            f"{path}: built-in speaker file cannot be read ({_first_sentence(e)}); "
            "copy speakers_xtts.pth again from Coqui's XTTS v2 release, or delete it to use recordings only"
        ) from None
    if not isinstance(table, dict) or not all(
        isinstance(v, dict) and {"gpt_cond_latent", "speaker_embedding"} <= set(v) for v in table.values()
    ):
        raise ModelUnavailable(
            f"{path}: not an XTTS speaker table (expected name -> gpt_cond_latent, speaker_embedding); "
            "copy speakers_xtts.pth again from Coqui's XTTS v2 release"
        )


def _diagnose_load_failure(model_dir: Path, err: BaseException) -> ModelUnavailable:
    """Turn an exception from ``load_checkpoint`` into a message naming the file at fault."""
    import torch

    model_path = model_dir / "model.pth"
    first = _first_sentence(err)
    unreadable = isinstance(err, EOFError | pickle.UnpicklingError | zipfile.BadZipFile) or any(
        s in str(err) for s in ("PytorchStreamReader", "zip archive", "invalid load key", "unexpected EOF")
    )
    if unreadable:
        size = model_path.stat().st_size if model_path.is_file() else 0
        return ModelUnavailable(
            f"{model_path}: cannot be read, the file is truncated or corrupt ({size / 1e6:.1f} MB; {first}); "
            "copy model.pth again from the training machine"
        )
    try:
        state = torch.load(model_path, map_location="cpu", weights_only=True, mmap=True)
        state = state.get("model", state) if isinstance(state, dict) else {}
        emb = state.get("gpt.text_embedding.weight", state.get("xtts.gpt.text_embedding.weight"))
        n_model = int(emb.shape[0]) if emb is not None else None
    except Exception:
        n_model = None
    n_vocab = _vocab_size(model_dir / "vocab.json")
    if n_model is not None and n_model != n_vocab:
        return ModelUnavailable(
            f"{model_dir / 'vocab.json'}: defines {n_vocab} text tokens but {model_path.name} was trained with "
            f"{n_model}; the vocab belongs to another checkpoint. Copy the vocab.json saved with this checkpoint"
        )
    return ModelUnavailable(
        f"{model_path}: does not match {model_dir / 'config.json'} ({first}); "
        "use the config.json saved together with this model.pth"
    )


def load_xtts(model_dir: Path, *, device: str = "cpu") -> LoadedXtts:
    """Load an XTTS v2 checkpoint folder through Coqui TTS on ``device`` (uncached).

    Raises
    ------
    ModelUnavailable
        naming the file at fault (missing file, bad ``config.json``, truncated
        ``model.pth``, ``vocab.json`` of another checkpoint, unreadable speakers file).
    """
    import torch
    from TTS.tts.models.xtts import Xtts

    t0 = time.perf_counter()
    model_dir = Path(model_dir)
    problem = model_dir_problem(model_dir)
    if problem:
        raise ModelUnavailable(problem)
    config = _read_config(model_dir / "config.json")
    _vocab_size(model_dir / "vocab.json")
    _check_speakers(model_dir / "speakers_xtts.pth")
    digest = model_files_hash(model_dir)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # init_from_config's deprecation notice
            model = Xtts.init_from_config(config)
    except Exception as e:
        raise ModelUnavailable(
            f"{model_dir / 'config.json'}: Coqui TTS cannot build a model from it ({type(e).__name__}: {e}); "
            "restore the config.json saved with this checkpoint"
        ) from None
    try:
        model.load_checkpoint(config, checkpoint_dir=str(model_dir), eval=True)
    except (ModelUnavailable, MemoryError):
        raise
    except Exception as e:
        del model
        gc.collect()
        raise _diagnose_load_failure(model_dir, e) from None
    # load_checkpoint(eval=True) switches only the GPT and the decoder to eval mode;
    # train(False) covers every module (no dropout anywhere) without re-initialising the GPT
    model.train(False)
    try:
        model.to(device)
    except Exception as e:
        raise ModelUnavailable(f"{model_dir}: cannot move the model to {device} ({type(e).__name__}: {e})") from None
    sm = getattr(model, "speaker_manager", None)
    speakers = tuple(sm.speaker_names) if sm is not None else ()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return LoadedXtts(
        model=model,
        model_dir=model_dir,
        model_hash=digest,
        device=device,
        sample_rate=int(config.model_args.output_sample_rate),
        languages=tuple(config.languages),
        speakers=speakers,
        load_s=time.perf_counter() - t0,
    )


class ModelCache:
    """A thread-safe LRU of loaded models, at most ``limit`` at once.

    Room is made *before* a load, so with ``limit=1`` the process never holds two
    checkpoints at the same time. ``stats`` counts ``loads``, ``hits`` and ``evictions``.
    """

    def __init__(self, limit: int = 1):
        self.limit = max(1, int(limit))
        self._models: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple, threading.Lock] = {}
        self.stats = {"loads": 0, "hits": 0, "evictions": 0}

    def get(self, key: tuple, loader: Callable[[], Any]) -> Any:
        """The model for ``key``, loading it with ``loader()`` on a miss (once, even if asked at once)."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                self.stats["hits"] += 1
                return self._models[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
                    self.stats["hits"] += 1
                    return self._models[key]
            self._evict_to(self.limit - 1)
            model = loader()
            with self._lock:
                self._models[key] = model
                self.stats["loads"] += 1
                self._loading.pop(key, None)
            self._evict_to(self.limit)
            return model

    def set_limit(self, limit: int) -> None:
        """Keep at most ``limit`` models from now on (lowering it unloads the least recent now)."""
        self.limit = max(1, int(limit))
        self._evict_to(self.limit)

    def loaded(self) -> list[tuple]:
        """Keys of the loaded models, least recently used first."""
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        """Unload everything."""
        self._evict_to(0)

    def _evict_to(self, n: int) -> None:
        dropped = []
        with self._lock:
            while len(self._models) > max(n, 0):
                key, model = self._models.popitem(last=False)
                dropped.append((key, model))
                self.stats["evictions"] += 1
        if not dropped:
            return
        cuda = any(str(getattr(m, "device", "")).startswith("cuda") for _, m in dropped)
        for key, _ in dropped:
            log.info("unloaded model %s (LRU limit %d)", key[0], self.limit)
        del dropped
        gc.collect()
        _release_freed_memory()
        if cuda:
            import torch

            torch.cuda.empty_cache()


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise, and RSS stays high)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


#: the process's model cache: one GPU, one budget of loaded checkpoints
MODELS = ModelCache(limit=1)


def limit_loaded_models(n: int) -> None:
    """Let this process keep at most ``n`` XTTS checkpoints loaded (the budget of :data:`MODELS`).

    A process-wide setting, so it is made where a process starts, from the catalog's
    ``settings.max_loaded_models``: the app's context factory (``app.py``), the ``render``
    and ``fp16`` commands and each cluster worker. Building a backend never changes it.
    """
    MODELS.set_limit(n)


# ---------------------------------------------------------------------------- backend


@dataclass
class XttsBackend:
    """Synthesize catalog requests with XTTS v2. Thread-safe; one synthesis per device at a time.

    :meth:`synthesize` serves a :class:`~workbench.renderplan.RenderPlan` (the
    :class:`~workbench.synth.base.SynthesisBackend` interface); :meth:`say` is the same
    with the checkpoint, reference and text given directly.

    Parameters
    ----------
    cache_dir : where conditioning latents are kept (``<cache_dir>/conditioning``)
    device : ``auto`` | ``cpu`` | ``cuda`` (``auto`` picks CUDA when visible)
    fp16 : run inference under float16 autocast on CUDA (ignored on CPU)
    models : a private :class:`ModelCache` (default: the process-wide :data:`MODELS`, sized
        by :func:`limit_loaded_models`)
    base_models_dir : where Coqui's model manager keeps base models (default: Coqui's)
    """

    name: ClassVar[str] = "xtts"

    cache_dir: Path
    device: str = "auto"
    fp16: bool = False
    models: ModelCache = field(default_factory=lambda: MODELS)  # the process's LRU unless one is passed
    base_models_dir: Path | None = None
    _base_dirs: dict[str, Path] = field(default_factory=dict, repr=False)
    stats: dict[str, int] = field(default_factory=lambda: {"conditioning_computed": 0, "conditioning_cached": 0})

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir)

    # -------------------------------------------------------------- models

    def model_dir(self, ck: Checkpoint) -> Path:
        """The checkpoint folder to load: ``ck.model_dir``, or Coqui's base model (downloaded)."""
        if ck.model_dir is not None:
            return ck.model_dir
        if ck.base_model:
            return self.base_model_dir(ck.base_model)
        raise RenderError(f"checkpoint {ck.name} has neither model_dir nor base_model")

    def base_model_dir(self, name: str) -> Path:
        """Folder of Coqui's base model ``name``, fetched with Coqui's ModelManager on first use.

        Raises :class:`ModelUnavailable` when the licence was not accepted or the
        download fails (offline), saying what to do.
        """
        if name in self._base_dirs:
            return self._base_dirs[name]
        if name not in BASE_MODELS:
            raise ModelUnavailable(f"unknown base model {name!r}; available: {', '.join(BASE_MODELS)}")
        from TTS.utils.manage import ModelManager

        coqui_name = BASE_MODELS[name]
        manager = ModelManager(output_prefix=self.base_models_dir, progress_bar=False)
        kind, lang, dataset, model = coqui_name.split("/")
        item = manager.models_dict[kind][lang][dataset][model]
        folder = manager.output_prefix / f"{kind}--{lang}--{dataset}--{model}"
        if not ModelManager.tos_agreed(item, folder):
            raise ModelUnavailable(
                f"Coqui's {name} base model is released under the Coqui Public Model License "
                "(https://coqui.ai/cpml); after reading it, set the environment variable COQUI_TOS_AGREED=1 "
                "before starting the workbench to allow the download, or set model_dir to a checkpoint folder"
            )
        try:
            _, config_path, _ = manager.download_model(coqui_name)
        except Exception as e:
            raise ModelUnavailable(
                f"Coqui's {name} base model could not be downloaded ({_first_sentence(e)}). "
                "This machine may be offline: download it once where there is internet "
                f"(python -c \"from TTS.api import TTS; TTS('{coqui_name}')\"), "
                "then copy the model folder here and set model_dir to it"
            ) from None
        folder = Path(config_path).parent
        self._base_dirs[name] = folder
        return folder

    def model_key(self, ck: Checkpoint, device: str) -> tuple[str, str, str]:
        """LRU key of ``ck`` on ``device``: (folder, files hash, device). Raises if the folder is broken."""
        model_dir = self.model_dir(ck)
        problem = model_dir_problem(model_dir)
        if problem:
            raise ModelUnavailable(f"checkpoint {ck.name}: {problem}")
        return (str(model_dir.resolve()), model_files_hash(model_dir), device)

    def load(self, ck: Checkpoint, device: str | None = None) -> LoadedXtts:
        """The loaded model for ``ck`` on ``device`` (resolved), from the LRU or freshly loaded."""
        device = resolve_device(device or self.device)
        key = self.model_key(ck, device)
        with device_lock(device):
            return self.models.get(key, lambda: load_xtts(Path(key[0]), device=device))

    # -------------------------------------------------------------- conditioning

    def conditioning_key(self, loaded: LoadedXtts, ref_path: Path, s: InferenceSettings) -> str:
        """Content key of a reference's conditioning for a checkpoint and settings."""
        payload = {
            "version": CONDITIONING_VERSION,
            "model": loaded.model_hash,
            "reference": sha256_file(ref_path),
            "gpt_cond_len": s.gpt_cond_len,
            "gpt_cond_chunk_len": s.gpt_cond_chunk_len,
            "max_ref_len": s.max_ref_len,
            "sample_rate": CONDITIONING_SR,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def conditioning(
        self, loaded: LoadedXtts, ref: Reference, s: InferenceSettings, reference_file: Path | None = None
    ) -> tuple[Any, Any, dict]:
        """``(gpt_cond_latent, speaker_embedding, info)`` for ``ref``.

        ``reference_file`` is the recording to use (default: ``ref``'s own file, found by
        path); a cluster worker passes the copy the head sent it.

        ``gpt_cond_latent`` is ``(1, n_latents, gpt_channels)``; ``speaker_embedding``
        ``(1, d_vector, 1)``. Built-in speakers come from ``speakers_xtts.pth``; recordings
        are conditioned once per (checkpoint files, audio, settings) and kept on disk.
        ``info["conditioning"]`` is ``builtin``, ``cached`` or ``computed``.
        """
        import torch

        if ref.builtin_speaker:
            return self._builtin(loaded, ref)
        path = Path(reference_file) if reference_file is not None else reference_audio_path(ref)
        if path is None:
            raise RenderError(f"reference {ref.id}: no audio file ({ref.audio} is missing); put the recording there")
        key = self.conditioning_key(loaded, path, s)
        file = self.cache_dir / "conditioning" / key[:2] / f"{key}.pt"
        if file.is_file():
            try:
                d = torch.load(file, map_location="cpu", weights_only=True)
                self.stats["conditioning_cached"] += 1
                info = {"conditioning": "cached", "conditioning_key": key}
                return d["gpt_cond_latent"], d["speaker_embedding"], info
            except Exception as e:
                log.warning("conditioning cache %s unreadable (%s); computing again", file.name, e)
                file.unlink(missing_ok=True)
        y, sr = audio.load(path, sr=CONDITIONING_SR)
        y = np.clip(y[: sr * s.max_ref_len], -1.0, 1.0)
        wav = torch.from_numpy(np.ascontiguousarray(y)).unsqueeze(0).to(loaded.device)
        try:
            with torch.inference_mode():
                speaker_embedding = loaded.model.get_speaker_embedding(wav, sr)
                gpt_cond_latent = loaded.model.get_gpt_cond_latents(
                    wav, sr, length=s.gpt_cond_len, chunk_length=s.gpt_cond_chunk_len
                )
        except RuntimeError as e:
            if "too short" in str(e):
                raise AudioError(
                    f"{path.name}: {len(y) / sr:.2f} s is too short to clone a voice from; use a recording of 3-10 s"
                ) from None
            raise
        d = {"gpt_cond_latent": gpt_cond_latent.detach().cpu(), "speaker_embedding": speaker_embedding.detach().cpu()}
        _torch_save_atomic(d, file)
        self.stats["conditioning_computed"] += 1
        return d["gpt_cond_latent"], d["speaker_embedding"], {"conditioning": "computed", "conditioning_key": key}

    def _builtin(self, loaded: LoadedXtts, ref: Reference) -> tuple[Any, Any, dict]:
        name = ref.builtin_speaker
        sm = getattr(loaded.model, "speaker_manager", None)
        if sm is None:
            raise RenderError(
                f"reference {ref.id}: built-in speaker {name!r} needs speakers_xtts.pth in {loaded.model_dir}; "
                "copy it from Coqui's XTTS v2 release, or use a recording (audio: path)"
            )
        if name not in sm.speakers:
            shown = ", ".join(sorted(sm.speakers)[:12]) + (" ..." if len(sm.speakers) > 12 else "")
            raise RenderError(
                f"reference {ref.id}: built-in speaker {name!r} is not in {loaded.model_dir / 'speakers_xtts.pth'}; "
                f"available: {shown}"
            )
        entry = sm.speakers[name]
        return entry["gpt_cond_latent"], entry["speaker_embedding"], {"conditioning": "builtin"}

    # -------------------------------------------------------------- synthesis

    def synthesize(self, plan: RenderPlan) -> Synthesis:
        """Raw audio for ``plan`` (its checkpoint, reference, text, language and seed)."""
        ck = plan.checkpoint
        if ck.backend != "xtts":
            raise RenderError(f"{ck.name}: backend {ck.backend!r} has no model synthesis; give it clips_dir instead")
        y, sr, info = self.say(
            ck, plan.reference, plan.text, language=plan.language, seed=plan.seed, reference_file=plan.reference_file
        )
        return Synthesis(y, sr, info)

    def say(
        self,
        ck: Checkpoint,
        ref: Reference,
        text: str,
        *,
        language: str,
        seed: int,
        reference_file: Path | None = None,
    ) -> tuple[np.ndarray, int, dict]:
        """Say ``text`` in ``ref``'s voice with checkpoint ``ck``.

        Returns ``(y, sr, info)``: mono float32 ``(n_samples,)`` at the model's rate
        (24000 Hz), and provenance (model hash, device, seed, conditioning, timings in s).
        The same (checkpoint files, reference, text, settings, seed) gives the same samples
        on the same device.
        """
        import torch

        device = resolve_device(self.device)
        s = ck.inference
        with device_lock(device):
            t0 = time.perf_counter()
            was_loaded = self.model_key(ck, device) in self.models.loaded()
            loaded = self.load(ck, device)
            t1 = time.perf_counter()
            gpt_cond_latent, speaker_embedding, cond_info = self.conditioning(loaded, ref, s, reference_file)
            t2 = time.perf_counter()
            lang = language.split("-")[0]
            if language not in loaded.languages and lang not in loaded.languages:
                raise RenderError(
                    f"{ck.name}: language {language!r} is not one of the checkpoint's languages "
                    f"({', '.join(loaded.languages)}); fix the sentence's language or inference.language"
                )
            chunks = split_sentences(text, loaded.char_limit(lang)) if s.enable_text_splitting else [text.strip()]
            use_fp16 = self.fp16 and device.startswith("cuda")
            wavs = []
            try:
                with seeded(device, seed), _autocast(device, use_fp16):
                    for chunk in chunks:
                        out = loaded.model.inference(
                            chunk,
                            language,
                            gpt_cond_latent,
                            speaker_embedding,
                            temperature=s.temperature,
                            length_penalty=s.length_penalty,
                            repetition_penalty=s.repetition_penalty,
                            top_k=s.top_k,
                            top_p=s.top_p,
                            speed=s.speed,
                            enable_text_splitting=False,
                        )
                        wavs.append(np.asarray(out["wav"], dtype=np.float32).reshape(-1))
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
            except AssertionError as e:
                raise RenderError(f"{ck.name}: XTTS refused the text ({e}); shorten the sentence") from None
            except torch.cuda.OutOfMemoryError:
                raise ModelUnavailable(
                    f"{ck.name}: out of GPU memory; set settings.max_loaded_models lower or use --device cpu"
                ) from None
            t3 = time.perf_counter()
        y = np.concatenate(wavs) if wavs else np.zeros(0, dtype=np.float32)
        audio_s = len(y) / loaded.sample_rate
        info = {
            "backend": "xtts",
            "model_dir": str(loaded.model_dir),
            "model_files_hash": loaded.model_hash,
            "device": device,
            "fp16": use_fp16,
            # on CPU the samples depend on torch's thread count too (summation order)
            "cpu_threads": torch.get_num_threads() if device == "cpu" else None,
            "seed": seed,
            "text_chunks": len(chunks),
            "model_cache": "hit" if was_loaded else "loaded",
            **cond_info,
            "synth_timings_s": {
                "load": round(t1 - t0, 4),
                "conditioning": round(t2 - t1, 4),
                "inference": round(t3 - t2, 4),
            },
            "real_time_factor": round((t3 - t2) / audio_s, 4) if audio_s else None,
        }
        return y, loaded.sample_rate, info


def _autocast(device: str, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cuda", dtype=torch.float16)


def _torch_save_atomic(obj: Any, path: Path) -> None:
    import torch

    with atomic_open(path) as f:
        torch.save(obj, f)
