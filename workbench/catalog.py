"""Load and validate ``checkpoints.yaml`` into frozen, typed objects.

The catalog names what can be compared: checkpoints (with inference settings),
reference clips, test sentences and enhancement presets. Every problem of a file is
reported at once, each as ``file:line: dotted.field message``; unknown keys are errors,
and relative paths resolve against the YAML file's folder.

>>> cat = load_catalog("checkpoints.yaml")
>>> cat.checkpoints["feb1"].inference.temperature
0.75
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import CatalogError
from .yamlfile import compose_lines as _compose_lines
from .yamlfile import explain as _explain

Pathlike = str | Path

#: files an XTTS v2 checkpoint folder must hold (speakers_xtts.pth is optional)
XTTS_REQUIRED_FILES = ("config.json", "model.pth", "vocab.json")
#: file extensions accepted for audio everywhere in the catalog
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InferenceSettings(_Frozen):
    """XTTS inference settings (the defaults are Coqui's XTTS v2 defaults)."""

    language: str = "en"  # XTTS language code used when a sentence gives none
    temperature: float = Field(0.75, gt=0)  # sampling temperature of the GPT
    top_p: float = Field(0.85, gt=0, le=1)  # nucleus sampling mass
    top_k: int = Field(50, ge=1)  # top-k sampling
    repetition_penalty: float = Field(5.0, gt=0)  # GPT repetition penalty
    length_penalty: float = Field(1.0)  # beam length penalty
    speed: float = Field(1.0, gt=0, le=4)  # playback speed factor of the decoder
    enable_text_splitting: bool = True  # split long text into sentences before synthesis
    seed: int = Field(1234, ge=0)  # seed of take 1; take n uses seed + n - 1
    gpt_cond_len: int = Field(30, ge=1)  # seconds of reference used for GPT conditioning
    gpt_cond_chunk_len: int = Field(6, ge=1)  # chunk length (s) for conditioning
    max_ref_len: int = Field(10, ge=1)  # seconds of reference used for the speaker embedding


class Checkpoint(_Frozen):
    """A model checkpoint to compare (e.g. ``feb1``)."""

    name: str
    backend: Literal["xtts", "prerendered"] = "xtts"
    model_dir: Path | None = None  # XTTS v2 folder: config.json, model.pth, vocab.json
    base_model: Literal["xtts_v2"] | None = None  # download Coqui's base model instead
    clips_dir: Path | None = None  # clips rendered elsewhere: <reference>/<sentence>.flac
    demo_dir: Path | None = None  # bundled demo clips used while no model files exist
    notes: str = ""
    inference: InferenceSettings = InferenceSettings()

    @model_validator(mode="after")
    def _needs_a_source(self) -> Checkpoint:
        if self.backend == "xtts" and not (self.model_dir or self.base_model):
            raise ValueError("an xtts checkpoint needs model_dir (a checkpoint folder) or base_model: xtts_v2")
        if self.backend == "prerendered" and not (self.clips_dir or self.demo_dir):
            raise ValueError("a prerendered checkpoint needs clips_dir")
        return self


class Reference(_Frozen):
    """A reference voice: a recording of a real speaker, or an XTTS built-in speaker."""

    id: str
    audio: Path | None = None  # the recording (wav/flac/mp3/ogg)
    builtin_speaker: str | None = None  # e.g. "Claribel Dervla" from speakers_xtts.pth
    demo_audio: Path | None = None  # bundled stand-in used while ``audio`` is absent
    speaker: str = ""
    notes: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> Reference:
        if self.builtin_speaker and self.audio:
            raise ValueError("give either audio or builtin_speaker, not both")
        if not (self.builtin_speaker or self.audio or self.demo_audio):
            raise ValueError("needs audio (a file path) or builtin_speaker (an XTTS speaker name)")
        return self

    @field_validator("audio", "demo_audio")
    @classmethod
    def _audio_extension(cls, p: Path | None) -> Path | None:
        if p is not None and p.suffix.lower() not in AUDIO_EXTENSIONS:
            raise ValueError(f"must be an audio file ({', '.join(AUDIO_EXTENSIONS)}), got {p.name!r}")
        return p


class Sentence(_Frozen):
    """A test sentence."""

    id: str
    text: str = Field(min_length=1, max_length=2000)
    language: str = "en"

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()


class ResembleEnhanceStep(_Frozen):
    """Chain step: resemble-enhance's denoiser or enhancer (see :class:`EnhancePreset` for the fields)."""

    type: Literal["resemble-enhance"]
    denoise: bool = False  # run resemble-enhance's denoiser
    enhance: bool = False  # run resemble-enhance's enhancer (CFM)
    nfe: int = Field(64, ge=1, le=256)  # number of function evaluations of the CFM solver
    solver: Literal["midpoint", "rk4", "euler"] = "midpoint"
    lambd: float = Field(0.5, ge=0, le=1)  # denoising strength before enhancement
    tau: float = Field(0.5, ge=0, le=1)  # prior temperature of the CFM
    weights_dir: Path | None = None  # local resemble-enhance run folder (None: Hugging Face)

    @model_validator(mode="after")
    def _does_something(self) -> ResembleEnhanceStep:
        if not (self.denoise or self.enhance):
            raise ValueError("a resemble-enhance step needs denoise: true and/or enhance: true")
        return self


class CommandStep(_Frozen):
    """Chain step: an external program that reads ``{input}`` and writes ``{output}`` (WAV files).

    ``argv`` is the argument list (no shell); ``{input}``, ``{output}`` and ``{seed}`` (the
    take's seed) are replaced in every element. The program runs in ``cwd`` (default: the
    catalog's folder), so relative paths in its arguments work as written.
    """

    type: Literal["command"]
    argv: tuple[str, ...] = Field(min_length=1)  # program and arguments
    timeout_s: float = Field(600.0, gt=0, le=86400)  # the program is killed after this long (s)
    files: tuple[Path, ...] = ()  # files whose content goes into the cache key (model, config)
    cwd: Path | None = None  # working folder (the catalog's folder when loaded from a file)

    @model_validator(mode="after")
    def _placeholders(self) -> CommandStep:
        joined = " ".join(self.argv)
        missing = [p for p in ("{input}", "{output}") if p not in joined]
        if missing:
            raise ValueError(f"argv must contain {' and '.join(missing)} (where the program reads and writes audio)")
        return self

    @property
    def label(self) -> str:
        return Path(self.argv[0]).name


class LoudnessStep(_Frozen):
    """Chain step: loudness normalisation (peak-limited at -1 dBFS); always the last step."""

    type: Literal["loudness"]
    target_lufs: float | None = Field(-23.0, ge=-70, le=0)  # None: measured, left untouched


ChainStep = Annotated[ResembleEnhanceStep | CommandStep | LoudnessStep, Field(discriminator="type")]
#: the flat fields of a preset, which ``steps`` replaces
FLAT_PRESET_FIELDS = ("denoise", "enhance", "nfe", "solver", "lambd", "tau", "weights_dir", "target_lufs")


class EnhancePreset(_Frozen):
    """Post-processing applied after synthesis: resemble-enhance + loudness, or a chain of ``steps``.

    The flat fields describe the classic preset (enhancer step, then loudness). ``steps``
    instead lists an ordered chain of ``resemble-enhance``, ``command`` and ``loudness``
    steps (loudness at most once, last); see :meth:`chain`.
    """

    name: str
    denoise: bool = False  # run resemble-enhance's denoiser
    enhance: bool = False  # run resemble-enhance's enhancer (CFM)
    nfe: int = Field(64, ge=1, le=256)  # number of function evaluations of the CFM solver
    solver: Literal["midpoint", "rk4", "euler"] = "midpoint"
    lambd: float = Field(0.5, ge=0, le=1)  # denoising strength before enhancement
    tau: float = Field(0.5, ge=0, le=1)  # prior temperature of the CFM
    weights_dir: Path | None = None  # local resemble-enhance run folder (None: Hugging Face)
    target_lufs: float | None = Field(-23.0, ge=-70, le=0)  # loudness target; None = untouched
    steps: tuple[ChainStep, ...] | None = None  # an ordered chain instead of the fields above

    @model_validator(mode="after")
    def _steps_or_fields(self) -> EnhancePreset:
        if self.steps is None:
            return self
        both = [f for f in FLAT_PRESET_FIELDS if f in self.model_fields_set]
        if both:
            raise ValueError(
                f"give either steps or {', '.join(both)}, not both (put them in a resemble-enhance or loudness step)"
            )
        if not self.steps:
            raise ValueError("steps is empty; list at least one step or remove it")
        kinds = [s.type for s in self.steps]
        if "loudness" in kinds[:-1]:
            raise ValueError("the loudness step must be the last step (and appear once)")
        return self

    def chain(self) -> tuple[ResembleEnhanceStep | CommandStep | LoudnessStep, ...]:
        """The ordered steps this preset runs (a flat preset becomes enhancer step + loudness)."""
        if self.steps is not None:
            return self.steps
        out: list = []
        if self.denoise or self.enhance:
            out.append(
                ResembleEnhanceStep(
                    type="resemble-enhance",
                    **{f: getattr(self, f) for f in ("denoise", "enhance", "nfe", "solver", "lambd", "tau")},
                    weights_dir=self.weights_dir,
                )
            )
        out.append(LoudnessStep(type="loudness", target_lufs=self.target_lufs))
        return tuple(out)

    @property
    def uses_enhancer(self) -> bool:
        return any(s.type == "resemble-enhance" for s in self.chain())

    @property
    def loudness_target(self) -> float | None:
        """The LUFS target of the chain's loudness step (None: no loudness step or untouched)."""
        last = self.chain()[-1]
        return last.target_lufs if last.type == "loudness" else None


class Settings(_Frozen):
    """App-wide settings."""

    cache_dir: Path = Path(".workbench/cache")  # rendered clips and conditioning latents
    data_dir: Path = Path(".workbench")  # tests, served files
    max_loaded_models: int = Field(1, ge=1, le=16)  # LRU size of loaded XTTS models
    device: Literal["auto", "cpu", "cuda"] = "auto"
    fp16: bool = False  # half precision on CUDA
    # render on a Ray cluster: ray://HOST:PORT (Ray Client), HOST:PORT (a node's GCS) or auto; None: in this process
    cluster: str | None = Field(None, pattern=r"^(auto|local|ray://[^\s:/]+:\d+|[^\s:/]+:\d+)$")


@dataclass(frozen=True)
class Catalog:
    """Everything ``checkpoints.yaml`` names, validated. Ids keep the file's order."""

    path: Path
    checkpoints: dict[str, Checkpoint]
    references: dict[str, Reference]
    sentences: dict[str, Sentence]
    enhancements: dict[str, EnhancePreset]
    settings: Settings
    overlay: Path | None = None  # the file of checkpoints added from the app, when it exists

    def checkpoint(self, name: str) -> Checkpoint:
        return _lookup(self.checkpoints, name, "checkpoint")

    def reference(self, ref_id: str) -> Reference:
        return _lookup(self.references, ref_id, "reference")

    def sentence(self, sent_id: str) -> Sentence:
        return _lookup(self.sentences, sent_id, "sentence")

    def enhancement(self, name: str) -> EnhancePreset:
        return _lookup(self.enhancements, name, "enhancement preset")


def _lookup(table: dict, key: str, what: str):
    try:
        return table[key]
    except (KeyError, TypeError):
        raise CatalogError(f"{what} {key!r} not found; available: {', '.join(table) or '(none)'}") from None


# ---------------------------------------------------------------------------- loading


_SECTIONS = {
    "checkpoints": (Checkpoint, "name"),
    "references": (Reference, "id"),
    "sentences": (Sentence, "id"),
    "enhancements": (EnhancePreset, "name"),
}
_PATH_FIELDS = (
    "model_dir",
    "clips_dir",
    "demo_dir",
    "audio",
    "demo_audio",
    "weights_dir",
    "cache_dir",
    "data_dir",
    "cwd",
)


def parse_catalog(text: str, *, path: Pathlike = "checkpoints.yaml") -> Catalog:
    """Validate catalog YAML ``text``; relative paths resolve against ``path``'s folder.

    Raises
    ------
    CatalogError
        listing every problem found, each as ``file:line: field message``.
    """
    path = Path(path)
    fname = path.name
    try:
        lines = _compose_lines(text)
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as e:  # ValueError: a date like 2024-13-45, a 5000-digit number
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise CatalogError(f"{fname}:{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CatalogError(
            f"{fname}:1: the catalog must be a mapping with checkpoints, references, sentences, enhancements"
        )

    problems: list[tuple[int, str]] = []  # (line, message): sorted by line before raising

    def at(loc: tuple) -> int:
        for n in range(len(loc), -1, -1):
            if loc[:n] in lines:
                return lines[loc[:n]]
        return 1

    def report(loc: tuple, message: str) -> None:
        problems.append((at(loc), f"{fname}:{at(loc)}: {'.'.join(str(p) for p in loc)} {message}"))

    base = path.resolve().parent

    def resolve_paths(d: dict, loc: tuple) -> dict:
        out = {str(k): v for k, v in d.items()}  # YAML keys may be numbers, dates, null
        for k in _PATH_FIELDS:
            if isinstance(out.get(k), str) and out[k]:
                try:
                    p = Path(out[k]).expanduser()
                except RuntimeError:  # "~name/..." for a user this machine does not have
                    report((*loc, k), f"{out[k]!r}: cannot expand '~' (no such user here); write the full path")
                    continue
                out[k] = p if p.is_absolute() else base / p
        return out

    def resolve_step(step, loc: tuple):
        """A chain step with its paths resolved (weights_dir, files, cwd; cwd defaults to the catalog's folder)."""
        if not isinstance(step, dict):
            return step
        out = resolve_paths(step, loc)
        if out.get("type") == "command":
            out.setdefault("cwd", base)
            if isinstance(out.get("files"), list):
                out["files"] = [
                    f if not isinstance(f, str) or Path(f).is_absolute() else base / f for f in out["files"]
                ]
        return out

    allowed_top = {"version", "settings", *_SECTIONS}
    for key in data:
        if key not in allowed_top:
            report((str(key),), f"is not a known section; expected one of: {', '.join(sorted(allowed_top))}")

    settings = Settings()
    raw_settings = data.get("settings") or {}
    if not isinstance(raw_settings, dict):
        report(("settings",), "must be a mapping")
    else:
        try:
            settings = Settings(**resolve_paths(raw_settings, ("settings",)))
        except ValidationError as e:
            for err_loc, message in _explain(e.errors()):
                report(("settings", *err_loc), message)

    tables: dict[str, dict] = {}
    for section, (model, id_field) in _SECTIONS.items():
        raw = data.get(section)
        table: dict[str, Any] = {}
        tables[section] = table
        if raw is None:
            if section != "enhancements":
                report((section,), "is missing or empty; add at least one entry")
            raw = {}
        if not isinstance(raw, dict):
            report((section,), "must be a mapping of id -> fields")
            continue
        for key, fields in raw.items():
            key = str(key)
            loc = (section, key)
            if not _ID.match(key):
                report(loc, "is not a valid id: use letters, digits, _ . + - (at most 64 characters)")
                continue
            if fields is None:
                fields = {}
            if not isinstance(fields, dict):
                report(loc, f"must be a mapping of fields, got {fields!r}")
                continue
            if id_field in fields:
                report((*loc, id_field), "is taken from the entry's key; remove it")
                continue
            if section == "enhancements" and isinstance(fields.get("steps"), list):
                fields = {
                    **fields,
                    "steps": [resolve_step(st, (*loc, "steps", i)) for i, st in enumerate(fields["steps"])],
                }
            try:
                table[key] = model(**{id_field: key, **resolve_paths(fields, loc)})
            except ValidationError as e:
                for err_loc, message in _explain(e.errors()):
                    report((*loc, *err_loc), message)

    enh = tables["enhancements"]
    if "none" not in enh:
        enh = {"none": EnhancePreset(name="none"), **enh}
    elif any(step.type != "loudness" for step in enh["none"].chain()):
        report(("enhancements", "none"), "must not denoise, enhance or run commands (it is the untouched baseline)")

    if problems:
        problems.sort(key=lambda p: p[0])
        raise CatalogError([p[1] for p in problems])
    return Catalog(
        path=path.resolve(),
        checkpoints=tables["checkpoints"],
        references=tables["references"],
        sentences=tables["sentences"],
        enhancements=enh,
        settings=settings,
    )


def load_catalog(path: Pathlike = "checkpoints.yaml") -> Catalog:
    """Read and validate a catalog file plus its overlay of added checkpoints (:func:`overlay_path`).

    Raises :class:`CatalogError` naming every problem (file and line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{path}: file not found; pass --config PATH or copy checkpoints.yaml") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogError(f"{path}: cannot read: {e}") from None
    cat = parse_catalog(text, path=path)
    extra = overlay_path(cat.path)
    if not extra.is_file():
        return cat
    try:
        overlay_text = extra.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogError(f"{extra}: cannot read: {e}") from None
    added = parse_overlay(overlay_text, path=extra, existing=cat.checkpoints)
    return replace(cat, checkpoints={**cat.checkpoints, **added}, overlay=extra.resolve())


# ---------------------------------------------------------------------------- overlay


def overlay_path(catalog_path: Pathlike) -> Path:
    """Where checkpoints added from the app are kept: ``<stem>.added.yaml`` beside the catalog."""
    p = Path(catalog_path)
    return p.with_name(f"{p.stem}.added{p.suffix or '.yaml'}")


def parse_overlay(text: str, *, path: Pathlike, existing: dict[str, Checkpoint]) -> dict[str, Checkpoint]:
    """Validate an overlay file: a ``checkpoints:`` mapping like the catalog's, nothing else.

    Paths resolve against the overlay's folder. A name the catalog already has is an
    error (rename one of them). Raises :class:`CatalogError` with ``file:line`` problems.
    """
    from .yamlfile import load_yaml

    path = Path(path)
    doc = load_yaml(text, name=path)
    data = doc.data if doc.data is not None else {}
    problems: list[str] = []
    if not isinstance(data, dict):
        raise CatalogError(f"{doc.name}:1: must be a mapping with one section, checkpoints")
    for key in data:
        if str(key) != "checkpoints":
            problems.append(doc.where((str(key),), "is not allowed here; this file only holds added checkpoints"))
    raw = data.get("checkpoints") or {}
    if not isinstance(raw, dict):
        raise CatalogError(doc.where(("checkpoints",), "must be a mapping of name -> fields"))
    base = path.resolve().parent
    out: dict[str, Checkpoint] = {}
    for key, fields in raw.items():
        name, loc = str(key), ("checkpoints", str(key))
        if not _ID.match(name):
            problems.append(doc.where(loc, "is not a valid id: use letters, digits, _ . + - (at most 64 characters)"))
            continue
        if name in existing:
            problems.append(doc.where(loc, f"is already a checkpoint in the catalog; rename it here (e.g. {name}-old)"))
            continue
        if not isinstance(fields, dict):
            problems.append(doc.where(loc, f"must be a mapping of fields, got {fields!r}"))
            continue
        fields = {str(k): v for k, v in fields.items()}
        for k in ("model_dir", "clips_dir", "demo_dir"):
            if isinstance(fields.get(k), str) and fields[k]:
                p = Path(fields[k]).expanduser()
                fields[k] = p if p.is_absolute() else base / p
        try:
            out[name] = Checkpoint(name=name, **{k: v for k, v in fields.items() if k != "name"})
        except ValidationError as e:
            problems += [doc.where((*loc, *err_loc), message) for err_loc, message in _explain(e.errors())]
    if problems:
        raise CatalogError(problems)
    return out


# ---------------------------------------------------------------------------- availability


@dataclass(frozen=True)
class Availability:
    """Where a checkpoint's or reference's audio would come from, and why not if nowhere."""

    source: Literal["model", "base_model", "clips", "demo", "unavailable"]
    reason: str  # a sentence a user can act on

    @property
    def ok(self) -> bool:
        return self.source != "unavailable"

    @property
    def is_demo(self) -> bool:
        return self.source == "demo"


def model_dir_problem(model_dir: Path) -> str | None:
    """Return why ``model_dir`` is not an XTTS v2 checkpoint folder, or None if it looks like one."""
    if not model_dir.is_dir():
        return f"{model_dir}: folder missing; put an XTTS v2 checkpoint folder here ({', '.join(XTTS_REQUIRED_FILES)})"
    missing = [f for f in XTTS_REQUIRED_FILES if not (model_dir / f).is_file()]
    if missing:
        return f"{model_dir}: {', '.join(missing)} missing; put an XTTS v2 checkpoint folder here"
    return None


def checkpoint_availability(ck: Checkpoint) -> Availability:
    """Decide how ``ck`` renders now: real model, base model, external clips, or bundled demo."""
    reasons = []
    if ck.backend == "xtts" and ck.model_dir is not None:
        problem = model_dir_problem(ck.model_dir)
        if problem is None:
            return Availability("model", f"XTTS checkpoint at {ck.model_dir}")
        reasons.append(problem)
    if ck.backend == "xtts" and ck.base_model and ck.model_dir is None:
        return Availability("base_model", f"Coqui base model {ck.base_model} (downloaded on first use)")
    if ck.clips_dir is not None:
        if ck.clips_dir.is_dir():
            return Availability("clips", f"pre-rendered clips in {ck.clips_dir}")
        reasons.append(f"{ck.clips_dir}: clips folder missing")
    if ck.demo_dir is not None:
        if ck.demo_dir.is_dir():
            why = "; ".join(reasons)
            return Availability("demo", f"demo clips from {ck.demo_dir}" + (f" ({why})" if why else ""))
        reasons.append(f"{ck.demo_dir}: demo folder missing")
    return Availability("unavailable", "; ".join(reasons) or "no model or clips configured")


def reference_availability(ref: Reference) -> Availability:
    """Decide which audio a reference uses: its recording, a built-in speaker, or the demo stand-in."""
    if ref.builtin_speaker:
        return Availability("model", f"XTTS built-in speaker {ref.builtin_speaker!r}")
    if ref.audio is not None and ref.audio.is_file():
        return Availability("model", f"recording {ref.audio}")
    reason = f"{ref.audio}: file missing; put the speaker's recording here" if ref.audio else "no recording"
    if ref.demo_audio is not None and ref.demo_audio.is_file():
        return Availability("demo", f"demo stand-in {ref.demo_audio.name} ({reason})")
    return Availability("unavailable", reason)


def reference_audio_path(ref: Reference) -> Path | None:
    """The audio file a reference uses now (recording, else demo stand-in), or None for built-ins."""
    if ref.audio is not None and ref.audio.is_file():
        return ref.audio
    if ref.demo_audio is not None and ref.demo_audio.is_file():
        return ref.demo_audio
    return None


def catalog_summary(cat: Catalog) -> list[dict[str, str]]:
    """One row per catalog entry: kind, id, status (ok / demo / unavailable) and detail."""
    rows = []
    for name, ck in cat.checkpoints.items():
        a = checkpoint_availability(ck)
        rows.append({"kind": "checkpoint", "id": name, "status": _status(a), "detail": a.reason})
    for rid, ref in cat.references.items():
        a = reference_availability(ref)
        rows.append({"kind": "reference", "id": rid, "status": _status(a), "detail": a.reason})
    for sid, s in cat.sentences.items():
        rows.append({"kind": "sentence", "id": sid, "status": "ok", "detail": s.text[:80]})
    demo_cks = [n for n, ck in cat.checkpoints.items() if checkpoint_availability(ck).is_demo]
    for name, p in cat.enhancements.items():
        a = preset_availability(p)
        if not a.ok and demo_cks:  # demo checkpoints run a labelled stand-in instead (demo_enhance.py)
            from .demo_enhance import preset_availability_for

            a = preset_availability_for(cat, name, demo_cks)
        rows.append({"kind": "enhancement", "id": name, "status": _status(a), "detail": a.reason})
    return rows


def command_problem(step: CommandStep) -> str | None:
    """Why a command step cannot run here (program not found / not executable, a hashed file missing), or None."""
    prog = step.argv[0]
    if "/" in prog:
        path = Path(prog) if Path(prog).is_absolute() else (step.cwd or Path.cwd()) / prog
        if not path.is_file():
            return f"command {prog!r}: {path} not found; install the program or fix argv[0]"
        if not os.access(path, os.X_OK):
            return f"command {prog!r}: {path} is not executable; chmod +x it or run it through its interpreter"
    elif shutil.which(prog) is None:
        return f"command {prog!r}: not found on PATH; install it or give its full path in argv[0]"
    for f in step.files:
        if not Path(f).is_file():
            return f"command {prog!r}: hashed file {f} missing; put it there or fix files"
    return None


def preset_availability(p: EnhancePreset) -> Availability:
    """A preset is available when every step can run: enhancer weights present, commands found."""
    loud = f"loudness {p.loudness_target:g} LUFS" if p.loudness_target is not None else "loudness untouched"
    parts: list[str] = []
    source: Literal["model", "base_model"] = "model"
    for step in p.chain():
        if step.type == "loudness":
            continue
        if step.type == "command":
            problem = command_problem(step)
            if problem:
                return Availability("unavailable", problem)
            parts.append(f"command {step.label}")
            continue
        what = "+".join(s for s, on in (("denoise", step.denoise), ("enhance", step.enhance)) if on)
        if step.weights_dir is None:
            parts.append(f"resemble-enhance {what} (weights downloaded on first use)")
            source = "base_model"
            continue
        ckpt = step.weights_dir / "ds" / "G" / "default" / "mp_rank_00_model_states.pt"
        if not ckpt.is_file():
            return Availability(
                "unavailable",
                f"{step.weights_dir}: resemble-enhance weights missing "
                "(expected ds/G/default/mp_rank_00_model_states.pt); put a resemble-enhance run folder here",
            )
        parts.append(f"resemble-enhance {what} from {step.weights_dir}")
    return Availability(source, ", ".join([*parts, loud]))


def _status(a: Availability) -> str:
    return {"unavailable": "unavailable", "demo": "demo"}.get(a.source, "ok")


# ---------------------------------------------------------------------------- audio files


def audio_problems(cat: Catalog) -> list[str]:
    """Read every reference recording and every pre-rendered or demo clip the catalog names.

    Each file goes through :func:`workbench.audio.check_file` (the app's own reader), so
    an empty file, a file that is not audio, a WAV cut short, NaN/inf samples, silence,
    audio too short (:data:`~workbench.audio.MIN_REFERENCE_SECONDS` for references,
    :data:`~workbench.audio.MIN_CLIP_SECONDS` for clips) or over-long is reported.
    Returns one ``"<kind> <id>: <file>: <problem>"`` line per unusable file (empty: all fine).
    """
    from . import audio
    from .errors import AudioError

    problems: list[str] = []
    base = cat.path.parent

    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(base))
        except ValueError:
            return str(p)

    def check(kind: str, what: str, path: Path, min_seconds: float) -> None:
        try:
            audio.check_file(path, min_seconds=min_seconds)
        except AudioError as e:
            detail = str(e).removeprefix(f"{path.name}: ")
            problems.append(f"{kind} {what}: {rel(path)}: {detail}")

    for rid, ref in cat.references.items():
        for path in (ref.audio, ref.demo_audio):
            if path is not None and path.is_file():
                check("reference", rid, path, audio.MIN_REFERENCE_SECONDS)
    seen: set[Path] = set()
    for name, ck in cat.checkpoints.items():
        for folder in (ck.clips_dir, ck.demo_dir):
            if folder is None or not folder.is_dir() or folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            for path in sorted(folder.rglob("*")):
                if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
                    check("checkpoint", name, path, audio.MIN_CLIP_SECONDS)
    return problems
