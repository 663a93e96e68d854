"""Quality estimates and bad-take flags: measurements, flags on synthetic bad takes, the store."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from tiny_models import write_tiny_catalog

from workbench import audio, quality
from workbench.catalog import load_catalog
from workbench.errors import RenderError
from workbench.render import Renderer, RenderRequest

SR = 24000
ROOT = Path(__file__).resolve().parents[1]
#: characters per second of the synthetic "checkpoint" below
RATE = 14.0


def speechlike(seconds: float, *, seed: int = 0, f0: float = 140.0) -> np.ndarray:
    """Voiced harmonics with a 4 Hz syllable envelope and a little noise, peak 0.5 (no pauses)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 5 * t))) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 8))
    y = (0.3 + 0.7 * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))) * y + 0.02 * rng.standard_normal(len(t))
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def pad(y: np.ndarray, lead: float = 0.15, tail: float = 0.3) -> np.ndarray:
    return np.concatenate([np.zeros(int(lead * SR), np.float32), y, np.zeros(int(tail * SR), np.float32)])


def take(n_chars: int, *, stretch: float = 1.0, seed: int = 0) -> tuple[np.ndarray, str]:
    """A clip that says ``n_chars`` characters at :data:`RATE` (times ``stretch`` as long)."""
    return pad(speechlike(stretch * n_chars / RATE, seed=seed)), "a" * n_chars


@pytest.fixture(scope="module")
def peers() -> list[dict]:
    """Measurements of five good takes of one checkpoint (no DNSMOS: these checks do not need it)."""
    out = []
    for i, n in enumerate((30, 45, 60, 40, 52)):
        y, text = take(n, seed=i)
        out.append(quality.measure(y, sr=SR, text=text, with_dnsmos=False))
    return out


def checks(flags) -> list[str]:
    return [f.check for f in flags]


# ---------------------------------------------------------------------------- measurements


def test_silences_find_leading_inner_and_trailing_pauses():
    y = np.concatenate([np.zeros(int(0.5 * SR), np.float32), speechlike(1.2), np.zeros(int(3.1 * SR), np.float32)])
    y = np.concatenate([y, speechlike(1.0, seed=1), np.zeros(int(2.0 * SR), np.float32)])
    s = quality.silences(y, sr=SR)
    assert s["leading_silence_s"] == pytest.approx(0.5, abs=0.05)
    assert s["longest_gap_s"] == pytest.approx(3.1, abs=0.06)
    assert s["longest_gap_at_s"] == pytest.approx(1.7, abs=0.05)
    assert s["trailing_silence_s"] == pytest.approx(2.0, abs=0.05)
    clean = quality.silences(pad(speechlike(2.0)), sr=SR)
    assert clean["longest_gap_s"] < 0.1 and clean["leading_silence_s"] < 0.2


def test_clipped_share_finds_flat_tops_even_after_loudness_normalisation():
    y = speechlike(2.0)
    assert quality.clipped_share(y) < 1e-4
    clipped = np.clip(4 * y, -1.0, 1.0)
    normalised = audio.normalize_loudness(clipped, SR, target_lufs=-23.0)
    assert np.abs(normalised).max() < 0.9
    assert quality.clipped_share(normalised) > 0.05


@pytest.mark.slow  # runs the DNSMOS model
def test_dnsmos_scores_a_clean_clip_above_the_same_clip_with_noise(rng):
    y, sr = audio.load(ROOT / "demo" / "clips" / "feb1" / "surya_1" / "pangram.flac")
    noisy = np.clip(y + 0.03 * rng.standard_normal(len(y)).astype(np.float32), -1, 1)
    clean_scores = quality.dnsmos(y, sr=sr)
    noisy_scores = quality.dnsmos(noisy, sr=sr)
    assert set(clean_scores) == {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"}
    assert all(1.0 <= v <= 5.0 for v in clean_scores.values())
    assert clean_scores["dnsmos_ovrl"] > noisy_scores["dnsmos_ovrl"] + 0.2
    assert clean_scores["dnsmos_bak"] > noisy_scores["dnsmos_bak"] + 0.5


def test_measure_gives_every_metric_with_units_that_add_up():
    y, text = take(42)
    m = quality.measure(y, sr=SR, text=text, with_dnsmos=False)
    assert list(m) == list(quality.METRICS)
    assert m["duration_s"] == pytest.approx(len(y) / SR)
    assert m["chars_per_s"] == pytest.approx(42 / m["duration_s"])
    assert math.isnan(m["speaker_similarity"]) and math.isnan(m["dnsmos_ovrl"])


# ---------------------------------------------------------------------------- flags


def test_good_takes_are_not_flagged(peers):
    flags = quality.flag_all(peers, ["ck"] * len(peers))
    assert flags == [[] for _ in peers]


def test_silence_gap_is_flagged_with_its_length_and_place(peers):
    y = np.concatenate([speechlike(1.2), np.zeros(int(3.1 * SR), np.float32), speechlike(1.5, seed=3)])
    m = quality.measure(pad(y), sr=SR, text="a" * 38, with_dnsmos=False)
    flags = quality.flag(m, peers)
    assert "silence" in checks(flags)
    reason = next(f.reason for f in flags if f.check == "silence")
    assert reason == "3.1 s of silence at 1.4 s"


def test_truncated_take_is_flagged_as_too_short(peers):
    y, text = take(60)
    cut = y[: int(0.35 * len(y))]
    flags = quality.flag(quality.measure(cut, sr=SR, text=text, with_dnsmos=False), peers)
    assert checks(flags) == ["duration"]
    assert flags[0].reason.startswith("duration 0.3x the expected")


def test_three_times_too_long_take_is_flagged(peers):
    y, text = take(40, stretch=3.0)
    flags = quality.flag(quality.measure(y, sr=SR, text=text, with_dnsmos=False), peers)
    assert checks(flags) == ["duration"]
    ratio = float(re.match(r"duration (\d+\.\d)x the expected \(9\.0 s; ", flags[0].reason).group(1))
    assert 2.6 <= ratio <= 3.0  # 3x the speech; the peers' pauses at both ends make it a little less


def test_clipped_take_is_flagged(peers):
    y, text = take(45)
    clipped = audio.normalize_loudness(np.clip(5 * y, -1, 1), SR, target_lufs=-23.0)
    flags = quality.flag(quality.measure(clipped, sr=SR, text=text, with_dnsmos=False), peers)
    assert checks(flags) == ["clipping"]
    assert "% of samples flat at the peak" in flags[0].reason


def test_relative_checks_need_enough_peers(peers):
    y, text = take(40, stretch=3.0)
    m = quality.measure(y, sr=SR, text=text, with_dnsmos=False)
    assert quality.flag(m, peers[: quality.MIN_PEERS - 1]) == []
    assert checks(quality.flag(m, peers[: quality.MIN_PEERS])) == ["duration"]


def test_low_dnsmos_and_speaker_similarity_are_flagged_against_the_peers():
    base = {"duration_s": 3.0, "n_chars": 42.0, "chars_per_s": 14.0}
    peers = [{**base, "dnsmos_ovrl": o, "speaker_similarity": s} for o, s in ((3.1, 0.82), (3.0, 0.8), (3.2, 0.85))]
    ok = quality.flag({**base, "dnsmos_ovrl": 2.8, "speaker_similarity": 0.78}, peers)
    assert ok == []
    bad = quality.flag({**base, "dnsmos_ovrl": 2.3, "speaker_similarity": 0.6}, peers)
    assert checks(bad) == ["dnsmos", "speaker"]
    assert bad[0].reason == "DNSMOS OVRL 2.30, below this checkpoint's usual 3.10 (limit 2.60)"
    assert bad[1].reason == "speaker similarity 0.60, below this checkpoint's usual 0.82 (limit 0.72)"


def test_flag_all_compares_only_within_a_group(peers):
    slow, text = take(40, stretch=3.0)
    slow_m = quality.measure(slow, sr=SR, text=text, with_dnsmos=False)
    items = [*peers, slow_m, slow_m, slow_m]
    groups = ["fast"] * len(peers) + ["slow"] * 3
    flags = quality.flag_all(items, groups)
    assert flags[-1] == []  # its peers are just as slow: not flagged against the other group
    assert quality.flag_all([*peers, slow_m], ["fast"] * (len(peers) + 1))[-1][0].check == "duration"


def test_the_demo_broken_take_is_flagged_and_its_siblings_are_not(demo_catalog):
    r = Renderer(demo_catalog)
    store = quality.QualityStore(demo_catalog.settings.cache_dir, with_dnsmos=False)
    for ck in ("feb1", "apr24"):
        a = quality.assess_clip(store, demo_catalog, r.render(RenderRequest(ck, "surya_2", "names")))
        assert a.flags == [], (ck, a.reasons)
    broken = quality.assess_clip(store, demo_catalog, r.render(RenderRequest("apr27", "surya_2", "names")))
    assert broken.reasons.startswith("3.0 s of silence at 1.3 s")
    assert broken.metrics["speaker_similarity"] > 0


# ---------------------------------------------------------------------------- the store


def test_store_measures_once_and_flags_against_stored_peers(demo_catalog):
    r = Renderer(demo_catalog)
    store = quality.QualityStore(demo_catalog.settings.cache_dir, with_dnsmos=False)
    sentences = ["pangram", "question", "exclamation", "emphasis", "names"]
    results = [
        quality.assess_clip(store, demo_catalog, r.render(RenderRequest("apr27", "surya_2", s))) for s in sentences
    ]
    assert store.stats == {"measured": 5, "reused": 0}
    again = quality.assess_clip(store, demo_catalog, r.render(RenderRequest("apr27", "surya_2", "names")))
    assert store.stats["reused"] == 1 and again.metrics == results[-1].metrics
    assert {a.group for a in results} == {results[0].group} and results[0].group.startswith("apr27-")
    flagged = store.flagged()
    assert [a.request["sentence"] for a in flagged] == ["names"]
    assert "silence" in checks(flagged[0].flags)
    # with four peers the duration check runs too: the 3 s pause makes the take long
    assert all(a.flags == [] for a in results[:-1])
    other = quality.QualityStore(demo_catalog.settings.cache_dir, with_dnsmos=False)
    assert [a.key for a in other.flagged()] == [flagged[0].key]  # read back from disk


def test_regenerate_from_a_flag_renders_the_next_take(tmp_path, tiny_xtts_dir, demo_catalog):
    cat = load_catalog(write_tiny_catalog(tmp_path / "cat", {"tiny": tiny_xtts_dir}))
    r = Renderer(cat, device="cpu")
    store = quality.QualityStore(cat.settings.cache_dir, with_dnsmos=False)
    first = quality.assess_clip(store, cat, r.render(RenderRequest("tiny", "ref_a", "short")))
    clip, new = quality.regenerate(store, r, first)
    assert clip.request.take == 2 and new.request["take"] == 2 and new.key != first.key
    assert new.group == first.group and store.stats["measured"] == 2
    demo_store = quality.QualityStore(demo_catalog.settings.cache_dir, with_dnsmos=False)
    demo = quality.assess_clip(
        demo_store, demo_catalog, Renderer(demo_catalog).render(RenderRequest("apr27", "surya_2", "names"))
    )
    with pytest.raises(RenderError, match="pre-rendered demo clips"):
        quality.regenerate(demo_store, Renderer(demo_catalog), demo)


@pytest.mark.slow  # runs the DNSMOS model on every clip
def test_the_batch_manifest_flags_the_demo_broken_take(demo_catalog_path, tmp_path, capsys):
    import csv

    from workbench.cli import main as cli

    out = tmp_path / "out"
    args = ["render", "--config", str(demo_catalog_path), "--out", str(out), "--checkpoints", "apr27"]
    args += ["--references", "surya_2", "--sentences", "pangram,question,exclamation,emphasis,names"]
    assert cli(args) == 0
    assert "1 flagged takes (see the flags column" in capsys.readouterr().out
    with open(out / "manifest.csv", newline="") as f:
        rows = {r["sentence"]: r for r in csv.DictReader(f)}
    assert rows["names"]["flagged"] == "True" and rows["names"]["flags"].startswith("3.0 s of silence at 1.3 s")
    assert {rows[s]["flagged"] for s in ("pangram", "question", "exclamation", "emphasis")} == {"False"}
    assert all(2.0 < float(r["dnsmos_ovrl"]) < 4.0 and 0.5 < float(r["speaker_similarity"]) <= 1 for r in rows.values())
    assert cli([*args, "--no-quality"]) == 0  # a rerun without quality columns writes a plain manifest
    with open(out / "manifest.csv", newline="") as f:
        assert "flags" not in next(csv.reader(f))
