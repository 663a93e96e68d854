"""Metric-vote agreement: hand-computed shares and Wilson intervals."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from workbench import agreement


def votes(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item_a", "item_b", "winner", "value_a", "value_b"])


def test_share_and_interval_match_a_hand_computed_example():
    # feb1 vs apr24: 10 decisive votes; the higher-OVRL clip won 8 of them.
    rows = [("feb1", "apr24", "feb1", 3.0, 2.5)] * 6  # feb1 higher, feb1 preferred: agree
    rows += [("apr24", "feb1", "apr24", 3.1, 2.9)] * 2  # sides swapped, apr24 higher and preferred: agree
    rows += [("feb1", "apr24", "apr24", 3.0, 2.5)] * 2  # feb1 higher, apr24 preferred: disagree
    rows += [("feb1", "apr24", "tie", 3.0, 2.5)] * 3  # ties never count
    rows += [("feb1", "apr24", "feb1", 2.7, 2.7)]  # equal values: not comparable
    rows += [("feb1", "apr24", "feb1", math.nan, 2.7)]  # a clip not measured: not comparable
    table = agreement.metric_agreement(votes(rows), min_votes=10)
    assert list(table.columns) == agreement.AGREEMENT_COLUMNS
    pair = table.iloc[0]
    assert (pair["a"], pair["b"], pair["votes"], pair["comparable"], pair["agree"]) == ("apr24", "feb1", 15, 10, 8)
    assert pair["share"] == pytest.approx(0.8)
    # Wilson 95%: z = 1.95996; centre (0.8 + z^2/20) / (1 + z^2/10) = 0.71674,
    # half-width z * sqrt(0.8*0.2/10 + z^2/400) / (1 + z^2/10) = 0.22658
    assert pair["ci_low"] == pytest.approx(0.49016, abs=1e-4)
    assert pair["ci_high"] == pytest.approx(0.94332, abs=1e-4)
    overall = table.iloc[-1]
    assert overall["a"] == "all pairs" and overall["comparable"] == 10 and overall["agree"] == 8


def test_pairs_with_too_few_votes_count_only_overall():
    rows = [("feb1", "apr24", "feb1", 3.0, 2.0)] * 10 + [("feb1", "apr27", "apr27", 3.0, 2.0)] * 3
    table = agreement.metric_agreement(votes(rows), min_votes=10)
    assert list(table["a"]) == ["apr24", "all pairs"]
    assert table.iloc[-1]["comparable"] == 13 and table.iloc[-1]["agree"] == 10


def test_note_says_whether_the_metric_could_stand_in():
    perfect = agreement.metric_agreement(votes([("a", "b", "a", 2.0, 1.0)] * 40))
    assert "could stand in for listening" in agreement.stand_in_note(perfect, "DNSMOS OVRL")
    coin = agreement.metric_agreement(votes([("a", "b", "a", 2.0, 1.0)] * 10 + [("a", "b", "b", 2.0, 1.0)] * 10))
    assert "coin flip" in agreement.stand_in_note(coin, "DNSMOS OVRL")
    backwards = agreement.metric_agreement(votes([("a", "b", "b", 2.0, 1.0)] * 20))
    assert "did not" in agreement.stand_in_note(backwards, "speaker similarity")
    empty = agreement.metric_agreement(votes([("a", "b", "tie", 2.0, 1.0)]))
    assert "no decisive votes" in agreement.stand_in_note(empty, "DNSMOS OVRL")


def test_attach_metrics_looks_up_each_sides_clip_and_preset_comparisons():
    raw = pd.DataFrame(
        [
            {"checkpoint_a": "feb1", "checkpoint_b": "apr24", "preset_a": "none", "preset_b": "none",
             "reference": "r", "sentence_id": "s", "winner": "apr24", "take_a": "1", "take_b": "2"},
            {"checkpoint_a": "feb1", "checkpoint_b": "feb1", "preset_a": "none", "preset_b": "denoise",
             "reference": "r", "sentence_id": "s", "winner": "denoise", "take_a": "", "take_b": ""},
        ]
    )  # fmt: skip
    seen = []

    def lookup(ck, preset, ref, sent, take):
        seen.append((ck, preset, ref, sent, take))
        return {"feb1": 3.0, "apr24": 2.0}[ck] + (0.5 if preset == "denoise" else 0.0)

    out = agreement.attach_metrics(raw, lookup)
    assert list(out["item_a"]) == ["feb1", "none"] and list(out["item_b"]) == ["apr24", "denoise"]
    assert list(out["value_a"]) == [3.0, 3.0] and list(out["value_b"]) == [2.0, 3.5]
    assert ("apr24", "none", "r", "s", 2) in seen and ("feb1", "denoise", "r", "s", 1) in seen
    table = agreement.metric_agreement(out, min_votes=1)
    assert table.iloc[-1]["agree"] == 1 and table.iloc[-1]["comparable"] == 2
