"""Rater sessions: one rater working through one test, server-side.

Progress comes from the vote CSV, the system of record: the next trial is the first one
in the rater's schedule without an effective vote.

The play gate is enforced here: a vote is accepted only when the server delivered both
clips of the trial (counted by :class:`~.serve.ServedFiles`) and, when the plan asks
for it, the page reported playing both.
"""

from __future__ import annotations

import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import WorkbenchError
from ..votes import CHOICES, BadVote, Vote, VoteRef, VoteStore, check_name
from .plan import TestPlan
from .schedule import RaterSchedule, ScheduledTrial
from .serve import ServedFiles, clip_url
from .store import PlanStore

#: what a rater is told when a vote comes before both clips were heard
NOT_HEARD = "Listen to both A and B before voting: press A and B (or the keys A and B) to play them."


def _not_fetched(slots: list[str]) -> str:
    which = " and ".join(slots)
    return (
        f"Your vote was not saved: {which} never reached your device, so you cannot have heard "
        f"{'it' if len(slots) == 1 else 'them'}. Play both A and B, then vote again "
        "(if a clip does not play, reload the page)."
    )


@dataclass
class ShownTrial:
    """What the UI may show for a trial: nothing here identifies a checkpoint or a trial kind."""

    token: str  # random per showing; a vote must carry it
    url_a: str  # served copy for slot A (relative URL)
    url_b: str  # served copy for slot B
    url_ref: str  # served copy of the reference recording ("" when the plan does not allow it)
    text: str  # the sentence text ("" when the plan does not show it)
    number: int  # 1-based position of this trial in the rater's schedule
    total: int  # trials in the rater's schedule
    done: int  # trials with an effective vote
    require_play: bool
    changing: bool  # re-answering a trial that already has a vote
    previous_choice: str = ""  # when changing: the choice being replaced
    audio_a: Path | None = None  # the served files themselves (tests, benchmarks)
    audio_b: Path | None = None


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
    clip_path: Callable[..., Path]  # (checkpoint, reference, sentence, preset, take) -> clip file
    served: ServedFiles
    reference_path: Callable[[str], Path | None] | None = None  # reference id -> audio file, if any
    sentence_text: Callable[[str], str] | None = None  # sentence id -> text (show_text)
    role: str = "rater"  # "admin" when an admin rates (their votes are labelled)
    schedule: RaterSchedule = field(init=False)
    current: ScheduledTrial | None = field(default=None, init=False)
    token: str = field(default="", init=False)
    shown_at: float = field(default=0.0, init=False)
    supersedes: str = field(default="", init=False)
    play: dict = field(default_factory=dict, init=False)
    names: dict = field(default_factory=dict, init=False)  # "A"/"B"/"R" -> served copy name
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rater = check_name(self.rater)
        if self.plan.status != "open":
            raise BadVote(f"test {self.plan.title!r} is not open for voting ({self.plan.status})")
        self.schedule = self.plans.schedule(self.plan, self.rater)

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
        t = st.trial
        names = {}
        for which in ("A", "B"):  # a control trial gets two independent copies of one clip
            ck, preset, take = st.slot(which)
            clip = self.clip_path(ck, t.reference, t.sentence, preset, take)
            names[which] = self.served.add(clip, self.rater, target_lufs=self.plan.target_lufs)
        ref_audio = self.reference_path(t.reference) if self.plan.play_reference and self.reference_path else None
        if ref_audio is not None:  # a built-in XTTS speaker has no recording to play
            names["R"] = self.served.add(ref_audio, self.rater, target_lufs=self.plan.target_lufs)
        text = self.sentence_text(t.sentence) if self.plan.show_text and self.sentence_text is not None else ""
        self._drop_current()
        self.current = st
        self.token = secrets.token_urlsafe(16)
        self.shown_at = time.monotonic()
        self.supersedes = supersedes
        self.play = {"A": _Play(), "B": _Play()}
        self.names = names
        done, total = self.progress()
        return ShownTrial(
            token=self.token,
            url_a=clip_url(names["A"]),
            url_b=clip_url(names["B"]),
            url_ref=clip_url(names["R"]) if "R" in names else "",
            text=text,
            number=st.position + 1,
            total=total,
            done=done,
            require_play=self.plan.require_play,
            changing=bool(supersedes),
            previous_choice=previous_choice,
            audio_a=self.served.path(names["A"]),
            audio_b=self.served.path(names["B"]),
        )

    def _drop_current(self) -> None:
        """Forget the current trial and delete its served copies."""
        self.served.drop(list(self.names.values()))
        self.names = {}
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

    def fetched(self, which: str) -> int:
        """How many times the server delivered the current trial's copy for slot ``which``."""
        with self._lock:
            name = self.names.get(which)
            return self.served.fetches(name) if name else 0

    def can_vote(self) -> bool:
        with self._lock:
            if self.current is None:
                return False
            if not self.plan.require_play:
                return True
            return all(self.play[s].heard and self.fetched(s) for s in ("A", "B"))

    def _listened(self, which: str, now: float) -> float:
        p = self.play[which]
        return p.seconds + (now - p.started if p.started is not None else 0.0)

    # ------------------------------------------------------------------ voting

    def vote(self, token: str, choice: str, reasons: Iterable[str] | None = (), comment: str | None = "") -> Vote:
        """Record the rater's answer to the current trial (durably) and return the vote.

        Raises :class:`BadVote` for a stale or unknown ``token`` (already answered,
        replayed, or another page), a closed test, clips the server never delivered or
        the page did not play (when the plan requires playing both), a bad choice,
        reason or oversized comment.
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
            if self.plan.require_play:
                missing = [s for s in ("A", "B") if not self.fetched(s)]
                if missing:
                    raise BadVote(_not_fetched(missing))
                if not all(self.play[s].heard for s in ("A", "B")):
                    raise BadVote(NOT_HEARD)
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
                trial_kind=t.kind,
                take_a=t.take_a,
                take_b=t.take_b,
                fetched_a=self.fetched("A"),
                fetched_b=self.fetched("B"),
                rater_role=self.role,
            )
            self.votes.append(vote)
            self._drop_current()
            return vote


def plan_requests(plan: TestPlan) -> list[tuple[str, str, str, str, int]]:
    """Every distinct clip a plan needs: ``(checkpoint, reference, sentence, preset, take)``."""
    seen: dict[tuple[str, str, str, str, int], None] = {}
    for t in (*plan.trials, *plan.control_trials):
        for first in (True, False):
            ck, preset, take = t.side(first)
            seen[(ck, t.reference, t.sentence, preset, take)] = None
    return list(seen)


def median_durations(plan: TestPlan, cells: Iterable[tuple], durations: Iterable[float | None]) -> dict[str, float]:
    """Median clip duration (s) per compared arm (checkpoint, or preset when presets are compared).

    ``cells`` are :func:`plan_requests` tuples and ``durations`` their clips' lengths in
    seconds, in the same order (None or 0 for a clip without one: left out). Each
    model's own speaking rate shows here, and raters hear it.
    """
    by_arm: dict[str, list[float]] = {}
    for (ck, _ref, _sent, preset, _take), seconds in zip(cells, durations, strict=True):
        if seconds:
            by_arm.setdefault(preset if plan.compares_presets else ck, []).append(float(seconds))
    return {arm: statistics.median(d) for arm, d in by_arm.items()}


def check_renderable(plan: TestPlan, renderer) -> list[str]:
    """Problems that would stop a plan's clips from rendering (empty when all can).

    Cheap: resolves every request (sources, files) without rendering.
    """
    from ..render import RenderRequest

    problems: dict[str, None] = {}
    for ck, ref, sent, preset, take in plan_requests(plan):
        try:
            renderer.plan(RenderRequest(checkpoint=ck, reference=ref, sentence=sent, enhancement=preset, take=take))
        except WorkbenchError as e:
            problems[str(e)] = None
    return list(problems)
