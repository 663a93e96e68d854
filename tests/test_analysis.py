"""Known-answer tests of workbench.analysis on synthetic signals, plus the demo catalog."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench import analysis, audio
from workbench.errors import AudioError

SR = 24000


def voice(*, seconds: float = 3.0, f0: float = 120.0, sr: int = SR) -> np.ndarray:
    """A vowel-like stand-in for speech: glottal pulses through moving formants, in syllables.

    F0 swings +-2 semitones around ``f0`` at 0.7 Hz; vowels change every 250 ms.
    """
    n = int(sr * seconds)
    t = np.arange(n) / sr
    phase = np.cumsum(f0 * 2 ** (2 * np.sin(2 * np.pi * 0.7 * t) / 12)) / sr
    pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(float)
    source = scipy.signal.lfilter([1], [1, -0.97], pulses)
    vowels = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480)]
    seg = int(0.25 * sr)
    out = np.zeros(n)
    for k in range(0, n, seg):
        x = source[k : k + seg]
        for fc in vowels[(k // seg) % len(vowels)]:
            b, a = scipy.signal.iirpeak(fc, Q=fc / 90.0, fs=sr)
            x = scipy.signal.lfilter(b, a, x)
        out[k : k + seg] = x
    y = out * np.sqrt(np.clip(np.sin(np.pi * (t % 0.25) / 0.25), 0, None))
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def with_noise(y: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(len(y))
    noise *= np.sqrt(np.mean(y.astype(np.float64) ** 2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    return (y + noise).astype(np.float32)


def glide(f_start: float, f_end: float, seconds: float = 2.0) -> np.ndarray:
    """A tone whose frequency moves exponentially (evenly in semitones) from f_start to f_end."""
    t = np.arange(int(seconds * SR)) / SR
    f = f_start * (f_end / f_start) ** (t / seconds)
    return (0.5 * np.sin(2 * np.pi * np.cumsum(f) / SR)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), dtype=np.float32)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return voice()


@pytest.fixture(scope="module")
def speech_analysis(speech) -> analysis.ClipAnalysis:
    return analysis.analyse(speech, sr=SR)


# ---------------------------------------------------------------------------- pitch


@pytest.mark.parametrize("freq", [80.0, 120.0, 220.0, 330.0])
def test_tone_gives_its_frequency_as_f0(freq):
    track = analysis.f0_track(audio.sine(freq, sr=SR, seconds=1.0), sr=SR)
    stats = analysis.f0_stats(track)
    assert stats["f0_median_hz"] == pytest.approx(freq, abs=0.01 * freq / 10)
    assert stats["f0_range_st"] < 0.05
    assert stats["voiced_ratio"] > 0.95


def test_f0_of_a_220_hz_tone_frame_by_frame():
    track = analysis.f0_track(audio.sine(220.0, sr=SR, seconds=1.0), sr=SR)
    f0 = track.f0_hz[track.voiced]
    assert np.all(np.abs(f0[1:-1] - 220.0) < 0.05)  # first/last frame half outside the tone
    assert np.all(np.abs(f0 - 220.0) < 1.5)
    assert track.times[1] - track.times[0] == pytest.approx(0.01)
    assert len(track.times) == len(track.f0_hz) == len(track.voiced) == 1 + SR // 240


def test_glide_over_an_octave_gives_range_and_spread_in_semitones():
    stats = analysis.f0_stats(analysis.f0_track(glide(150.0, 300.0), sr=SR))
    # evenly spread over 12 semitones: 5..95 percentile spans 90% of it, SD = 12 / sqrt(12)
    assert stats["f0_range_st"] == pytest.approx(10.8, abs=0.3)
    assert stats["f0_std_st"] == pytest.approx(12 / math.sqrt(12), abs=0.15)
    assert stats["f0_median_hz"] == pytest.approx(150 * math.sqrt(2), rel=0.02)


def test_noise_and_silence_are_unvoiced(rng):
    y = np.concatenate([0.3 * rng.standard_normal(SR).astype(np.float32), silence(1.0)])
    track = analysis.f0_track(y, sr=SR)
    assert track.voiced.mean() < 0.05
    assert not track.voiced[track.times > 1.05].any()
    assert np.all(np.isnan(track.f0_hz[~track.voiced]))


def test_voiced_spans_follow_the_tone():
    y = np.concatenate([silence(0.5), audio.sine(150.0, sr=SR, seconds=1.0), silence(0.5)])
    spans = analysis.f0_track(y, sr=SR).voiced_spans()
    assert len(spans) == 1
    assert spans[0][0] == pytest.approx(0.5, abs=0.03)
    assert spans[0][1] == pytest.approx(1.5, abs=0.03)


def test_inflected_voice_has_a_wider_range_than_a_flat_one():
    flat = analysis.f0_stats(analysis.f0_track(glide(118.0, 122.0), sr=SR))
    lively = analysis.f0_stats(analysis.f0_track(glide(100.0, 160.0), sr=SR))
    assert flat["f0_range_st"] < 1.0 < 6.0 < lively["f0_range_st"]


def test_f0_range_must_be_sane():
    with pytest.raises(AudioError, match="fmin"):
        analysis.f0_track(audio.sine(100.0), sr=SR, fmin=500, fmax=100)


def test_hz_to_semitones():
    assert analysis.hz_to_semitones(440.0, ref_hz=220.0) == pytest.approx(12.0)
    assert np.isnan(analysis.hz_to_semitones(np.nan, ref_hz=100.0))


# ---------------------------------------------------------------------------- level, silence, rate


def test_loudness_and_peak_of_a_known_sine():
    y = audio.sine(997.0, sr=SR, seconds=3.0, amplitude=0.5)
    # BS.1770: a full-scale 997 Hz sine reads -3.01 LUFS; half amplitude is 6.02 dB lower
    assert analysis.loudness_lufs(y, sr=SR) == pytest.approx(-9.03, abs=0.1)
    assert analysis.peak_dbfs(y) == pytest.approx(-6.02, abs=0.01)


def test_silence_ratio_of_half_silence():
    y = np.concatenate([audio.sine(200.0, sr=SR, seconds=1.0), silence(1.0)])
    assert analysis.silence_ratio(y, sr=SR) == pytest.approx(0.5, abs=0.03)
    assert analysis.silence_ratio(audio.sine(200.0, sr=SR), sr=SR) == pytest.approx(0.0, abs=0.02)


def test_speech_bounds_and_speaking_rate():
    y = np.concatenate([silence(0.5), audio.sine(200.0, sr=SR, seconds=2.0), silence(0.5)])
    start, end = analysis.speech_bounds(y, sr=SR)
    assert start == pytest.approx(0.5, abs=0.03)
    assert end == pytest.approx(2.5, abs=0.03)
    # 20 characters (spaces do not count) over 2 s of sound
    assert analysis.speaking_rate(y, sr=SR, text="abcde fghij klmno pqrst") == pytest.approx(10.0, rel=0.03)
    assert math.isnan(analysis.speaking_rate(y, sr=SR, text="   "))


def test_energy_contour_level_of_a_sine():
    times, level = analysis.energy_contour(audio.sine(300.0, sr=SR, seconds=1.0, amplitude=0.5), sr=SR)
    assert times.shape == level.shape
    # RMS of a sine with amplitude 0.5 is 0.5 / sqrt(2): -9.03 dBFS
    assert np.median(level) == pytest.approx(-9.03, abs=0.1)


# ---------------------------------------------------------------------------- spectrum


def test_centroid_of_a_tone_is_its_frequency():
    power = analysis.power_spectrogram(audio.sine(1000.0, sr=SR, seconds=1.0), sr=SR)
    assert analysis.spectral_centroid(power, sr=SR) == pytest.approx(1000.0, rel=0.03)


def _coloured_noise(rng: np.random.Generator, exponent: float, seconds: float = 4.0) -> np.ndarray:
    """Noise whose power falls as 1 / f**exponent (0 white, 1 pink)."""
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[1:] /= f[1:] ** (exponent / 2)
    y = np.fft.irfft(spec, n)
    return (0.3 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.mark.parametrize(("exponent", "tilt"), [(0.0, 0.0), (1.0, -3.01), (2.0, -6.02)])
def test_tilt_of_coloured_noise_in_db_per_octave(rng, exponent, tilt):
    power = analysis.power_spectrogram(_coloured_noise(rng, exponent), sr=SR)
    assert analysis.spectral_tilt(power, sr=SR) == pytest.approx(tilt, abs=0.5)


def test_low_pass_lowers_centroid_and_steepens_tilt(speech):
    sos = scipy.signal.butter(6, 1500, btype="low", fs=SR, output="sos")
    dull = scipy.signal.sosfiltfilt(sos, speech).astype(np.float32)
    a, b = analysis.analyse(speech, sr=SR, embed=False), analysis.analyse(dull, sr=SR, embed=False)
    assert b.metrics["centroid_hz"] < 0.8 * a.metrics["centroid_hz"]
    assert b.metrics["tilt_db_per_oct"] < a.metrics["tilt_db_per_oct"] - 3


def test_log_mel_shape_and_units():
    mel = analysis.log_mel(audio.sine(440.0, sr=SR, seconds=1.0), sr=SR, n_mels=40)
    assert mel.shape == (40, 1 + SR // 240)
    assert mel.max() < 60 and mel.min() >= -100.001


# ---------------------------------------------------------------------------- envelope


def test_envelope_keeps_every_peak(rng):
    n, n_bins = SR * 30, 1000
    y = (0.01 * rng.standard_normal(n)).astype(np.float32)
    # one spike in each of 50 random bins, well above the noise
    bins = rng.choice(n_bins, size=50, replace=False)
    spikes = (bins * n) // n_bins + rng.integers(0, n // n_bins, size=50)
    y[spikes] = (rng.choice([-1, 1], size=50) * rng.uniform(0.1, 1.0, size=50)).astype(np.float32)
    times, lo, hi = analysis.envelope(y, sr=SR, n_bins=n_bins)
    assert times.shape == lo.shape == hi.shape == (n_bins,)
    for k, b in zip(spikes, bins, strict=True):
        assert (hi[b] if y[k] > 0 else lo[b]) == y[k]
        assert times[b] == pytest.approx(k / SR, abs=0.5 * n / n_bins / SR)
    assert hi.max() == y.max() and lo.min() == y.min()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 5000), n_bins=st.integers(1, 600), seed=st.integers(0, 2**16))
def test_envelope_bins_cover_the_signal_exactly(n, n_bins, seed):
    y = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    times, lo, hi = analysis.envelope(y, sr=100, n_bins=n_bins)
    m = min(n, n_bins)
    assert len(lo) == m
    edges = (np.arange(m + 1) * n) // m
    for i in range(m):
        chunk = y[edges[i] : edges[i + 1]]
        assert lo[i] == chunk.min() and hi[i] == chunk.max()
    assert np.all(np.diff(times) > 0)
    assert times[0] >= 0 and times[-1] <= n / 100


# ---------------------------------------------------------------------------- exact match


def test_identical_files_give_identical(tmp_path, speech):
    p = audio.write(tmp_path / "a.flac", speech, SR)
    a, _ = audio.load(p)
    b, _ = audio.load(p)
    m = analysis.match_verdict(a, b, sr=SR)
    assert m.verdict == "identical"
    assert m.max_abs_diff == 0.0 and m.snr_db == math.inf
    assert m.describe() == "identical"


def test_tiny_difference_is_equal_within_tolerance(speech, rng):
    b = speech + (1e-5 * rng.standard_normal(len(speech))).astype(np.float32)
    m = analysis.match_verdict(speech, b, sr=SR)
    assert m.verdict == "equal within tolerance"
    assert 2e-5 < m.max_abs_diff < 1e-4
    assert m.snr_db > 70
    assert "SNR" in m.describe()


def test_other_audio_is_different(speech):
    m = analysis.match_verdict(speech, voice(f0=150.0), sr=SR)
    assert m.verdict == "different"
    assert m.snr_db < 10


def test_delayed_copy_is_identical_after_alignment(speech):
    delayed = np.concatenate([silence(0.0514), speech])
    assert analysis.match_verdict(speech, delayed, sr=SR).verdict == "different"
    m = analysis.match_verdict(speech, delayed, sr=SR, align=True)
    assert m.verdict == "identical"
    assert m.lag_samples == int(0.0514 * SR)
    assert "after shifting" in m.describe()
    # the other way round: b starts earlier
    assert analysis.match_verdict(delayed, speech, sr=SR, align=True).lag_samples == -int(0.0514 * SR)


def test_shorter_copy_with_trailing_silence_is_reported():
    y = audio.sine(200.0, sr=SR, seconds=1.0)
    m = analysis.match_verdict(y, np.concatenate([y, silence(0.1)]), sr=SR)
    assert m.verdict == "identical" and m.length_diff_samples == int(0.1 * SR)
    assert "lengths differ" in m.describe()


# ---------------------------------------------------------------------------- distance and alignment


def test_dtw_path_of_a_stretched_sequence_costs_nothing():
    x = np.random.default_rng(1).standard_normal((5, 40))
    stretched = np.repeat(x, 2, axis=1)
    path, cost = analysis.dtw_path(x, stretched)
    assert cost == pytest.approx(0.0)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (39, 79)
    assert np.all(np.diff(path, axis=0) >= 0)
    assert np.all(np.diff(path, axis=0).sum(axis=1) >= 1)


def test_dtw_cost_matches_librosa(rng):
    import librosa

    x, y = rng.standard_normal((6, 120)), rng.standard_normal((6, 90))
    acc, _ = librosa.sequence.dtw(X=x, Y=y, metric="euclidean")
    assert analysis.dtw_path(x, y)[1] == pytest.approx(acc[-1, -1])


def test_long_sequences_are_aligned_coarse_to_fine(rng):
    """Above max_cells the banded search still finds the exact warp of a stretched sequence."""
    x = rng.standard_normal((8, 600))
    stretched = np.repeat(x, 3, axis=1)
    path, cost = analysis.dtw_path(x, stretched, max_cells=20_000)
    assert cost == pytest.approx(0.0)
    assert len(path) == 1800 and tuple(path[-1]) == (599, 1799)
    assert {tuple(s) for s in np.diff(path, axis=0)} <= {(0, 1), (1, 0), (1, 1)}


def test_dtw_path_rejects_mismatched_features():
    with pytest.raises(AudioError, match="equal d"):
        analysis.dtw_path(np.zeros((3, 4)), np.zeros((4, 4)))


def test_delayed_copy_aligns_to_zero_distance(speech, speech_analysis):
    delayed = analysis.analyse(np.concatenate([silence(0.0377), speech]), sr=SR)
    assert analysis.clip_mcd(speech_analysis, speech_analysis) == 0.0
    # frames start at the first sound, so only the last frame may differ
    assert analysis.clip_mcd(speech_analysis, delayed) < 0.1
    assert analysis.cosine_similarity(speech_analysis.embedding, delayed.embedding) > 0.99


def test_noise_lowers_similarity_and_raises_distance_monotonically(speech, speech_analysis, rng):
    distances, similarities = [], []
    for snr in (40, 20, 10, 0):
        noisy = analysis.analyse(with_noise(speech, snr, rng), sr=SR)
        distances.append(analysis.clip_mcd(speech_analysis, noisy))
        similarities.append(analysis.cosine_similarity(speech_analysis.embedding, noisy.embedding))
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False)), distances
    assert all(a > b for a, b in zip(similarities, similarities[1:], strict=False)), similarities
    assert distances[0] < 3 and similarities[0] > 0.99


def test_speaker_embedding_is_a_unit_vector(speech):
    emb = analysis.speaker_embedding(speech, sr=SR)
    assert emb.shape == (256,)
    assert np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-4)
    assert analysis.speaker_similarity(speech, speech, sr=SR) == pytest.approx(1.0, abs=1e-5)


def test_align_modes_place_a_delayed_copy(speech, speech_analysis):
    delay = 0.25
    delayed = analysis.analyse(np.concatenate([silence(delay), speech]), sr=SR, embed=False)
    raw = analysis.align([speech_analysis, delayed], mode="raw")
    assert raw[1](1.0) == pytest.approx(1.0)
    trimmed = analysis.align([speech_analysis, delayed], mode="trimmed")
    # after trimming, the same instant of sound sits at the same display time
    assert trimmed[1](1.0 + delay) == pytest.approx(float(trimmed[0](1.0)), abs=0.011)
    dtw = analysis.align([speech_analysis, delayed], mode="dtw")
    t = np.array([0.5, 1.0, 2.0, 2.9])
    assert np.allclose(dtw[1](t + delay), t, atol=0.011)
    assert dtw[0](1.0) == pytest.approx(1.0)
    with pytest.raises(AudioError, match="alignment mode"):
        analysis.align([speech_analysis], mode="sideways")


def test_dtw_time_map_follows_a_slowed_copy(speech, speech_analysis):
    slow = audio.resample(speech, orig_sr=SR, target_sr=int(SR * 1.2))  # 20% longer when played at SR
    slowed = analysis.analyse(slow, sr=SR, embed=False)
    tm = analysis.align([speech_analysis, slowed], mode="dtw")[1]
    assert tm(1.2 * 2.0) == pytest.approx(2.0, abs=0.06)
    assert np.all(np.diff(tm.dst_s) >= 0)


# ---------------------------------------------------------------------------- tables


def test_metrics_and_pairwise_tables(speech, speech_analysis, rng):
    noisy = with_noise(speech, 20, rng)
    an = {"ref": speech_analysis, "a": speech_analysis, "b": analysis.analyse(noisy, sr=SR)}
    table = analysis.metrics_table(an, reference="ref", anchor="a")
    assert list(table.columns) == analysis.METRIC_COLUMNS
    assert list(table.index) == ["ref", "a", "b"]
    assert table.loc["a", "speaker_similarity"] == pytest.approx(1.0, abs=1e-5)
    assert table.loc["b", "speaker_similarity"] < table.loc["a", "speaker_similarity"]
    assert math.isnan(table.loc["a", "mcd_db"]) and math.isnan(table.loc["ref", "mcd_db"])
    assert table.loc["b", "mcd_db"] > 1
    pairs = analysis.pairwise_table({"a": speech, "a2": speech.copy(), "b": noisy}, an | {"a2": an["a"]}, sr=SR)
    assert list(pairs[["a", "b"]].itertuples(index=False, name=None)) == [("a", "a2"), ("a", "b"), ("a2", "b")]
    assert list(pairs["verdict"]) == ["identical", "different", "different"]


def test_analyse_with_text_reports_rate(speech):
    metrics = analysis.analyse(speech, sr=SR, text="x" * 30, embed=False).metrics
    assert metrics["speaking_rate_cps"] == pytest.approx(10.0, rel=0.05)
    assert set(metrics) == set(analysis.METRIC_COLUMNS) - {"speaker_similarity", "mcd_db"}


def test_metric_deltas():
    df = analysis.metric_deltas({"x": 1.0, "y": 2.0}, {"x": 1.5, "y": 1.0, "z": 0.0})
    assert list(df.index) == ["x", "y"]
    assert list(df["delta"]) == [0.5, -1.0]


@pytest.mark.parametrize("bad", [np.zeros((10, 2, 2)), np.zeros(0)])
def test_bad_arrays_are_refused(bad):
    with pytest.raises(AudioError):
        analysis.analyse(bad, sr=SR)


# ---------------------------------------------------------------------------- the demo catalog


@pytest.mark.parametrize("sentence", ["pangram", "long", "question"])
def test_demo_apr24_is_flatter_than_feb1_and_apr27_livelier(demo_catalog, tmp_path, sentence):
    """The demo makes apr24 flat and low-passed, apr27 inflected: the metrics must show it."""
    from workbench.render import Renderer, RenderRequest

    renderer = Renderer(demo_catalog, cache_dir=tmp_path / "cache")
    metrics = {}
    for ck in ("feb1", "apr24", "apr27"):
        y, sr = renderer.render(RenderRequest(ck, "surya_1", sentence)).load()
        metrics[ck] = analysis.analyse(y, sr=sr, embed=False).metrics
    assert metrics["apr24"]["f0_range_st"] < 0.6 * metrics["feb1"]["f0_range_st"]
    assert metrics["apr24"]["f0_std_st"] < metrics["feb1"]["f0_std_st"]
    assert metrics["apr27"]["f0_range_st"] > metrics["feb1"]["f0_range_st"]
    assert metrics["apr24"]["centroid_hz"] < metrics["feb1"]["centroid_hz"]
