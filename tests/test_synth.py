"""XTTS backend on a tiny random checkpoint: loading, conditioning cache, seeds, LRU, broken folders."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from tiny_models import TINY_SPEAKERS, build_tiny_xtts, tiny_xtts_vocab, write_reference

from workbench.catalog import Checkpoint, InferenceSettings, Reference
from workbench.devices import cuda_available, device_lock, resolve_device
from workbench.errors import AudioError, ModelUnavailable, RenderError
from workbench.synth.xtts import ModelCache, XttsBackend, load_xtts, split_sentences

TEXT = "Hello there, this is a test."


@pytest.fixture(scope="module")
def models() -> ModelCache:
    """A private LRU for this file (two slots), so other tests' models do not interfere."""
    return ModelCache(limit=2)


@pytest.fixture(scope="module")
def ref_wav(tmp_path_factory) -> Path:
    return write_reference(tmp_path_factory.mktemp("refs") / "ref.wav", seconds=3.0)


@pytest.fixture
def backend(tmp_path, models) -> XttsBackend:
    return XttsBackend(cache_dir=tmp_path / "cache", device="cpu", models=models)


def ck(model_dir: Path, name: str = "tiny", **inference) -> Checkpoint:
    return Checkpoint(name=name, model_dir=model_dir, inference=InferenceSettings(**inference))


def rec(path: Path, rid: str = "ref") -> Reference:
    return Reference(id=rid, audio=path)


# ---------------------------------------------------------------------------- text


def test_short_text_stays_one_chunk():
    assert split_sentences("  One.   Two!  ", 250) == ["One. Two!"]


def test_long_text_is_split_at_sentences_within_the_limit():
    text = " ".join(f"Sentence number {i} is here." for i in range(20))
    chunks = split_sentences(text, 80)
    assert len(chunks) > 1
    assert all(len(c) <= 80 for c in chunks)
    assert all(c.endswith(".") for c in chunks)  # cut at sentence ends, not mid-sentence
    assert " ".join(chunks) == text


def test_overlong_sentence_is_wrapped_at_words():
    text = " ".join(["word"] * 100) + "."
    chunks = split_sentences(text, 50)
    assert all(len(c) <= 50 for c in chunks) and " ".join(chunks) == text


# ---------------------------------------------------------------------------- loading + synthesis


def test_loads_through_coqui_and_says_text_at_24k(backend, tiny_xtts_dir, ref_wav):
    loaded = backend.load(ck(tiny_xtts_dir))
    assert loaded.sample_rate == 24000
    assert set(TINY_SPEAKERS) == set(loaded.speakers)
    assert type(loaded.model).__name__ == "Xtts" and not loaded.model.training
    y, sr, info = backend.say(ck(tiny_xtts_dir), rec(ref_wav), TEXT, language="en", seed=7)
    assert sr == 24000 and y.dtype == np.float32 and y.ndim == 1
    assert len(y) > sr // 4 and np.all(np.isfinite(y)) and np.max(np.abs(y)) > 0
    assert info["seed"] == 7 and info["device"] == "cpu" and len(info["model_files_hash"]) == 64


def test_same_seed_same_audio_other_seed_other_audio(backend, tiny_xtts_dir, ref_wav):
    import torch

    c, r = ck(tiny_xtts_dir), rec(ref_wav)
    a, _, _ = backend.say(c, r, TEXT, language="en", seed=11)
    torch.manual_seed(999)  # the global RNG must not matter
    b, _, _ = backend.say(c, r, TEXT, language="en", seed=11)
    d, _, _ = backend.say(c, r, TEXT, language="en", seed=12)
    np.testing.assert_array_equal(a, b)
    assert len(a) != len(d) or not np.allclose(a, d)


def test_synthesis_leaves_the_global_rng_alone(backend, tiny_xtts_dir, ref_wav):
    import torch

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    backend.say(ck(tiny_xtts_dir), rec(ref_wav), TEXT, language="en", seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_long_text_is_synthesised_in_chunks(backend, tiny_xtts_dir, ref_wav):
    text = " ".join(["The committee met after the storm, and the archivist explained everything."] * 5)
    _, _, split = backend.say(ck(tiny_xtts_dir), rec(ref_wav), text, language="en", seed=1)
    _, _, whole = backend.say(
        ck(tiny_xtts_dir, enable_text_splitting=False), rec(ref_wav), "Short one.", language="en", seed=1
    )
    assert split["text_chunks"] == 2 and whole["text_chunks"] == 1


def test_unknown_language_is_a_clear_error(backend, tiny_xtts_dir, ref_wav):
    with pytest.raises(RenderError, match=r"language 'ja' is not one of .*en"):
        backend.say(ck(tiny_xtts_dir), rec(ref_wav), TEXT, language="ja", seed=1)


# ---------------------------------------------------------------------------- conditioning


def test_conditioning_is_computed_once_and_kept_on_disk(tmp_path, models, tiny_xtts_dir, ref_wav):
    import torch

    cache = tmp_path / "cache"
    first = XttsBackend(cache_dir=cache, device="cpu", models=models)
    _, _, info1 = first.say(ck(tiny_xtts_dir), rec(ref_wav), TEXT, language="en", seed=1)
    _, _, info2 = first.say(ck(tiny_xtts_dir), rec(ref_wav), "Another sentence.", language="en", seed=1)
    assert (info1["conditioning"], info2["conditioning"]) == ("computed", "cached")
    files = list((cache / "conditioning").rglob("*.pt"))
    assert [f.stem for f in files] == [info1["conditioning_key"]]
    saved = torch.load(files[0], weights_only=True)
    assert saved["gpt_cond_latent"].shape == (1, 32, 64) and saved["speaker_embedding"].shape == (1, 512, 1)

    restarted = XttsBackend(cache_dir=cache, device="cpu", models=models)
    _, _, info3 = restarted.say(ck(tiny_xtts_dir), rec(ref_wav), TEXT, language="en", seed=1)
    assert info3["conditioning"] == "cached" and restarted.stats["conditioning_computed"] == 0

    _, _, info4 = restarted.say(ck(tiny_xtts_dir, gpt_cond_len=3), rec(ref_wav), TEXT, language="en", seed=1)
    assert info4["conditioning"] == "computed" and info4["conditioning_key"] != info1["conditioning_key"]


def test_cached_conditioning_gives_the_same_audio(tmp_path, models, tiny_xtts_dir, ref_wav):
    b = XttsBackend(cache_dir=tmp_path / "c", device="cpu", models=models)
    a, _, i1 = b.say(ck(tiny_xtts_dir), rec(ref_wav), TEXT, language="en", seed=3)
    c, _, i2 = b.say(ck(tiny_xtts_dir), rec(ref_wav), TEXT, language="en", seed=3)
    assert (i1["conditioning"], i2["conditioning"]) == ("computed", "cached")
    np.testing.assert_array_equal(a, c)


def test_corrupt_conditioning_file_is_recomputed(tmp_path, models, tiny_xtts_dir, ref_wav):
    b = XttsBackend(cache_dir=tmp_path / "c", device="cpu", models=models)
    _, _, info = b.say(ck(tiny_xtts_dir), rec(ref_wav), TEXT, language="en", seed=3)
    (f,) = (tmp_path / "c" / "conditioning").rglob("*.pt")
    f.write_bytes(b"garbage")
    _, _, again = b.say(ck(tiny_xtts_dir), rec(ref_wav), TEXT, language="en", seed=3)
    assert again["conditioning"] == "computed" and again["conditioning_key"] == info["conditioning_key"]


def test_too_short_reference_names_the_file(backend, tiny_xtts_dir, tmp_path):
    short = write_reference(tmp_path / "blip.wav", seconds=0.2)
    with pytest.raises(AudioError, match=r"blip\.wav: .*too short"):
        backend.say(ck(tiny_xtts_dir), rec(short), TEXT, language="en", seed=1)


def test_builtin_speaker_by_name(backend, tiny_xtts_dir):
    ref = Reference(id="b", builtin_speaker="Other Speaker")
    y, sr, info = backend.say(ck(tiny_xtts_dir), ref, TEXT, language="en", seed=2)
    assert info["conditioning"] == "builtin" and len(y) > 0
    other, _, _ = backend.say(
        ck(tiny_xtts_dir), Reference(id="t", builtin_speaker="Tiny Speaker"), TEXT, language="en", seed=2
    )
    assert len(y) != len(other) or not np.allclose(y, other)


def test_unknown_builtin_speaker_lists_the_available_ones(backend, tiny_xtts_dir):
    with pytest.raises(RenderError, match=r"'Nobody' is not in .*speakers_xtts\.pth; available: Other Speaker, Tiny"):
        backend.say(ck(tiny_xtts_dir), Reference(id="x", builtin_speaker="Nobody"), TEXT, language="en", seed=1)


@pytest.mark.slow  # loads an XTTS model
def test_builtin_speaker_without_speakers_file(backend, tmp_path_factory):
    folder = build_tiny_xtts(tmp_path_factory.mktemp("nospk") / "m", seed=0, speakers=None)
    with pytest.raises(RenderError, match=r"needs speakers_xtts\.pth in .*use a recording"):
        backend.say(ck(folder), Reference(id="x", builtin_speaker="Tiny Speaker"), TEXT, language="en", seed=1)


# ---------------------------------------------------------------------------- model cache


@pytest.fixture(scope="module")
def second_model(tmp_path_factory) -> Path:
    return build_tiny_xtts(tmp_path_factory.mktemp("second") / "m2", seed=1)


def test_lru_keeps_at_most_the_limit_and_evicts_the_least_recent(tmp_path, tiny_xtts_dir, second_model):
    lru = ModelCache()
    b = XttsBackend(cache_dir=tmp_path, device="cpu", models=lru)
    a_ck, b_ck = ck(tiny_xtts_dir, "a"), ck(second_model, "b")
    first = b.load(a_ck)
    assert b.load(a_ck) is first and lru.stats["loads"] == 1  # loads once
    b.load(b_ck)
    assert [k[0] for k in lru.loaded()] == [str(second_model.resolve())] and lru.stats["evictions"] == 1

    lru.limit = 2
    b.load(a_ck)  # back, and now most recent
    b.load(b_ck)  # b is most recent again
    b.load(a_ck)
    assert [k[0] for k in lru.loaded()] == [str(second_model.resolve()), str(tiny_xtts_dir.resolve())]
    assert lru.stats["loads"] == 3


def test_the_process_model_budget_is_set_where_the_process_starts_not_by_a_backend(
    tmp_path, tiny_xtts_dir, second_model, monkeypatch
):
    from tiny_models import write_tiny_catalog

    import app
    from workbench.synth import xtts

    lru = ModelCache(limit=2)
    monkeypatch.setattr(xtts, "MODELS", lru)  # this test's own process-wide cache
    b = XttsBackend(cache_dir=tmp_path / "c", device="cpu")
    assert b.models is lru and lru.limit == 2  # building a backend leaves the budget alone
    b.load(ck(tiny_xtts_dir, "a"))
    b.load(ck(second_model, "b"))
    assert len(lru.loaded()) == 2
    config = write_tiny_catalog(tmp_path / "cat", {"tiny": tiny_xtts_dir}, max_loaded_models=1)
    app.make_context(app.parse_args(["--config", str(config), "--votes", str(tmp_path / "votes.csv")]))
    # the app's context factory applies settings.max_loaded_models, unloading the older model now
    assert lru.limit == 1 and [k[0] for k in lru.loaded()] == [str(second_model.resolve())]


def test_concurrent_requests_load_a_model_once(tmp_path, tiny_xtts_dir):
    lru = ModelCache(limit=1)
    b = XttsBackend(cache_dir=tmp_path, device="cpu", models=lru)
    got, errors = [], []

    def worker():
        try:
            got.append(b.load(ck(tiny_xtts_dir)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 4 and all(m is got[0] for m in got)
    assert lru.stats["loads"] == 1 and lru.stats["hits"] == 3


def test_changed_model_files_load_as_a_new_model(tmp_path, tiny_xtts_dir):
    folder = tmp_path / "m"
    shutil.copytree(tiny_xtts_dir, folder)
    lru = ModelCache(limit=1)
    b = XttsBackend(cache_dir=tmp_path, device="cpu", models=lru)
    first = b.load(ck(folder))
    build_tiny_xtts(folder, seed=5)  # the same folder, retrained
    assert b.load(ck(folder)) is not first and lru.stats["loads"] == 2


def test_one_lock_per_device():
    assert device_lock("cuda") is device_lock("cuda:0")
    assert device_lock("cpu") is not device_lock("cuda:0")


def test_device_resolution():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if cuda_available() else "cpu")
    with pytest.raises(ModelUnavailable, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not cuda_available():
        with pytest.raises(ModelUnavailable, match="no CUDA GPU.*--device cpu"):
            resolve_device("cuda")


# ---------------------------------------------------------------------------- broken checkpoints


def _break(folder: Path, how: str) -> str:
    """Damage a copy of a checkpoint; return a regex the error message must match."""
    if how == "missing vocab.json":
        (folder / "vocab.json").unlink()
        return r"vocab\.json missing; put an XTTS v2 checkpoint folder here"
    if how == "bad config.json":
        (folder / "config.json").write_text('{"model": "xtts", "model_args": {')
        return r"config\.json: not valid JSON \(line 1, .*restore the config\.json"
    if how == "config.json of another model":
        data = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**data, "model": "vits"}))
        return r"config\.json: model is 'vits', not 'xtts'"
    if how == "truncated model.pth":
        data = (folder / "model.pth").read_bytes()
        (folder / "model.pth").write_bytes(data[: len(data) // 2])
        return r"model\.pth: cannot be read, the file is truncated or corrupt .*copy model\.pth again"
    if how == "empty model.pth":
        (folder / "model.pth").write_bytes(b"")
        return r"model\.pth: cannot be read, the file is truncated or corrupt"
    if how == "vocab of another checkpoint":
        tiny_xtts_vocab(folder / "vocab.json", extra_chars="@#$%&")
        return r"vocab\.json: defines \d+ text tokens but model\.pth was trained with \d+; .*Copy the vocab\.json"
    if how == "unreadable speakers_xtts.pth":
        (folder / "speakers_xtts.pth").write_bytes(b"not a torch file")
        return r"speakers_xtts\.pth: built-in speaker file cannot be read"
    raise AssertionError(how)


BROKEN = [
    "missing vocab.json",
    "bad config.json",
    "config.json of another model",
    "truncated model.pth",
    "empty model.pth",
    "vocab of another checkpoint",
    "unreadable speakers_xtts.pth",
]


@pytest.mark.parametrize("how", BROKEN)
def test_broken_checkpoint_is_model_unavailable_naming_the_file(how, tmp_path, tiny_xtts_dir, ref_wav):
    folder = tmp_path / "broken"
    shutil.copytree(tiny_xtts_dir, folder)
    pattern = _break(folder, how)
    b = XttsBackend(cache_dir=tmp_path / "cache", device="cpu", models=ModelCache(limit=1))
    with pytest.raises(ModelUnavailable, match=pattern) as e:
        b.say(ck(folder), rec(ref_wav), TEXT, language="en", seed=1)
    assert str(folder) in str(e.value)
    # the same backend still serves a good checkpoint afterwards
    y, _, _ = b.say(ck(tiny_xtts_dir), rec(ref_wav), TEXT, language="en", seed=1)
    assert len(y) > 0


def test_load_xtts_checks_before_building(tmp_path):
    with pytest.raises(ModelUnavailable, match="folder missing"):
        load_xtts(tmp_path / "nothing")


# ---------------------------------------------------------------------------- base model


def test_base_model_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("COQUI_TOS_AGREED", "1")
    b = XttsBackend(cache_dir=tmp_path, device="cpu", base_models_dir=tmp_path / "coqui", models=ModelCache())
    base = Checkpoint(name="base", base_model="xtts_v2")
    with pytest.raises(ModelUnavailable, match=r"xtts_v2 base model could not be downloaded .*set model_dir"):
        b.load(base)


def test_base_model_needs_the_licence_accepted(tmp_path, monkeypatch):
    monkeypatch.delenv("COQUI_TOS_AGREED", raising=False)
    b = XttsBackend(cache_dir=tmp_path, device="cpu", base_models_dir=tmp_path / "coqui", models=ModelCache())
    with pytest.raises(ModelUnavailable, match=r"COQUI_TOS_AGREED=1"):
        b.load(Checkpoint(name="base", base_model="xtts_v2"))
