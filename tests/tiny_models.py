"""Tiny, randomly initialised models built at test time through the libraries' real classes.

No weights can be downloaded where the tests run, so these builders write real
checkpoint folders with the same layout as the published ones, small enough to load
and run in well under a second (XTTS) or a few seconds (resemble-enhance):

- :func:`build_tiny_xtts` writes an XTTS v2 checkpoint folder (``config.json``,
  ``model.pth``, ``vocab.json`` and optionally ``speakers_xtts.pth``) that loads through
  ``Xtts.init_from_config`` + ``load_checkpoint`` exactly like a fine-tuned checkpoint.
- :func:`build_tiny_enhancer` writes a resemble-enhance run folder
  (``hparams.yaml`` + ``ds/G/default/mp_rank_00_model_states.pt``) that loads through
  ``resemble_enhance.enhancer.inference.load_enhancer``.
- :func:`write_reference` writes a short speech-like reference recording.

Their output is noise-like speech-shaped audio (random weights), which is all the
pipeline tests need: real loading, conditioning, sampling and decoding code runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: languages the tiny vocab knows (XTTS writes ``[lang]`` in front of every text)
TINY_LANGUAGES = ("en", "de", "fr", "es")
#: characters the tiny vocab spells (after Coqui's text cleaners: lower case, numbers as words)
TINY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-:;()áàâäçéèêëíîïñóôöúùûüß"
#: names of the built-in speakers written to ``speakers_xtts.pth`` by default
TINY_SPEAKERS = ("Tiny Speaker", "Other Speaker")


def tiny_xtts_vocab(path: Path, *, extra_chars: str = "") -> Path:
    """Write a character-level BPE ``vocab.json`` (``tokenizers`` format) to ``path``.

    Special tokens come first (``[STOP]`` = 0, ``[UNK]`` = 1, ``[SPACE]`` = 2,
    ``[START]`` = 3, then one ``[lang]`` token per :data:`TINY_LANGUAGES`), then one
    token per character. ``extra_chars`` adds characters (a different vocab size, e.g.
    to build a vocab that does not match a model).
    """
    from tokenizers import Tokenizer
    from tokenizers.models import BPE

    specials = ["[STOP]", "[UNK]", "[SPACE]", "[START]", *(f"[{lang}]" for lang in TINY_LANGUAGES)]
    chars = list(dict.fromkeys(TINY_CHARS + extra_chars))
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    tok = Tokenizer(BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tok.add_special_tokens(specials)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def tiny_xtts_config(**model_args):
    """An ``XttsConfig`` with a tiny GPT (2 layers, 64 channels) and 66 audio tokens.

    The HiFi-GAN decoder and speaker encoder keep Coqui's fixed sizes; only their
    input width (``decoder_input_dim`` = GPT channels) shrinks. ``model_args``
    override :class:`~TTS.tts.configs.xtts_config.XttsArgs` fields.
    """
    from TTS.tts.configs.xtts_config import XttsArgs, XttsConfig

    args = dict(
        gpt_layers=2,
        gpt_n_model_channels=64,
        gpt_n_heads=4,
        gpt_max_audio_tokens=24,
        gpt_max_text_tokens=402,
        gpt_max_prompt_tokens=70,
        gpt_num_audio_tokens=66,
        gpt_start_audio_token=64,
        gpt_stop_audio_token=65,
        gpt_use_perceiver_resampler=True,
        gpt_use_masking_gt_prompt_approach=True,
        decoder_input_dim=64,
        d_vector_dim=512,
    )
    args.update(model_args)
    config = XttsConfig(model_args=XttsArgs(**args), languages=list(TINY_LANGUAGES))
    return config


def build_tiny_xtts(
    folder: Path,
    *,
    seed: int = 0,
    speakers: tuple[str, ...] | None = TINY_SPEAKERS,
    **model_args,
) -> Path:
    """Write a tiny random XTTS v2 checkpoint folder and return it.

    Parameters
    ----------
    folder : where to write ``config.json``, ``model.pth`` (``{"model": state_dict}``),
        ``vocab.json`` and, unless ``speakers`` is None, ``speakers_xtts.pth``
    seed : torch seed for the random weights (a different seed gives a different
        model hash and different audio)
    speakers : built-in speaker names; each gets random conditioning latents
        ``(1, 32, 64)`` and a speaker embedding ``(1, 512, 1)`` like Coqui's file
    model_args : overrides for :func:`tiny_xtts_config`

    The folder loads through the real ``Xtts.init_from_config`` +
    ``load_checkpoint(config, checkpoint_dir=folder, eval=True)``.
    """
    import torch
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_xtts_vocab(folder / "vocab.json")
    config = tiny_xtts_config(**model_args)
    torch.manual_seed(seed)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(vocab_file=str(vocab))
    model.init_models()
    torch.save({"model": model.state_dict()}, folder / "model.pth")
    config.save_json(str(folder / "config.json"))
    if speakers:
        g = torch.Generator().manual_seed(seed + 1)
        dim = config.model_args.gpt_n_model_channels
        table = {
            name: {
                "gpt_cond_latent": torch.randn(1, 32, dim, generator=g),
                "speaker_embedding": torch.randn(1, config.model_args.d_vector_dim, 1, generator=g),
            }
            for name in speakers
        }
        torch.save(table, folder / "speakers_xtts.pth")
    return folder


def write_reference(path: Path, *, seconds: float = 3.0, sr: int = 22050, f0: float = 140.0, seed: int = 0) -> Path:
    """Write a speech-like reference recording (voiced harmonics with syllable envelope + noise).

    ``seconds`` long at ``sr`` Hz, peak about 0.5, format from the suffix (.wav/.flac).
    """
    from workbench import audio

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    vib = f0 * (1 + 0.05 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(vib) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = 0.5 * (1 + np.sin(2 * np.pi * 3.0 * t - np.pi / 2))
    y = env * y + 0.02 * rng.standard_normal(len(t))
    y = 0.5 * y / np.max(np.abs(y))
    return audio.write(path, y.astype(np.float32), sr)


def build_tiny_enhancer(folder: Path, *, seed: int = 0) -> Path:
    """Write a small random resemble-enhance run folder and return it.

    Layout (what ``load_enhancer(run_dir, device)`` reads): ``hparams.yaml`` and
    ``ds/G/default/mp_rank_00_model_states.pt`` holding ``{"module": state_dict}``.

    The enhancer's HParams shrink what they can (vocoder channels 8, 32 mels, latent
    dim 8) and select the CFM mode the published enhancer uses, so ``enhance`` runs
    its real ODE solver. The latent-flow network and the denoiser U-Net have fixed
    sizes in resemble-enhance (about 178M parameters in all); weights are stored as
    float16 to halve the file (about 360 MB), and ``load_state_dict`` casts them back.
    """
    import torch
    from resemble_enhance.enhancer.enhancer import Enhancer
    from resemble_enhance.enhancer.hparams import HParams

    folder = Path(folder)
    torch.manual_seed(seed)
    hp = HParams(univnet_nc=8, lcfm_latent_dim=8, vocoder_extra_dim=8, num_mels=32, lcfm_training_mode="cfm")
    model = Enhancer(hp)
    ckpt = folder / "ds" / "G" / "default" / "mp_rank_00_model_states.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save({"module": state}, ckpt)
    hp.save_if_not_exists(folder)
    del model, state
    return folder


def read_json(path: Path) -> dict:
    """Read a JSON file (small convenience for tests that edit ``config.json``)."""
    return json.loads(Path(path).read_text())


def write_tiny_catalog(
    folder: Path,
    checkpoints: dict[str, Path],
    *,
    enhancer_dir: Path | None = None,
    max_loaded_models: int = 1,
    seed: int = 1234,
    extra_yaml: str = "",
) -> Path:
    """Write ``<folder>/checkpoints.yaml`` naming tiny model folders; return its path.

    The catalog has the given XTTS ``checkpoints`` (name -> folder), two recorded
    references (``ref_a``, ``ref_b``: speech-like audio written by :func:`write_reference`)
    and one built-in speaker reference (``builtin`` = "Tiny Speaker"), three sentences
    (``short``, ``question``, ``long`` > 250 characters, so it is split) and presets
    ``none`` plus, when ``enhancer_dir`` is given, ``denoise`` and ``enhance`` (nfe 2) on it.
    The cache goes to ``<folder>/cache``; ``extra_yaml`` is appended verbatim.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_reference(folder / "refs" / "ref_a.wav", seconds=3.0, f0=140.0, seed=1)
    write_reference(folder / "refs" / "ref_b.flac", seconds=4.0, f0=210.0, seed=2)
    cks = "".join(
        f"  {name}:\n    model_dir: {Path(path).resolve()}\n    inference:\n      seed: {seed}\n"
        for name, path in checkpoints.items()
    )
    long_text = " ".join(["The committee met after the storm, and the archivist explained everything."] * 5)
    enh = ""
    if enhancer_dir is not None:
        run = Path(enhancer_dir).resolve()
        enh = (
            f"  denoise:\n    denoise: true\n    weights_dir: {run}\n"
            f"  enhance:\n    enhance: true\n    nfe: 2\n    lambd: 0.5\n    weights_dir: {run}\n"
        )
    text = f"""settings:
  cache_dir: cache
  data_dir: data
  max_loaded_models: {max_loaded_models}
  device: cpu
checkpoints:
{cks}references:
  ref_a:
    audio: refs/ref_a.wav
  ref_b:
    audio: refs/ref_b.flac
  builtin:
    builtin_speaker: Tiny Speaker
sentences:
  short:
    text: Hello there, this is a test.
  question:
    text: Have you ever wondered why?
  long:
    text: {long_text}
enhancements:
  none:
    target_lufs: -23
{enh}{extra_yaml}"""
    path = folder / "checkpoints.yaml"
    path.write_text(text)
    return path
