"""Blind A/B tests: plans, per-rater schedules, anonymous served audio, rater sessions.

A :class:`TestPlan` names what to compare (two or more checkpoints with one enhancement
preset, or two or more presets of one checkpoint), on which references and sentences.
Its trials form a balanced design: every pair appears on every chosen reference and
sentence. Each rater gets their own :class:`RaterSchedule`: order randomised and screen
sides counterbalanced per pair, from a seed derived from the plan's seed and the
rater's name; the schedule is recorded the first time the rater starts, so a rater who
reloads or switches device resumes the same order. Optional repeated trials replay a
trial with swapped sides later on, to measure rater consistency.

Blindness: the key (which checkpoint plays in slot A or B) never leaves the server. The
audio a browser receives is a fresh copy per trial and slot, under a random file name,
loudness-matched to the plan's target, 16-bit WAV at the clip rate, with fresh TPDF
dither so even the same clip has different bytes (Gradio serves files under a folder
named by the hash of their content).

Progress comes from the vote CSV, the system of record: the next trial is the first one
in the rater's schedule without an effective vote.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import logging
import os
import random
import re
import secrets
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import audio
from .catalog import Catalog
from .errors import CatalogError, VoteError, WorkbenchError
from .fsutil import write_json_atomic
from .votes import CHOICES, BadVote, Vote, VoteRef, VoteStore, check_name

log = logging.getLogger(__name__)

Pathlike = str | Path
Seconds = float
Status = Literal["draft", "open", "closed"]
STATUSES: tuple[str, ...] = ("draft", "open", "closed")
#: served audio: sample rate (Hz) and subtype of every file handed to a browser
SERVED_SR = 24000
SERVED_SUBTYPE = "PCM_16"
#: served copies older than this are deleted by :func:`sweep_served`; a copy is only needed
#: until Gradio has copied it into its own cache, right after the handler returns
SERVED_MAX_AGE_S: Seconds = 600.0
#: how often rater sessions sweep the served folder (abandoned tabs leave copies behind)
SWEEP_EVERY_S: Seconds = 300.0
#: longest test title (characters)
MAX_TITLE_CHARS = 100
#: most trials one rater may be given (base + repeats)
MAX_TRIALS_PER_RATER = 500
_TEST_ID = re.compile(r"^ab-[0-9a-f]{6,32}$")


# ---------------------------------------------------------------------------- plans


class PlanSpec(BaseModel):
    """What an admin asks for; validated against the catalog by :func:`make_plan`.

    Also the schema of a plan YAML file (see :func:`load_plan_yaml`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)  # what raters see; no checkpoint names
    checkpoints: list[str] = Field(min_length=1)  # two or more, or one when comparing presets
    references: list[str] = Field(min_length=1)
    sentences: list[str] = Field(min_length=1)
    presets: list[str] = Field(default_factory=lambda: ["none"], min_length=1)  # one: both sides; 2+: compared
    repeats: int = Field(0, ge=0, le=100)  # trials replayed with swapped sides, per rater
    trials_per_rater: int | None = Field(None, ge=1)  # None: every trial of the design
    require_play: bool = True  # voting unlocks once both clips were played
    seed: int | None = Field(None, ge=0)  # None: a random seed, recorded in the plan
    target_lufs: float = Field(-23.0, ge=-70, le=-5)  # loudness of every served clip
    status: Status = "draft"

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            raise ValueError("title must not be blank")
        return v


@dataclass(frozen=True)
class Trial:
    """One comparison: a canonical pair (plan order) on one reference and sentence."""

    trial_id: str  # "t01", ...; a repeat is "<trial_id>r"
    reference: str
    sentence: str
    checkpoint_a: str
    checkpoint_b: str
    preset_a: str
    preset_b: str
    repeat_of: str = ""  # trial_id this trial repeats with swapped sides

    @property
    def pair(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return (self.checkpoint_a, self.preset_a), (self.checkpoint_b, self.preset_b)


@dataclass(frozen=True)
class TestPlan:
    """A stored blind test (JSON under ``<data_dir>/tests/<test_id>.json``)."""

    test_id: str
    title: str
    checkpoints: tuple[str, ...]
    references: tuple[str, ...]
    sentences: tuple[str, ...]
    presets: tuple[str, ...]
    repeats: int
    trials_per_rater: int | None
    require_play: bool
    seed: int
    target_lufs: float
    status: Status
    created_utc: str
    created_by: str
    trials: tuple[Trial, ...]  # the base design (repeats are added per rater)

    __test__ = False  # not a pytest test class

    @property
    def compares_presets(self) -> bool:
        return len(self.presets) > 1

    @property
    def per_rater(self) -> int:
        """Trials each rater answers (base trials given to them + repeats)."""
        base = min(self.trials_per_rater or len(self.trials), len(self.trials))
        return base + min(self.repeats, base)

    def trial(self, trial_id: str) -> Trial:
        for t in self.trials:
            if t.trial_id == trial_id:
                return t
        raise VoteError(f"test {self.test_id} has no trial {trial_id!r}")

    def describe(self) -> str:
        """A one-line summary of the design (admin view: names checkpoints)."""
        arms = self.presets if self.compares_presets else self.checkpoints
        n_pairs = len(arms) * (len(arms) - 1) // 2
        head = (
            f"{len(self.trials)} trials = {n_pairs} pair(s) x {len(self.references)} reference(s) x "
            f"{len(self.sentences)} sentence(s)"
        )
        extra = f"; {self.per_rater} per rater"
        if self.repeats:
            extra += f" incl. {min(self.repeats, self.per_rater)} repeat(s)"
        return head + extra

    def to_dict(self) -> dict:
        d = asdict(self)
        d["trials"] = [asdict(t) for t in self.trials]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TestPlan:
        d = dict(d)
        d["trials"] = tuple(Trial(**t) for t in d["trials"])
        for k in ("checkpoints", "references", "sentences", "presets"):
            d[k] = tuple(d[k])
        return cls(**d)


def _token_re(word: str) -> re.Pattern:
    return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", re.IGNORECASE)


def make_plan(catalog: Catalog, spec: PlanSpec, *, created_by: str = "admin", test_id: str | None = None) -> TestPlan:
    """Validate ``spec`` against ``catalog`` and build the balanced trial design.

    Raises :class:`CatalogError` naming every problem (unknown ids, too few arms, a
    title that names a checkpoint, impossible counts).
    """
    problems: list[str] = []

    def known(kind: str, ids: list[str], table: dict) -> tuple[str, ...]:
        out = []
        for i in ids:
            if i not in table:
                problems.append(f"{kind}: {i!r} not found; available: {', '.join(table) or '(none)'}")
            elif i in out:
                problems.append(f"{kind}: {i!r} listed twice")
            else:
                out.append(i)
        return tuple(out)

    cks = known("checkpoints", spec.checkpoints, catalog.checkpoints)
    refs = known("references", spec.references, catalog.references)
    sents = known("sentences", spec.sentences, catalog.sentences)
    presets = known("presets", spec.presets, catalog.enhancements)
    if len(presets) > 1 and len(spec.checkpoints) != 1:
        problems.append(
            "presets: comparing presets needs exactly one checkpoint "
            f"(got {len(spec.checkpoints)}); to compare checkpoints pick one preset"
        )
    if len(presets) == 1 and len(spec.checkpoints) < 2:
        problems.append("checkpoints: pick at least two checkpoints to compare (or one checkpoint and 2+ presets)")
    for name in list(catalog.checkpoints) + (list(spec.presets) if len(spec.presets) > 1 else []):
        if name != "none" and _token_re(name).search(spec.title):
            problems.append(f"title: {spec.title!r} names {name!r}; raters see the title, so keep it neutral")
    if problems:
        raise CatalogError(problems)

    arms = [(cks[0], p) for p in presets] if len(presets) > 1 else [(c, presets[0]) for c in cks]
    pairs = list(itertools.combinations(arms, 2))
    n = len(pairs) * len(refs) * len(sents)
    width = max(2, len(str(n)))
    trials = []
    for r, s, ((ca, pa), (cb, pb)) in itertools.product(refs, sents, pairs):
        trials.append(
            Trial(
                trial_id=f"t{len(trials) + 1:0{width}d}",
                reference=r,
                sentence=s,
                checkpoint_a=ca,
                checkpoint_b=cb,
                preset_a=pa,
                preset_b=pb,
            )
        )
    per_rater = min(spec.trials_per_rater or n, n)
    if spec.trials_per_rater and spec.trials_per_rater > n:
        problems.append(f"trials_per_rater: {spec.trials_per_rater} is more than the {n} trials of the design")
    if spec.repeats > per_rater:
        problems.append(f"repeats: {spec.repeats} is more than the {per_rater} trials each rater answers")
    if per_rater + spec.repeats > MAX_TRIALS_PER_RATER:
        problems.append(
            f"each rater would answer {per_rater + spec.repeats} trials; the limit is {MAX_TRIALS_PER_RATER}: "
            "pick fewer references/sentences or set trials_per_rater"
        )
    if problems:
        raise CatalogError(problems)
    return TestPlan(
        test_id=test_id or new_test_id(),
        title=spec.title,
        checkpoints=cks,
        references=refs,
        sentences=sents,
        presets=presets,
        repeats=spec.repeats,
        trials_per_rater=spec.trials_per_rater,
        require_play=spec.require_play,
        seed=spec.seed if spec.seed is not None else secrets.randbits(31),
        target_lufs=spec.target_lufs,
        status=spec.status,
        created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        created_by=created_by,
        trials=tuple(trials),
    )


def new_test_id() -> str:
    """A fresh random test id (``ab-`` + 8 hex digits)."""
    return "ab-" + secrets.token_hex(4)


def parse_plan_yaml(text: str, *, name: str = "plan.yaml") -> PlanSpec:
    """Validate plan YAML text. Raises :class:`CatalogError` as ``file:line: field message``.

    Accepts ``preset: NAME`` as a shorthand for ``presets: [NAME]``.
    """
    from .catalog import _compose_lines, _friendly

    try:
        lines = _compose_lines(text)
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as e:  # ValueError: a date like 2024-13-45, a 5000-digit number
        mark = getattr(e, "problem_mark", None)
        raise CatalogError(
            f"{name}:{mark.line + 1 if mark else 1}: not valid YAML: {getattr(e, 'problem', e)}"
        ) from None
    if not isinstance(data, dict):
        raise CatalogError(f"{name}:1: a plan must be a mapping with title, checkpoints, references, sentences")
    data = {str(k): v for k, v in data.items()}  # YAML keys may be numbers, dates, null
    if "preset" in data:
        if "presets" in data:
            raise CatalogError(f"{name}:{lines.get(('preset',), 1)}: preset give either preset or presets, not both")
        data["presets"] = [data.pop("preset")]
    for k in ("checkpoints", "references", "sentences", "presets"):
        if isinstance(data.get(k), str):
            data[k] = [data[k]]
    try:
        return PlanSpec(**data)
    except ValidationError as e:
        out = []
        for err in e.errors():
            loc = tuple(str(p) for p in err["loc"])
            line = lines.get(loc[:1], 1)
            out.append(f"{name}:{line}: {'.'.join(loc)} {_friendly(err)}")
        raise CatalogError(out) from None


def load_plan_yaml(path: Pathlike) -> PlanSpec:
    """Read a plan YAML file (see :class:`PlanSpec` for the fields)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogError(f"{path.name}: cannot read the plan file: {e}") from None
    return parse_plan_yaml(text, name=path.name)


# ---------------------------------------------------------------------------- per-rater schedules


@dataclass(frozen=True)
class ScheduledTrial:
    """A trial as one rater gets it: its position and which screen slot plays ``checkpoint_a``."""

    position: int  # 0-based position in the rater's order
    trial: Trial
    a_side: str  # "A" or "B"

    def slot(self, which: str) -> tuple[str, str]:
        """``(checkpoint, preset)`` playing in screen slot ``which`` ("A" or "B")."""
        t = self.trial
        first = which == self.a_side
        return (t.checkpoint_a, t.preset_a) if first else (t.checkpoint_b, t.preset_b)


@dataclass(frozen=True)
class RaterSchedule:
    rater: str
    test_id: str
    seed: int  # the seed the order and sides were drawn from
    trials: tuple[ScheduledTrial, ...]

    def to_dict(self) -> dict:
        return {
            "rater": self.rater,
            "test_id": self.test_id,
            "seed": self.seed,
            "order": [[s.trial.trial_id, s.a_side] for s in self.trials],
        }


def rater_seed(plan_seed: int, rater: str) -> int:
    """A rater's seed, derived from the plan's seed and the rater's name (63 bits)."""
    h = hashlib.sha256(f"{plan_seed}|{rater}".encode()).digest()
    return int.from_bytes(h[:8], "big") >> 1


def _repeat(t: Trial) -> Trial:
    return replace(t, trial_id=t.trial_id + "r", repeat_of=t.trial_id)


def draw_schedule(plan: TestPlan, rater: str, seed: int | None = None) -> RaterSchedule:
    """Draw a rater's trials: subset (balanced over pairs), sides, order, repeats.

    - With ``trials_per_rater`` below the design size, trials are taken round-robin
      over the pairs, so each pair's count differs by at most one.
    - Sides: per pair, ``checkpoint_a`` plays in slot A for half of the rater's trials
      (differing by at most one), assigned at random.
    - Order: shuffled. Repeats: ``repeats`` of the rater's trials again, sides swapped,
      placed at least 3 trials after the original where possible.
    """
    seed = rater_seed(plan.seed, rater) if seed is None else seed
    rng = random.Random(seed)
    base = list(plan.trials)
    groups: dict[tuple, list[Trial]] = defaultdict(list)
    for t in base:
        groups[t.pair].append(t)
    keys = list(groups)
    n = min(plan.trials_per_rater or len(base), len(base))
    if n < len(base):
        for k in keys:
            rng.shuffle(groups[k])
        rng.shuffle(keys)
        picked: list[Trial] = []
        for round_ in itertools.zip_longest(*(groups[k] for k in keys)):
            picked.extend(t for t in round_ if t is not None)
        picked = picked[:n]
    else:
        picked = base
    side: dict[str, str] = {}
    by_pair: dict[tuple, list[Trial]] = defaultdict(list)
    for t in picked:
        by_pair[t.pair].append(t)
    for items in by_pair.values():
        first = rng.choice("AB")
        other = "B" if first == "A" else "A"
        seq = [first if i % 2 == 0 else other for i in range(len(items))]
        rng.shuffle(seq)
        for t, s in zip(items, seq, strict=True):
            side[t.trial_id] = s
    order = [(t, side[t.trial_id]) for t in picked]
    rng.shuffle(order)
    for t in rng.sample(picked, min(plan.repeats, len(picked))):
        pos = next(i for i, (o, _) in enumerate(order) if o.trial_id == t.trial_id)
        lo = min(pos + 4, len(order))
        order.insert(rng.randint(lo, len(order)), (_repeat(t), "B" if side[t.trial_id] == "A" else "A"))
    trials = tuple(ScheduledTrial(position=i, trial=t, a_side=s) for i, (t, s) in enumerate(order))
    return RaterSchedule(rater=rater, test_id=plan.test_id, seed=seed, trials=trials)


def schedule_from_dict(plan: TestPlan, d: dict) -> RaterSchedule:
    """Rebuild a recorded schedule (``RaterSchedule.to_dict``) against its plan."""
    by_id = {t.trial_id: t for t in plan.trials}
    out = []
    for i, (tid, s) in enumerate(d["order"]):
        base_id = tid[:-1] if tid.endswith("r") and tid[:-1] in by_id else tid
        if base_id not in by_id or s not in ("A", "B"):
            raise VoteError(f"recorded schedule of {d.get('rater')!r} names unknown trial {tid!r}")
        t = by_id[base_id] if base_id == tid else _repeat(by_id[base_id])
        out.append(ScheduledTrial(position=i, trial=t, a_side=s))
    return RaterSchedule(rater=d["rater"], test_id=plan.test_id, seed=int(d["seed"]), trials=tuple(out))


# ---------------------------------------------------------------------------- storage


class PlanStore:
    """Test plans as JSON files in one folder, plus each rater's recorded schedule.

    ``<folder>/<test_id>.json`` holds the plan; ``<folder>/<test_id>.schedules.jsonl``
    one line per rater (seed and order) written when they first start.
    """

    def __init__(self, folder: Pathlike):
        self.folder = Path(folder)
        self._lock = threading.RLock()
        self._schedules: dict[tuple[str, str], RaterSchedule] = {}
        self._cache: dict[str, tuple[tuple[int, int], TestPlan]] = {}  # test_id -> (mtime, size), plan

    def _path(self, test_id: str) -> Path:
        if not _TEST_ID.match(test_id or ""):
            raise BadVote(f"unknown test {test_id!r}; pick a test from the list")
        return self.folder / f"{test_id}.json"

    def save(self, plan: TestPlan) -> TestPlan:
        with self._lock:
            write_json_atomic(self._path(plan.test_id), plan.to_dict(), indent=1)
        return plan

    def get(self, test_id: str) -> TestPlan:
        """The stored plan (re-read only when its file changed)."""
        path = self._path(test_id)
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            hit = self._cache.get(test_id)
            if hit is not None and hit[0] == stamp:
                return hit[1]
            plan = TestPlan.from_dict(json.loads(path.read_text(encoding="utf-8")))
            self._cache[test_id] = (stamp, plan)
            return plan
        except FileNotFoundError:
            raise BadVote(f"unknown test {test_id!r}; pick a test from the list") from None
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise VoteError(f"{path}: not a valid test plan ({e}); restore it or delete it") from None

    def list(self, status: str | None = None) -> list[TestPlan]:
        """Every stored plan (newest first), optionally only those with ``status``."""
        plans = []
        if self.folder.is_dir():
            for p in self.folder.glob("ab-*.json"):
                try:
                    plan = self.get(p.stem)
                except WorkbenchError as e:
                    log.warning("%s", e)
                    continue
                if status is None or plan.status == status:
                    plans.append(plan)
        return sorted(plans, key=lambda p: (p.created_utc, p.test_id), reverse=True)

    def set_status(self, test_id: str, status: str) -> TestPlan:
        if status not in STATUSES:
            raise VoteError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        with self._lock:
            plan = replace(self.get(test_id), status=status)
            return self.save(plan)

    def schedule(self, plan: TestPlan, rater: str) -> RaterSchedule:
        """The rater's recorded schedule, drawn and recorded on first use."""
        key = (plan.test_id, rater)
        with self._lock:
            if key in self._schedules:
                return self._schedules[key]
            path = self.folder / f"{plan.test_id}.schedules.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                with open(path, encoding="utf-8") as f:
                    for line in f:
                        try:
                            d = json.loads(line)
                        except ValueError:
                            continue  # a line cut short by a crash: drawn again below
                        if d.get("rater") == rater:
                            sched = schedule_from_dict(plan, d)
                            self._schedules[key] = sched
                            return sched
                sched = draw_schedule(plan, rater)
                rec = {**sched.to_dict(), "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                os.write(fd, (json.dumps(rec) + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            self._schedules[key] = sched
            return sched


# ---------------------------------------------------------------------------- served audio


class _LevelledCache:
    """Loudness-matched clips: the gain that brings each clip to a target is measured once.

    Keyed by (path, mtime, size, target); holds one float per clip (LRU of ``size``
    entries), so a test with hundreds of clips costs a file read per serve, not a
    loudness measurement.
    """

    def __init__(self, size: int = 4096):
        self.size = size
        self._gains: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, target_lufs: float) -> np.ndarray:
        """The clip at :data:`SERVED_SR` Hz, scaled to ``target_lufs`` (peak-limited at -1 dBFS)."""
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size, target_lufs)
        y, sr = audio.load(path)
        if sr != SERVED_SR:
            y = audio.resample(y, orig_sr=sr, target_sr=SERVED_SR)
        with self._lock:
            gain = self._gains.get(key)
            if gain is not None:
                self._gains.move_to_end(key)
        if gain is None:
            peak = float(np.max(np.abs(y)))
            levelled = audio.normalize_loudness(y, SERVED_SR, target_lufs=target_lufs)
            gain = float(np.max(np.abs(levelled))) / peak
            with self._lock:
                self._gains[key] = gain
                while len(self._gains) > self.size:
                    self._gains.popitem(last=False)
            return levelled
        return y * np.float32(gain)


_levelled = _LevelledCache()


def serve_clip(clip_path: Pathlike, served_dir: Pathlike, *, target_lufs: float = -23.0) -> Path:
    """Write an anonymous copy of a clip for a browser and return its path.

    The copy is loudness-normalised to ``target_lufs`` (LUFS), 16-bit WAV at
    :data:`SERVED_SR` Hz mono, under a random name, with fresh TPDF dither (about
    -96 dBFS, inaudible) so two copies of one clip never have the same bytes.
    """
    y = _levelled.get(Path(clip_path), target_lufs)
    rng = np.random.default_rng()
    lsb = 1.0 / 32768.0
    dither = (rng.random(y.shape[0], dtype=np.float32) - rng.random(y.shape[0], dtype=np.float32)) * lsb
    out = Path(served_dir) / f"{secrets.token_hex(16)}.wav"
    audio.write(out, y + dither, SERVED_SR, subtype=SERVED_SUBTYPE, durable=False)  # throwaway copy
    return out


def sweep_served(served_dir: Pathlike, max_age_s: Seconds = SERVED_MAX_AGE_S) -> int:
    """Delete served copies older than ``max_age_s`` seconds; returns how many."""
    folder = Path(served_dir)
    if not folder.is_dir():
        return 0
    cutoff = time.time() - max_age_s
    n = 0
    for p in folder.iterdir():
        try:
            if p.is_file() and p.stat().st_mtime < cutoff:
                p.unlink()
                n += 1
        except OSError:
            pass
    return n


_last_sweep: dict[str, float] = {}
_sweep_lock = threading.Lock()


def maybe_sweep(served_dir: Pathlike) -> None:
    """Run :func:`sweep_served` on ``served_dir`` at most every :data:`SWEEP_EVERY_S` seconds."""
    key = str(served_dir)
    now = time.monotonic()
    with _sweep_lock:
        if now - _last_sweep.get(key, -SWEEP_EVERY_S) < SWEEP_EVERY_S:
            return
        _last_sweep[key] = now
    sweep_served(served_dir)


# ---------------------------------------------------------------------------- rater sessions


@dataclass
class ShownTrial:
    """What the UI may show for a trial: nothing here identifies a checkpoint."""

    token: str  # random per showing; a vote must carry it
    audio_a: Path  # served copy for slot A
    audio_b: Path  # served copy for slot B
    number: int  # 1-based position of this trial in the rater's schedule
    total: int  # trials in the rater's schedule
    done: int  # trials with an effective vote
    require_play: bool
    changing: bool  # re-answering a trial that already has a vote
    previous_choice: str = ""  # when changing: the choice being replaced


@dataclass
class _Play:
    started: float | None = None  # monotonic time of the last play event
    seconds: float = 0.0  # accumulated listening time
    heard: bool = False


@dataclass
class RaterSession:
    """One rater working through one test, server-side (held in ``gr.State``).

    Every method that touches the current trial takes the session's lock, so play
    events and a vote arriving at once see one consistent state.
    """

    plan: TestPlan
    rater: str
    votes: VoteStore
    plans: PlanStore
    clip_path: Callable[[str, str, str, str], Path]  # (checkpoint, reference, sentence, preset) -> clip file
    served_dir: Path
    schedule: RaterSchedule = field(init=False)
    current: ScheduledTrial | None = field(default=None, init=False)
    token: str = field(default="", init=False)
    shown_at: float = field(default=0.0, init=False)
    supersedes: str = field(default="", init=False)
    play: dict = field(default_factory=dict, init=False)
    served: list = field(default_factory=list, init=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rater = check_name(self.rater)
        if self.plan.status != "open":
            raise BadVote(f"test {self.plan.title!r} is not open for voting ({self.plan.status})")
        self.schedule = self.plans.schedule(self.plan, self.rater)
        self.served_dir = Path(self.served_dir)

    # ------------------------------------------------------------------ progress

    def voted(self) -> dict[str, VoteRef]:
        return self.votes.effective_for(self.rater, self.plan.test_id)

    def progress(self) -> tuple[int, int]:
        """``(done, total)`` from the vote CSV."""
        voted = self.voted()
        return sum(1 for s in self.schedule.trials if s.trial.trial_id in voted), len(self.schedule.trials)

    def next_open(self) -> ScheduledTrial | None:
        """The first trial of the schedule without an effective vote (None: finished)."""
        voted = self.voted()
        return next((s for s in self.schedule.trials if s.trial.trial_id not in voted), None)

    def previous_voted(self) -> ScheduledTrial | None:
        """The voted trial just before the current (or next open) one, for changing a vote."""
        voted = self.voted()
        if self.current is not None:
            here = self.current.position
        else:
            nxt = self.next_open()
            here = nxt.position if nxt is not None else len(self.schedule.trials)
        for s in reversed(self.schedule.trials[:here]):
            if s.trial.trial_id in voted:
                return s
        return None

    # ------------------------------------------------------------------ showing

    def show_next(self) -> ShownTrial | None:
        """Show the next open trial; None when the rater has answered every trial."""
        with self._lock:
            nxt = self.next_open()
            if nxt is None:
                self._drop_current()
                return None
            return self._show(nxt, supersedes="", previous_choice="")

    def show_previous(self) -> ShownTrial:
        """Show the previously answered trial again so the rater can change the vote."""
        with self._lock:
            prev = self.previous_voted()
            if prev is None:
                raise BadVote("there is no earlier vote in this test to change")
            ref = self.voted()[prev.trial.trial_id]
            return self._show(prev, supersedes=ref.vote_id, previous_choice=ref.choice)

    def _show(self, st: ScheduledTrial, *, supersedes: str, previous_choice: str) -> ShownTrial:
        self._refresh_plan()
        maybe_sweep(self.served_dir)
        paths = {}
        for which in ("A", "B"):
            ck, preset = st.slot(which)
            clip = self.clip_path(ck, st.trial.reference, st.trial.sentence, preset)
            paths[which] = serve_clip(clip, self.served_dir, target_lufs=self.plan.target_lufs)
        self._drop_current()
        self.current = st
        self.token = secrets.token_urlsafe(16)
        self.shown_at = time.monotonic()
        self.supersedes = supersedes
        self.play = {"A": _Play(), "B": _Play()}
        self.served = [paths["A"], paths["B"]]
        done, total = self.progress()
        return ShownTrial(
            token=self.token,
            audio_a=paths["A"],
            audio_b=paths["B"],
            number=st.position + 1,
            total=total,
            done=done,
            require_play=self.plan.require_play,
            changing=bool(supersedes),
            previous_choice=previous_choice,
        )

    def _drop_current(self) -> None:
        """Forget the current trial and delete its served copies (Gradio holds its own)."""
        for p in self.served:
            Path(p).unlink(missing_ok=True)
        self.served = []
        self.current = None
        self.token = ""

    def close(self) -> None:
        with self._lock:
            self._drop_current()

    def _refresh_plan(self) -> None:
        plan = self.plans.get(self.plan.test_id)
        if plan.status != "open":
            raise BadVote(f"test {plan.title!r} is {plan.status}; thank you, there is nothing left to rate")
        self.plan = plan

    # ------------------------------------------------------------------ listening

    def played(self, which: str, event: Literal["play", "pause", "stop"]) -> bool:
        """Record a player event for slot ``which``; returns True when voting is unlocked."""
        if which not in ("A", "B"):
            raise BadVote(f"slot must be A or B, got {which!r}")
        with self._lock:
            if self.current is None:
                return False
            p = self.play[which]
            now = time.monotonic()
            if event == "play":
                if p.started is None:
                    p.started = now
                p.heard = True
            elif p.started is not None:
                p.seconds += now - p.started
                p.started = None
            return self.can_vote()

    def can_vote(self) -> bool:
        with self._lock:
            if self.current is None:
                return False
            return not self.plan.require_play or all(self.play[s].heard for s in ("A", "B"))

    def _listened(self, which: str, now: float) -> float:
        p = self.play[which]
        return p.seconds + (now - p.started if p.started is not None else 0.0)

    # ------------------------------------------------------------------ voting

    def vote(self, token: str, choice: str, reasons: Iterable[str] | None = (), comment: str | None = "") -> Vote:
        """Record the rater's answer to the current trial (durably) and return the vote.

        Raises :class:`VoteError` for a stale or unknown ``token`` (already answered,
        replayed, or another page), a closed test, clips not yet played when the plan
        requires it, a bad choice, reason or oversized comment.
        """
        if choice not in CHOICES:
            raise BadVote(f"choice must be A, B or none, got {choice!r}")
        with self._lock:
            if self.current is None or not token or not secrets.compare_digest(str(token), self.token):
                raise BadVote(
                    "this trial is no longer waiting for a vote (already answered, or the page is out of date); "
                    "reload the page to continue where you left off"
                )
            self._refresh_plan()
            if not self.can_vote():
                raise BadVote("listen to both A and B before voting")
            st = self.current
            now = time.monotonic()
            t = st.trial
            vote = Vote.create(
                rater=self.rater,
                test_id=self.plan.test_id,
                trial_id=t.trial_id,
                reference=t.reference,
                sentence_id=t.sentence,
                checkpoint_a=t.checkpoint_a,
                checkpoint_b=t.checkpoint_b,
                preset_a=t.preset_a,
                preset_b=t.preset_b,
                a_side=st.a_side,
                choice=choice,
                reasons=reasons,
                comment=comment,
                played_a_s=self._listened("A", now),
                played_b_s=self._listened("B", now),
                decision_s=now - self.shown_at,
                repeat_of=t.repeat_of,
                supersedes=self.supersedes,
            )
            self.votes.append(vote)
            self._drop_current()
            return vote


def plan_requests(plan: TestPlan) -> list[tuple[str, str, str, str]]:
    """Every distinct clip a plan needs: ``(checkpoint, reference, sentence, preset)``."""
    seen: dict[tuple[str, str, str, str], None] = {}
    for t in plan.trials:
        for ck, preset in t.pair:
            seen[(ck, t.reference, t.sentence, preset)] = None
    return list(seen)


def check_renderable(plan: TestPlan, renderer) -> list[str]:
    """Problems that would stop a plan's clips from rendering (empty when all can).

    Cheap: resolves every request (sources, files) without rendering.
    """
    from .render import RenderRequest

    problems: dict[str, None] = {}
    for ck, ref, sent, preset in plan_requests(plan):
        try:
            renderer.plan(RenderRequest(checkpoint=ck, reference=ref, sentence=sent, enhancement=preset))
        except WorkbenchError as e:
            problems[str(e)] = None
    return list(problems)
