"""The demo stand-in for resemble-enhance: what it does to audio, when it runs, how it is offered."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import audio, demo_enhance
from workbench.catalog import EnhancePreset, load_catalog
from workbench.comparison import preset_offer
from workbench.render import Renderer, RenderRequest

SR = 24000


def band_db(y: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    return 10 * np.log10(spec[(f >= lo) & (f < hi)].sum())


def test_room_noise_sits_the_given_distance_below_the_speech():
    speech = np.concatenate([audio.sine(220, sr=SR, seconds=1.0, amplitude=0.5), np.zeros(SR, np.float32)])
    noisy = demo_enhance.raw_take(speech, SR, seed=3, snr_db=20)
    noise = noisy - speech
    speech_rms = float(np.sqrt(np.mean(speech[:SR] ** 2)))
    assert 20 * np.log10(speech_rms / np.sqrt(np.mean(noise**2))) == pytest.approx(20, abs=0.5)
    assert np.array_equal(noisy, demo_enhance.raw_take(speech, SR, seed=3, snr_db=20))  # seeded
    assert not np.array_equal(noisy, demo_enhance.raw_take(speech, SR, seed=4, snr_db=20))


def test_high_shelf_lifts_the_top_and_leaves_the_bottom():
    rng = np.random.default_rng(0)
    white = rng.standard_normal(4 * SR).astype(np.float32) * 0.1
    out = demo_enhance.high_shelf(white, SR)
    assert band_db(out, 8000, 11000) - band_db(white, 8000, 11000) == pytest.approx(6.0, abs=0.5)
    assert band_db(out, 50, 300) - band_db(white, 50, 300) == pytest.approx(0.0, abs=0.5)


def test_spectral_gating_removes_most_of_the_added_noise():
    tone = np.concatenate([np.zeros(SR, np.float32), audio.sine(300, sr=SR, seconds=1.0, amplitude=0.5)])
    noisy = demo_enhance.raw_take(tone, SR, seed=1)
    cleaned = demo_enhance.spectral_gate(noisy, SR)
    noise_before = np.sqrt(np.mean(noisy[2000 : SR - 2000] ** 2))
    noise_after = np.sqrt(np.mean(cleaned[2000 : SR - 2000] ** 2))
    assert 20 * np.log10(noise_before / noise_after) > 10


def test_demo_checkpoints_render_missing_presets_with_the_labelled_stand_in(demo_catalog, tmp_path):
    r = Renderer(demo_catalog)
    plain = r.render(RenderRequest("feb1", "surya_1", "pangram"))
    den = r.render(RenderRequest("feb1", "surya_1", "pangram", enhancement="denoise"))
    enh = r.render(RenderRequest("feb1", "surya_1", "pangram", enhancement="enhance"))
    assert den.source == "demo" and den.provenance["stand_in"] == demo_enhance.STAND_IN_VERSION
    assert "noisereduce" in den.provenance["enhancer_step"] and "high shelf" not in den.provenance["enhancer_step"]
    assert "high shelf" in enh.provenance["enhancer_step"] and "strength 0.1" in enh.provenance["enhancer_step"]
    assert "enhancer_hash" not in den.provenance and len({plain.key, den.key, enh.key}) == 3
    assert den.provenance["loudness_out_lufs"] == pytest.approx(-23.0, abs=0.3)
    y_plain, y_den = plain.load()[0], den.load()[0]
    assert len(y_plain) == len(y_den) and not np.allclose(y_plain, y_den, atol=1e-3)
    # deterministic: a fresh cache gives the same samples
    again = Renderer(demo_catalog, cache_dir=tmp_path / "other").render(den.request)
    assert again.key == den.key and np.array_equal(again.load()[0], y_den)


def test_presets_on_offer_are_labelled_and_unrunnable_ones_are_held_back(demo_catalog_path):
    offer = preset_offer(load_catalog(demo_catalog_path))
    assert offer.choices == [
        ("none", "none"),
        ("denoise (demo stand-in)", "denoise"),
        ("enhance (demo stand-in)", "enhance"),
        ("denoise+enhance (demo stand-in)", "denoise+enhance"),
    ]
    assert offer.unavailable == {} and offer.note() == ""
    # a checkpoint with real (non-demo) clips gets no stand-in: those presets are not offered
    text = demo_catalog_path.read_text().replace("demo_dir: demo/clips/apr27", "clips_dir: demo/clips/apr27")
    demo_catalog_path.write_text(text)
    cat = load_catalog(demo_catalog_path)
    assert preset_offer(cat, ["feb1", "apr24"]).names == ["none", "denoise", "enhance", "denoise+enhance"]
    held = preset_offer(cat, ["feb1", "apr27"])
    assert held.names == ["none"] and set(held.unavailable) == {"denoise", "enhance", "denoise+enhance"}
    assert "weights missing" in held.unavailable["denoise"] and "`denoise`" in held.note()


def test_a_preset_with_weights_is_never_replaced_by_the_stand_in(demo_catalog):
    with_weights = EnhancePreset(name="x", denoise=True, weights_dir=None)  # None: downloaded, counts as available
    assert not demo_enhance.runs_as_stand_in(demo_catalog, with_weights, "demo")
    missing = demo_catalog.enhancement("denoise")
    assert demo_enhance.runs_as_stand_in(demo_catalog, missing, "demo")
    assert not demo_enhance.runs_as_stand_in(demo_catalog, missing, "clips")
