from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from workbench.catalog import (
    checkpoint_availability,
    load_catalog,
    parse_catalog,
    preset_availability,
    reference_audio_path,
    reference_availability,
)
from workbench.errors import CatalogError

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """\
checkpoints:
  ck:
    model_dir: models/ck
references:
  r1:
    audio: refs/r1.wav
sentences:
  s1:
    text: Hello there.
"""


def parse(text: str, tmp_path: Path):
    path = tmp_path / "cat.yaml"
    path.write_text(textwrap.dedent(text))
    return load_catalog(path)


def problems_of(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(CatalogError) as exc:
        parse(text, tmp_path)
    return exc.value.problems


def test_shipped_catalog_names_the_team_checkpoints():
    cat = load_catalog(ROOT / "checkpoints.yaml")
    assert list(cat.checkpoints) == ["feb1", "apr24", "apr27"]
    assert set(cat.references) == {"surya_1", "surya_2", "paul_1", "paul_2"}
    assert {"none", "denoise", "enhance", "denoise+enhance"} <= set(cat.enhancements)
    assert len(cat.sentences) >= 8
    texts = " ".join(s.text for s in cat.sentences.values())
    assert re.search(r"\d", texts) and "?" in texts and "!" in texts
    assert max(len(s.text) for s in cat.sentences.values()) > 150
    for ck in cat.checkpoints.values():
        assert ck.backend == "xtts" and ck.model_dir.parent.name == "models"


def test_demo_fallback_until_models_appear(demo_catalog_path):
    cat = load_catalog(demo_catalog_path)
    ck = cat.checkpoint("apr24")
    a = checkpoint_availability(ck)
    assert a.source == "demo" and "model.pth" in a.reason or "folder missing" in a.reason
    # real model files appear: the same checkpoint now renders for real
    ck.model_dir.mkdir(parents=True)
    for f in ("config.json", "model.pth", "vocab.json"):
        (ck.model_dir / f).write_text("{}")
    assert checkpoint_availability(ck).source == "model"


def test_missing_model_file_reason_names_the_file(tmp_path):
    cat = parse(MINIMAL, tmp_path)
    (tmp_path / "models" / "ck").mkdir(parents=True)
    (tmp_path / "models" / "ck" / "config.json").write_text("{}")
    a = checkpoint_availability(cat.checkpoint("ck"))
    assert not a.ok
    assert "model.pth" in a.reason and "vocab.json" in a.reason and "put an XTTS v2 checkpoint folder here" in a.reason


def test_relative_paths_resolve_against_the_yaml_file(tmp_path, monkeypatch):
    sub = tmp_path / "project"
    sub.mkdir()
    cat = parse(MINIMAL, sub)
    monkeypatch.chdir(tmp_path)
    assert cat.checkpoint("ck").model_dir == sub / "models" / "ck"
    assert cat.reference("r1").audio == sub / "refs" / "r1.wav"
    abs_text = MINIMAL.replace("refs/r1.wav", str(tmp_path / "abs.wav"))
    assert parse(abs_text, sub).reference("r1").audio == tmp_path / "abs.wav"


def test_none_preset_always_exists(tmp_path):
    cat = parse(MINIMAL, tmp_path)
    assert "none" in cat.enhancements and not cat.enhancement("none").uses_enhancer


def test_builtin_speaker_reference(tmp_path):
    text = MINIMAL + "  \n"
    text = text.replace(
        "references:\n  r1:\n    audio: refs/r1.wav", "references:\n  claribel:\n    builtin_speaker: Claribel Dervla"
    )
    cat = parse(text, tmp_path)
    ref = cat.reference("claribel")
    assert ref.builtin_speaker == "Claribel Dervla"
    assert reference_availability(ref).ok and reference_audio_path(ref) is None


def test_reference_with_both_audio_and_builtin_is_an_error(tmp_path):
    text = MINIMAL.replace("audio: refs/r1.wav", "audio: refs/r1.wav\n    builtin_speaker: Ana Florence")
    (p,) = problems_of(text, tmp_path)
    assert p.startswith("cat.yaml:5: references.r1") and "not both" in p


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        ("model_dir: models/ck", "cat.yaml:5: checkpoints.ck.inference.temperature must be > 0, got -1"),
        ("text: Hello there.", "cat.yaml:9: sentences.s1.txt is not a known field"),
    ],
)
def test_each_mistake_names_file_line_and_field(tmp_path, replace, expected):
    bad = {
        "model_dir: models/ck": "model_dir: models/ck\n    inference:\n      temperature: -1",
        "text: Hello there.": "txt: Hello there.",
    }[replace]
    text = MINIMAL.replace(replace, bad)
    problems = problems_of(text, tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


def test_six_mistakes_reported_at_once_with_lines(tmp_path):
    text = """\
    checkpoints:
      ck:
        model_dir: models/ck
        backend: onnx
        inference:
          temperature: -1
          top_kk: 3
    references:
      r1:
        audio: refs/r1.txt
    sentences:
      s1:
        text: "   "
    enhancements:
      loud:
        target_lufs: 12
    """
    problems = problems_of(text, tmp_path)
    assert len(problems) == 6, problems
    joined = "\n".join(problems)
    assert "cat.yaml:4: checkpoints.ck.backend must be 'xtts' or 'prerendered', got 'onnx'" in joined
    assert "cat.yaml:6: checkpoints.ck.inference.temperature must be > 0, got -1" in joined
    assert "cat.yaml:7: checkpoints.ck.inference.top_kk is not a known field" in joined
    assert re.search(r"cat\.yaml:10: references\.r1\.audio must be an audio file .*got 'r1\.txt'", joined)
    assert re.search(r"cat\.yaml:13: sentences\.s1\.text .*blank", joined)
    assert "cat.yaml:16: enhancements.loud.target_lufs must be <= 0, got 12" in joined
    # sorted by line
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)


def test_unknown_section_and_missing_sections(tmp_path):
    problems = problems_of("checkpoint:\n  ck: {}\n", tmp_path)
    joined = "\n".join(problems)
    assert "cat.yaml:1: checkpoint is not a known section" in joined
    assert "checkpoints is missing" in joined and "references is missing" in joined


def test_invalid_yaml_points_at_line(tmp_path):
    (p,) = problems_of("checkpoints:\n  ck: [\n", tmp_path)
    assert p.startswith("cat.yaml:") and "not valid YAML" in p


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string"])
def test_wrong_top_level_shapes(tmp_path, text):
    assert problems_of(text, tmp_path)


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(CatalogError, match="file not found; pass --config"):
        load_catalog(tmp_path / "nope.yaml")


def test_lookup_lists_valid_names(demo_catalog):
    with pytest.raises(CatalogError, match="checkpoint 'feb2' not found; available: feb1, apr24, apr27"):
        demo_catalog.checkpoint("feb2")


def test_catalog_objects_are_frozen(demo_catalog):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        demo_catalog.checkpoint("feb1").inference.temperature = 2.0


def test_invalid_ids_refused(tmp_path):
    problems = problems_of(MINIMAL.replace("  s1:", "  ../etc:"), tmp_path)
    assert any("not a valid id" in p for p in problems)


def test_enhancement_without_weights_is_unavailable_with_reason(tmp_path):
    text = MINIMAL + "enhancements:\n  dn:\n    denoise: true\n    weights_dir: w\n"
    p = parse(text, tmp_path).enhancement("dn")
    a = preset_availability(p)
    assert not a.ok and "resemble-enhance weights missing" in a.reason and str(tmp_path / "w") in a.reason


def test_parse_catalog_from_text_without_file(tmp_path):
    cat = parse_catalog(MINIMAL, path=tmp_path / "x.yaml")
    assert cat.sentence("s1").text == "Hello there."
