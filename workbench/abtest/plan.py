"""Blind-test plans: what is compared, how, and the design every rater's schedule comes from.

A :class:`PlanSpec` is what an admin asks for (admin form or plan YAML); :func:`make_plan`
checks it against the catalog and builds a :class:`TestPlan`, the stored record:

- **Test trials**: every pair of arms (two or more checkpoints with one preset, or one
  checkpoint with two or more presets) on every chosen reference, sentence and take.
  With ``takes: 2`` each cell is rendered with two seeds, so a checkpoint is judged
  through several of its samples, not one random draw; both sides of a trial play the
  same take number.
- **Incomplete designs**: with ``raters`` (how many raters will take part) or
  ``trials_per_rater``, each rater does a subset such that every trial is rated by at
  least ``raters_per_trial`` raters and every rater hears every pair equally often
  (see :mod:`.schedule`).
- **Controls**: identical-pair trials (the same clip on both sides, served as two
  independently named, independently dithered copies): how often a rater "prefers" one
  of two identical clips screens raters.
- **Repeats**: trials played again later, spread evenly over the pairs, some with sides
  swapped and some on the same side, so a repeat cannot be spotted by its sides.
- **Training** trials at the start, recorded but not counted in results.
- Options shown to raters: the ``question``, whether the reference recording can be
  played (``play_reference``) and whether the sentence text is shown (``show_text``).

:func:`design_summary` describes a plan (pairs per rater, raters per trial, control
and repeat counts, side balance, planned votes per pair); the ``plan`` CLI and the
admin form show it before a test is opened.
"""

from __future__ import annotations

import itertools
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..catalog import Catalog
from ..errors import CatalogError, PlanError, VoteError
from ..votes import BadVote
from ..yamlfile import YamlDoc, explain, load_yaml

Pathlike = str | Path
Status = Literal["draft", "open", "closed", "archived"]
STATUSES: tuple[str, ...] = ("draft", "open", "closed", "archived")
#: trial kinds, as written to the vote CSV's ``trial_kind`` column
TRIAL_KINDS: tuple[str, ...] = ("test", "repeat", "control", "training")
#: longest test title / question (characters)
MAX_TITLE_CHARS = 100
MAX_QUESTION_CHARS = 200
#: most trials one rater may be given (everything included)
MAX_TRIALS_PER_RATER = 500
#: most takes (seeds) per cell; matches the renderer's limit
MAX_TAKES = 10
#: the question raters see when the plan does not set one
DEFAULT_QUESTION = "Which voice sounds better?"
#: the smallest preference worth detecting (share of decisive votes), for the planned size
DEFAULT_MIN_EFFECT = 0.65
_TEST_ID = re.compile(r"^ab-[0-9a-f]{6,32}$")


# ---------------------------------------------------------------------------- the request


class PlanSpec(BaseModel):
    """What an admin asks for; validated against the catalog by :func:`make_plan`.

    Also the schema of a plan YAML file (see :func:`load_plan_yaml`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)  # what raters see; no checkpoint names
    question: str = Field(DEFAULT_QUESTION, min_length=1, max_length=MAX_QUESTION_CHARS)  # asked on every trial
    checkpoints: list[str] = Field(min_length=1)  # two or more, or one when comparing presets
    references: list[str] = Field(min_length=1)
    sentences: list[str] = Field(min_length=1)
    presets: list[str] = Field(default_factory=lambda: ["none"], min_length=1)  # one: both sides; 2+: compared
    takes: int = Field(1, ge=1, le=MAX_TAKES)  # renderings (seeds) per cell
    play_reference: bool = False  # raters may play the reference recording
    show_text: bool = False  # raters see the sentence text
    controls: int = Field(0, ge=0, le=100)  # identical-pair trials per rater
    repeats: int = Field(0, ge=0, le=100)  # trials played again per rater (some same side, some swapped)
    training: int = Field(0, ge=0, le=20)  # practice trials at the start, not counted
    raters: int | None = Field(None, ge=1, le=1000)  # raters expected; with it each does a subset
    raters_per_trial: int = Field(2, ge=1, le=1000)  # in a subset design: raters per trial, at least
    trials_per_rater: int | None = Field(None, ge=1)  # alternative to raters: test trials per rater
    require_play: bool = True  # voting unlocks once both clips were played
    min_effect: float = Field(DEFAULT_MIN_EFFECT, gt=0.5, lt=1.0)  # smallest win rate worth detecting
    seed: int | None = Field(None, ge=0)  # None: a random seed, recorded in the plan
    target_lufs: float = Field(-23.0, ge=-70, le=-5)  # loudness of every served clip
    exclude_flagged: bool = False  # at Open, a take the quality checks flag plays a new clean take instead
    status: Status = "draft"

    @field_validator("title", "question")
    @classmethod
    def _one_line(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            raise ValueError("must not be blank")
        return v


#: the plan YAML's fields, for "did you mean" suggestions
PLAN_FIELDS: tuple[str, ...] = (*PlanSpec.model_fields, "preset")


# ---------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class Trial:
    """One comparison: a canonical pair (plan order) on one reference, sentence and take.

    A control trial has the same checkpoint, preset and take on both sides.
    """

    trial_id: str  # "t01", ...; repeat "t01r"; training "t01p"; control "c01"
    reference: str
    sentence: str
    checkpoint_a: str
    checkpoint_b: str
    preset_a: str
    preset_b: str
    repeat_of: str = ""  # trial_id this trial repeats
    kind: str = "test"  # one of TRIAL_KINDS
    take_a: int = 1  # take number played for checkpoint_a
    take_b: int = 1  # take number played for checkpoint_b

    @property
    def pair(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return (self.checkpoint_a, self.preset_a), (self.checkpoint_b, self.preset_b)

    def side(self, first: bool) -> tuple[str, str, int]:
        """``(checkpoint, preset, take)`` of the first (``checkpoint_a``) or second arm."""
        if first:
            return self.checkpoint_a, self.preset_a, self.take_a
        return self.checkpoint_b, self.preset_b, self.take_b


def repeat_of(t: Trial) -> Trial:
    """The repeat of test trial ``t`` (id ``<id>r``)."""
    return Trial(**{**asdict(t), "trial_id": t.trial_id + "r", "repeat_of": t.trial_id, "kind": "repeat"})


def training_of(t: Trial) -> Trial:
    """A practice copy of test trial ``t`` (id ``<id>p``), recorded but not counted."""
    return Trial(**{**asdict(t), "trial_id": t.trial_id + "p", "kind": "training"})


@dataclass(frozen=True)
class TestPlan:
    """A stored blind test (JSON under ``<data_dir>/tests/<test_id>.json``)."""

    test_id: str
    title: str
    checkpoints: tuple[str, ...]
    references: tuple[str, ...]
    sentences: tuple[str, ...]
    presets: tuple[str, ...]
    repeats: int  # per rater
    trials_per_rater: int | None  # test trials per rater (None: every test trial)
    require_play: bool
    seed: int
    target_lufs: float
    status: str
    created_utc: str
    created_by: str
    trials: tuple[Trial, ...]  # the test trials (repeats and training are drawn per rater)
    question: str = DEFAULT_QUESTION
    takes: int = 1
    play_reference: bool = False
    show_text: bool = False
    controls: int = 0  # per rater
    training: int = 0  # per rater
    raters: int | None = None  # rater slots of a subset design (None: every rater does every trial)
    raters_per_trial: int = 2
    min_effect: float = DEFAULT_MIN_EFFECT
    planned_votes_per_pair: int = 0  # decisive votes each pair should get (0: none is enough; see sample_size)
    control_trials: tuple[Trial, ...] = ()  # the pool identical-pair trials are drawn from
    sample_size: dict | None = None  # the planned size and its assumptions (stats SamplePlan as a dict)
    exclude_flagged: bool = False  # at Open, flagged takes were swapped for clean ones (workbench.quality)

    __test__ = False  # not a pytest test class

    @property
    def compares_presets(self) -> bool:
        return len(self.presets) > 1

    @property
    def arms(self) -> tuple[tuple[str, str], ...]:
        """``(checkpoint, preset)`` of every arm compared, in plan order."""
        if self.compares_presets:
            return tuple((self.checkpoints[0], p) for p in self.presets)
        return tuple((c, self.presets[0]) for c in self.checkpoints)

    @property
    def pairs(self) -> list[tuple[tuple[str, str], tuple[str, str]]]:
        return list(itertools.combinations(self.arms, 2))

    @property
    def per_pair(self) -> int:
        """Test trials of each pair one rater answers."""
        n_pair = len(self.trials) // max(len(self.pairs), 1)
        if self.trials_per_rater is None:
            return n_pair
        return min(n_pair, self.trials_per_rater // max(len(self.pairs), 1))

    @property
    def slots(self) -> int:
        """Rater slots the design cycles through (1 when every rater does every trial)."""
        return self.raters or 1

    @property
    def per_rater(self) -> int:
        """Trials each rater answers, everything included (training, test, repeats, controls)."""
        base = self.per_pair * len(self.pairs)
        return self.training + base + min(self.repeats, base) + self.controls

    def trial(self, trial_id: str) -> Trial:
        """Any trial of the plan by id: test, control, repeat (``r``) or training (``p``)."""
        by_id = {t.trial_id: t for t in (*self.trials, *self.control_trials)}
        if trial_id in by_id:
            return by_id[trial_id]
        base = by_id.get(trial_id[:-1])
        if base is not None and base.kind == "test":
            if trial_id.endswith("r"):
                return repeat_of(base)
            if trial_id.endswith("p"):
                return training_of(base)
        raise VoteError(f"test {self.test_id} has no trial {trial_id!r}")

    def describe(self) -> str:
        """A one-line summary of the design (admin view: names checkpoints)."""
        n_pairs = len(self.pairs)
        takes = f" x {self.takes} takes" if self.takes > 1 else ""
        head = (
            f"{len(self.trials)} trials = {n_pairs} pair(s) x {len(self.references)} reference(s) x "
            f"{len(self.sentences)} sentence(s){takes}"
        )
        extra = f"; {self.per_rater} per rater"
        parts = []
        if self.repeats:
            parts.append(f"{min(self.repeats, self.per_pair * n_pairs)} repeat(s)")
        if self.controls:
            parts.append(f"{self.controls} control(s)")
        if self.training:
            parts.append(f"{self.training} training")
        if parts:
            extra += " incl. " + ", ".join(parts)
        if self.raters:
            extra += f"; {self.raters} raters"
        return head + extra

    def to_dict(self) -> dict:
        d = asdict(self)
        d["trials"] = [asdict(t) for t in self.trials]
        d["control_trials"] = [asdict(t) for t in self.control_trials]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TestPlan:
        """Rebuild a stored plan; plans stored before a field existed get its default."""
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["trials"] = tuple(Trial(**t) for t in d["trials"])
        d["control_trials"] = tuple(Trial(**t) for t in d.get("control_trials", ()))
        for k in ("checkpoints", "references", "sentences", "presets"):
            d[k] = tuple(d[k])
        return cls(**d)


def check_test_id(test_id: str) -> str:
    """``test_id`` if it has the shape of one (``ab-`` + hex), else a :class:`BadVote`."""
    if not isinstance(test_id, str) or not _TEST_ID.match(test_id):
        raise BadVote(f"unknown test {test_id!r}; pick a test from the list")
    return test_id


def new_test_id() -> str:
    """A fresh random test id (``ab-`` + 8 hex digits)."""
    return "ab-" + secrets.token_hex(4)


# ---------------------------------------------------------------------------- planning votes


def sample_size(n_pairs: int, *, min_effect: float, n_raters: int | None, n_clips: int) -> dict:
    """The planned size of a test, from the statistics package (see :func:`workbench.stats.planned_votes`).

    Decisive votes per pair for a ``min_effect`` preference at alpha 0.05 over the pairs
    and power 0.8, with votes clustered by rater and clip; ``n_raters`` None: its default.
    Returned as ``SamplePlan.to_dict()`` (``votes_per_pair`` None, with a ``note``, when no
    number of votes is enough).
    """
    from ..stats.planning import planned_votes  # scipy: imported only when a plan is made

    return planned_votes(n_pairs, min_effect=min_effect, n_raters=n_raters, n_clips=n_clips).to_dict()


# ---------------------------------------------------------------------------- building


def _token_re(word: str) -> re.Pattern:
    return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", re.IGNORECASE)


def _field_message(loc: tuple, message: str) -> str:
    """``field.path: message`` (the admin form's wording; plan files add file and line)."""
    return f"{'.'.join(str(p) for p in loc)}: {message}" if loc else message


_ID_TABLES = (
    ("checkpoints", "checkpoints"),
    ("references", "references"),
    ("sentences", "sentences"),
    ("presets", "enhancements"),
)


def _known_ids(catalog: Catalog, data: dict, report: Callable[[tuple, str], None]) -> list[tuple[str, ...]]:
    """The catalog ids listed under each of :data:`_ID_TABLES` in ``data`` (``all``: every one).

    Reports unknown and doubled ids through ``report``.
    """
    found = []
    for kind, table_name in _ID_TABLES:
        table = getattr(catalog, table_name)
        out: list[str] = []
        ids = data.get(kind)
        if ids == ["all"] and "all" not in table:  # "sentences: all"
            ids = list(table)
        for n, i in enumerate(ids if isinstance(ids, list) else []):
            if not isinstance(i, str):
                continue  # a type problem, reported by the schema
            if i not in table:
                report((kind, n), f"{i!r} not found; available: {', '.join(table) or '(none)'}")
            elif i in out:
                report((kind, n), f"{i!r} listed twice")
            else:
                out.append(i)
        found.append(tuple(out))
    return found


def make_plan(
    catalog: Catalog,
    spec: PlanSpec,
    *,
    created_by: str = "admin",
    test_id: str | None = None,
    where: Callable[[tuple, str], str] = _field_message,
) -> TestPlan:
    """Validate ``spec`` against ``catalog`` and build the trial design.

    Raises :class:`PlanError` naming every problem (unknown ids, too few arms, a title
    or question that names a checkpoint, counts that do not fit the design), each
    formatted by ``where(location, message)`` (a plan file adds its file and line).
    """
    problems: list[str] = []

    def report(loc: tuple, message: str) -> None:
        problems.append(where(loc, message))

    cks, refs, sents, presets = _known_ids(catalog, spec.model_dump(), report)
    if len(presets) > 1 and len(cks) != 1:
        report(
            ("presets",),
            f"comparing presets needs exactly one checkpoint (got {len(cks)}); to compare checkpoints pick one preset",
        )
    if len(presets) == 1 and len(cks) < 2 and len(spec.checkpoints) < 2:
        report(("checkpoints",), "pick at least two checkpoints to compare (or one checkpoint and 2+ presets)")
    names = list(catalog.checkpoints) + (list(presets) if len(presets) > 1 else [])
    for what, text in (("title", spec.title), ("question", spec.question)):
        for name in names:
            if name != "none" and _token_re(name).search(text):
                report((what,), f"{text!r} names {name!r}; raters see the {what}, so keep it neutral")
    if spec.raters is not None and spec.trials_per_rater is not None:
        report(("raters",), "give either raters (how many will take part) or trials_per_rater, not both")
    if problems:
        raise PlanError(problems)

    arms = [(cks[0], p) for p in presets] if len(presets) > 1 else [(c, presets[0]) for c in cks]
    pairs = list(itertools.combinations(arms, 2))
    cells = list(itertools.product(refs, sents, range(1, spec.takes + 1)))
    n = len(pairs) * len(cells)
    width = max(2, len(str(n)))
    trials: list[Trial] = []
    for (r, s, take), ((ca, pa), (cb, pb)) in itertools.product(cells, pairs):
        trials.append(
            Trial(
                trial_id=f"t{len(trials) + 1:0{width}d}",
                reference=r,
                sentence=s,
                checkpoint_a=ca,
                checkpoint_b=cb,
                preset_a=pa,
                preset_b=pb,
                take_a=take,
                take_b=take,
            )
        )
    n_pair = len(cells)  # test trials of each pair
    k = spec.raters_per_trial
    raters = spec.raters
    tpr = spec.trials_per_rater
    if tpr is not None:
        if tpr > n:
            report(("trials_per_rater",), f"{tpr} is more than the {n} trials of the design")
        elif tpr % len(pairs):
            lo, hi = tpr - tpr % len(pairs), tpr - tpr % len(pairs) + len(pairs)
            pick = f"{lo} or {hi}" if lo else f"{hi}"
            report(
                ("trials_per_rater",),
                f"{tpr} does not divide evenly over the {len(pairs)} pairs; pick {pick} "
                "so every rater hears each pair equally often",
            )
        else:
            per_pair = tpr // len(pairs)
            raters = math.ceil(k * n_pair / per_pair) if per_pair < n_pair else None
    elif raters is not None:
        if k > raters:
            report(("raters_per_trial",), f"{k} is more than the {raters} raters")
        per_pair = min(n_pair, math.ceil(k * n_pair / raters))
        if per_pair >= n_pair:
            raters = None  # every rater does every trial: a complete design
        tpr = per_pair * len(pairs) if raters else None
    base = (tpr or n) if not problems else n
    if spec.repeats > base:
        report(("repeats",), f"{spec.repeats} is more than the {base} trials each rater answers")
    if spec.training > base:
        report(("training",), f"{spec.training} is more than the {base} trials each rater answers")
    total = spec.training + base + spec.repeats + spec.controls
    if total > MAX_TRIALS_PER_RATER:
        report(
            (),
            f"each rater would answer {total} trials; the limit is {MAX_TRIALS_PER_RATER}: "
            "pick fewer references/sentences/takes or set raters",
        )
    if problems:
        raise PlanError(problems)

    seed = spec.seed if spec.seed is not None else secrets.randbits(31)
    control_trials = _control_pool(arms, cells, spec.controls, seed)
    plan = TestPlan(
        test_id=test_id or new_test_id(),
        title=spec.title,
        checkpoints=cks,
        references=refs,
        sentences=sents,
        presets=presets,
        repeats=spec.repeats,
        trials_per_rater=tpr,
        require_play=spec.require_play,
        seed=seed,
        target_lufs=spec.target_lufs,
        status=spec.status,
        created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        created_by=created_by,
        trials=tuple(trials),
        question=spec.question,
        takes=spec.takes,
        play_reference=spec.play_reference,
        show_text=spec.show_text,
        controls=spec.controls,
        training=spec.training,
        raters=raters,
        raters_per_trial=k,
        min_effect=spec.min_effect,
        control_trials=control_trials,
        exclude_flagged=spec.exclude_flagged,
    )
    size = sample_size(
        len(pairs), min_effect=spec.min_effect, n_raters=raters or spec.raters, n_clips=len(refs) * len(sents)
    )
    return replace(plan, planned_votes_per_pair=size["votes_per_pair"] or 0, sample_size=size)


def _control_pool(arms: list, cells: list, controls: int, seed: int) -> tuple[Trial, ...]:
    """Identical-pair trials to draw controls from: arms in turn, cells spread by the seed.

    ``controls x len(arms)`` of them (none without controls); rater slot ``j`` takes
    ``controls`` consecutive ones starting at ``j x controls``, so the arms come round
    evenly over raters.
    """
    if not controls:
        return ()
    import random

    rng = random.Random(f"controls|{seed}")
    spread = list(cells)
    rng.shuffle(spread)
    n = controls * len(arms)
    width = max(2, len(str(n)))
    out = []
    for i in range(n):
        ck, preset = arms[i % len(arms)]
        ref, sent, take = spread[i % len(spread)]
        out.append(
            Trial(
                trial_id=f"c{i + 1:0{width}d}",
                reference=ref,
                sentence=sent,
                checkpoint_a=ck,
                checkpoint_b=ck,
                preset_a=preset,
                preset_b=preset,
                kind="control",
                take_a=take,
                take_b=take,
            )
        )
    return tuple(out)


# ---------------------------------------------------------------------------- plan files


def _parse(text: str, name: str) -> tuple[PlanSpec | None, YamlDoc, dict, list[str]]:
    """``(spec or None, doc, data, schema problems)`` of plan YAML text."""
    try:
        doc = load_yaml(text, name=name)
    except CatalogError as e:  # from the shared loader: same problems, plan wording
        raise PlanError(e.problems) from None
    data = doc.data
    if not isinstance(data, dict):
        raise PlanError(f"{doc.name}:1: a plan must be a mapping with title, checkpoints, references, sentences")
    data = {str(k): v for k, v in data.items()}  # YAML keys may be numbers, dates, null
    if "preset" in data:
        if "presets" in data:
            raise PlanError(doc.where(("preset",), "give either preset or presets, not both"))
        data["presets"] = [data.pop("preset")]
        doc.lines.setdefault(("presets",), doc.line(("preset",)))
        doc.lines.setdefault(("presets", 0), doc.line(("preset",)))
    for k in ("checkpoints", "references", "sentences", "presets"):
        if isinstance(data.get(k), str):
            data[k] = [data[k]]
    try:
        return PlanSpec(**data), doc, data, []
    except ValidationError as e:
        found = sorted(explain(e.errors(), list(PLAN_FIELDS)), key=lambda x: doc.line(x[0]))
        return None, doc, data, [doc.where(loc, msg) for loc, msg in found]


def parse_plan_yaml(text: str, *, name: str = "plan.yaml") -> PlanSpec:
    """Validate plan YAML text (schema only). Raises :class:`PlanError` as ``file:line: field message``.

    Accepts ``preset: NAME`` as a shorthand for ``presets: [NAME]``, and a single name
    where a list is expected. Every problem is reported at once; an unknown key gets
    a "did you mean" suggestion.
    """
    spec, _, _, problems = _parse(text, name)
    if spec is None:
        raise PlanError(problems)
    return spec


def plan_from_yaml(catalog: Catalog, text: str, *, name: str = "plan.yaml", created_by: str = "admin") -> TestPlan:
    """Validate plan YAML against ``catalog`` and build the plan (its ``status`` as written).

    Every problem is reported at once as ``file:line: field message``: schema mistakes
    and unknown catalog ids together, then (once those are fixed) design problems.
    """
    spec, doc, data, problems = _parse(text, name)
    if spec is None:
        _known_ids(catalog, data, lambda loc, msg: problems.append(doc.where(loc, msg)))
        problems.sort(key=lambda p: int(p.split(":")[1]) if p.split(":")[1].isdigit() else 0)
        raise PlanError(problems)
    return make_plan(catalog, spec, created_by=created_by, where=doc.where)


def load_plan_yaml(path: Pathlike) -> PlanSpec:
    """Read a plan YAML file (schema only; see :class:`PlanSpec` for the fields)."""
    path = Path(path)
    return parse_plan_yaml(_read(path), name=path.name)


def load_plan_file(catalog: Catalog, path: Pathlike, *, created_by: str = "admin") -> TestPlan:
    """Read a plan YAML file and build its plan against ``catalog`` (see :func:`plan_from_yaml`)."""
    path = Path(path)
    return plan_from_yaml(catalog, _read(path), name=path.name, created_by=created_by)


#: largest plan file read (bytes): a plan is a few dozen lines of YAML
MAX_PLAN_BYTES = 1 << 20


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_PLAN_BYTES:
            raise PlanError(
                f"{path.name}: {size / 2**20:.1f} MB is too large for a plan file (at most "
                f"{MAX_PLAN_BYTES >> 20} MB; a plan is a few lines of YAML): is this the right file?"
            )
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PlanError(f"{path.name}: cannot read the plan file: {e}") from None


def form_problems(e: ValidationError) -> PlanError:
    """A :class:`PlanError` for a spec built from the admin form (fields named, no file)."""
    return PlanError([_field_message(loc, msg) for loc, msg in explain(e.errors(), list(PLAN_FIELDS))])
