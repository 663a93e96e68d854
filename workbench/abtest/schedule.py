"""Per-rater schedules: which trials a rater answers, in what order, on which sides.

Raters are numbered by arrival: the first to start a test gets slot 0, the next slot 1,
and so on (recorded by :class:`~workbench.abtest.store.PlanStore`). The slot decides
the rater's share of the design; the rater's own seed (from the plan's seed and the
name) decides order and sides, so a reload or another device gets the same schedule.

- **Subset** (plans with ``raters``): each pair's test trials are put in one order
  shared by the whole plan and dealt out cyclically, ``per_pair`` to each slot, so
  every trial is rated by at least ``raters_per_trial`` raters and every rater hears
  each pair equally often.
- **Sides**: for each pair, ``checkpoint_a`` plays on screen slot A in half of the
  rater's trials of that pair (repeats included; odd counts differ by one, in turn
  towards A and B over raters, so the whole plan stays balanced).
- **Repeats**: chosen from the pairs in turn (the first pair rotates with the slot),
  placed at least :data:`MIN_REPEAT_GAP` trials after the original where possible;
  about a third keep their sides, the rest swap them, so a rater cannot tell a repeat
  by its sides.
- **Controls**: identical-pair trials from the plan's pool, arms in turn.
- **Training**: practice trials first, pairs in turn; recorded, not counted.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass

from ..errors import VoteError
from .plan import TestPlan, Trial, repeat_of, training_of

#: a repeat comes at least this many trials after its original (when the schedule allows)
MIN_REPEAT_GAP = 3


@dataclass(frozen=True)
class ScheduledTrial:
    """A trial as one rater gets it: its position and which screen slot plays ``checkpoint_a``."""

    position: int  # 0-based position in the rater's order
    trial: Trial
    a_side: str  # "A" or "B"

    def slot(self, which: str) -> tuple[str, str, int]:
        """``(checkpoint, preset, take)`` playing in screen slot ``which`` ("A" or "B")."""
        return self.trial.side(which == self.a_side)


@dataclass(frozen=True)
class RaterSchedule:
    """One rater's trials in one test, in the order they are shown."""

    rater: str
    test_id: str
    seed: int  # the seed the order and sides were drawn from
    trials: tuple[ScheduledTrial, ...]
    slot: int = 0  # arrival number of the rater in this test (0-based)

    def to_dict(self) -> dict:
        return {
            "rater": self.rater,
            "test_id": self.test_id,
            "seed": self.seed,
            "slot": self.slot,
            "order": [[s.trial.trial_id, s.a_side] for s in self.trials],
        }


def rater_seed(plan_seed: int, rater: str) -> int:
    """A rater's seed, derived from the plan's seed and the rater's name (63 bits)."""
    h = hashlib.sha256(f"{plan_seed}|{rater}".encode()).digest()
    return int.from_bytes(h[:8], "big") >> 1


def assigned_trials(plan: TestPlan, slot: int) -> list[Trial]:
    """The test trials of rater ``slot``: ``per_pair`` of each pair, dealt cyclically.

    Each pair's trials are shuffled once per plan (from the plan's seed); slot ``j``
    takes positions ``j*m .. j*m+m-1`` (mod the pair's count), so over ``raters`` slots
    every trial is dealt ``floor`` or ``ceil`` of ``raters*m/n`` times, at least
    ``raters_per_trial``.
    """
    prng = random.Random(f"design|{plan.seed}")
    j = slot % plan.slots
    m = plan.per_pair
    out: list[Trial] = []
    for pair in plan.pairs:
        items = [t for t in plan.trials if t.pair == pair]
        prng.shuffle(items)
        out += [items[(j * m + i) % len(items)] for i in range(min(m, len(items)))]
    return out


def _sides(units: list[tuple[Trial, str]], rng: random.Random, want: int) -> dict[str, tuple[str, str]]:
    """Sides for one pair's trials: ``{trial_id: (side, repeat side or "")}``.

    ``units`` are ``(trial, mode)`` with mode ``single`` (no repeat), ``same`` (a repeat
    on the same side: counts twice) or ``swap`` (a repeat on the other side: counts
    once each way). Greedy towards balance; an odd surplus goes to ``want`` (+1: A).
    """
    out: dict[str, tuple[str, str]] = {}
    bal = 0  # trials with checkpoint_a on A minus on B
    weight = {"same": 2, "single": 1}
    for mode in ("same", "single"):
        for t, m in units:
            if m != mode:
                continue
            side = "A" if bal < 0 else "B" if bal > 0 else rng.choice("AB")
            bal += weight[mode] if side == "A" else -weight[mode]
            out[t.trial_id] = (side, side if mode == "same" else "")
    if abs(bal) >= 2:  # only same-side repeats and no single left to even them out: swap one
        last = next(t for t, m in reversed(units) if m == "same")
        side = out[last.trial_id][0]
        out[last.trial_id] = (side, "B" if side == "A" else "A")
        bal += -2 if side == "A" else 2
    for t, m in units:
        if m == "swap":
            side = rng.choice("AB")
            out[t.trial_id] = (side, "B" if side == "A" else "A")
    if bal == -want:  # mirror: the surplus alternates over raters, so the plan stays balanced
        flip = {"A": "B", "B": "A", "": ""}
        out = {k: (flip[a], flip[b]) for k, (a, b) in out.items()}
    return out


def draw_schedule(plan: TestPlan, rater: str, seed: int | None = None, *, slot: int = 0) -> RaterSchedule:
    """Draw the schedule of ``rater``, the ``slot``-th rater (0-based) to start the test."""
    seed = rater_seed(plan.seed, rater) if seed is None else seed
    rng = random.Random(seed)
    picked = assigned_trials(plan, slot)
    pairs = plan.pairs
    by_pair = {p: [t for t in picked if t.pair == p] for p in pairs}

    # repeats: pairs in turn, starting at a pair that rotates with the slot
    n_rep = min(plan.repeats, len(picked))
    start = (slot * n_rep) % len(pairs)
    turn = pairs[start:] + pairs[:start]
    pool = {p: rng.sample(by_pair[p], len(by_pair[p])) for p in pairs}
    repeated: list[Trial] = []
    i = 0
    while len(repeated) < n_rep:
        p = turn[i % len(turn)]
        i += 1
        if pool[p]:
            repeated.append(pool[p].pop())
    n_same = (n_rep + slot % 3) // 3  # about a third of the plan's repeats keep their sides
    same = {t.trial_id for t in rng.sample(repeated, n_same)}
    rep_ids = {t.trial_id for t in repeated}

    sides: dict[str, tuple[str, str]] = {}
    for pi, p in enumerate(pairs):
        units = [
            (t, "same" if t.trial_id in same else "swap" if t.trial_id in rep_ids else "single") for t in by_pair[p]
        ]
        rng.shuffle(units)
        sides.update(_sides(units, rng, want=1 if (slot + pi) % 2 == 0 else -1))

    body: list[tuple[Trial, str]] = [(t, sides[t.trial_id][0]) for t in picked]
    pool_c = plan.control_trials
    if plan.controls and pool_c:
        first = slot * plan.controls
        for c in range(plan.controls):
            ct = pool_c[(first + c) % len(pool_c)]
            body.append((ct, "A" if (slot + c) % 2 == 0 else "B"))
    rng.shuffle(body)
    for t in rng.sample(repeated, len(repeated)):
        pos = next(i for i, (o, _) in enumerate(body) if o.trial_id == t.trial_id)
        lo = min(pos + 1 + MIN_REPEAT_GAP, len(body))
        body.insert(rng.randint(lo, len(body)), (repeat_of(t), sides[t.trial_id][1]))

    training: list[tuple[Trial, str]] = []
    if plan.training:
        groups = {p: [t for t in plan.trials if t.pair == p] for p in pairs}
        for items in groups.values():
            rng.shuffle(items)
        for n in range(plan.training):
            p = turn[n % len(turn)]
            t = groups[p][(n // len(turn)) % len(groups[p])]
            training.append((training_of(t), rng.choice("AB")))

    order = training + body
    trials = tuple(ScheduledTrial(position=i, trial=t, a_side=s) for i, (t, s) in enumerate(order))
    return RaterSchedule(rater=rater, test_id=plan.test_id, seed=seed, trials=trials, slot=slot)


def schedule_from_dict(plan: TestPlan, d: dict) -> RaterSchedule:
    """Rebuild a recorded schedule (``RaterSchedule.to_dict``) against its plan."""
    out = []
    for i, (tid, s) in enumerate(d["order"]):
        try:
            t = plan.trial(tid)
        except VoteError:
            t = None
        if t is None or s not in ("A", "B"):
            raise VoteError(f"recorded schedule of {d.get('rater')!r} names unknown trial {tid!r}")
        out.append(ScheduledTrial(position=i, trial=t, a_side=s))
    return RaterSchedule(
        rater=d["rater"], test_id=plan.test_id, seed=int(d["seed"]), trials=tuple(out), slot=int(d.get("slot", 0))
    )


# ---------------------------------------------------------------------------- the design at a glance


def _arm_label(plan: TestPlan, arm: tuple[str, str]) -> str:
    return arm[1] if plan.compares_presets else arm[0]


def pair_label(plan: TestPlan, pair) -> str:
    """``feb1 vs apr27`` (or ``none vs denoise`` when the plan compares presets)."""
    return f"{_arm_label(plan, pair[0])} vs {_arm_label(plan, pair[1])}"


def design_summary(plan: TestPlan) -> dict:
    """The design of ``plan`` as plain data (JSON-ready): what the admin checks before opening.

    Counts come from drawing the schedules of the plan's raters (``raters`` slots for
    a subset design, else ``raters_per_trial`` example raters, since every rater then
    does every trial).
    """
    n_raters = plan.raters or max(plan.raters_per_trial, 1)
    scheds = [draw_schedule(plan, f"rater {j + 1}", slot=j) for j in range(n_raters)]
    counted = [s for s in scheds[0].trials if s.trial.kind != "training"]
    kinds = Counter(s.trial.kind for s in scheds[0].trials)
    per_trial = Counter(s.trial.trial_id for sc in scheds for s in sc.trials if s.trial.kind == "test")
    raters_per_trial = [per_trial.get(t.trial_id, 0) for t in plan.trials]
    sides: Counter[str] = Counter()
    rep: Counter[str] = Counter()
    rep_pairs: Counter[str] = Counter()
    controls = 0
    for sc in scheds:
        first_side = {s.trial.trial_id: s.a_side for s in sc.trials if s.trial.kind == "test"}
        for s in sc.trials:
            if s.trial.kind in ("test", "repeat"):
                sides[s.a_side] += 1
            if s.trial.kind == "repeat":
                rep["same_side" if first_side[s.trial.repeat_of] == s.a_side else "swapped"] += 1
                rep_pairs[pair_label(plan, s.trial.pair)] += 1
            if s.trial.kind == "control":
                controls += 1
    per_pair_votes = plan.per_pair * n_raters
    notes = [
        "Clip durations differ between checkpoints (each model's own speaking rate); raters hear and see that, "
        "it is part of what they judge."
    ]
    size = plan.sample_size or {}
    if size.get("note"):
        notes.append(size["note"])
    elif plan.planned_votes_per_pair and per_pair_votes < plan.planned_votes_per_pair:
        notes.append(
            f"{n_raters} raters give each pair {per_pair_votes} votes; {plan.planned_votes_per_pair} decisive votes "
            f"are planned to detect a {plan.min_effect:.2f} preference: add raters, sentences or takes."
        )
    these = size.get("votes_these_raters")
    if these and per_pair_votes < these:
        notes.append(
            f"for these raters only (not raters in general), {these} decisive votes per pair are planned and "
            f"{n_raters} raters give each pair {per_pair_votes}: add sentences or takes (an early verdict is "
            "still possible when the preference is strong)."
        )
    return {
        "test_id": plan.test_id,
        "title": plan.title,
        "status": plan.status,
        "seed": plan.seed,
        "question": plan.question,
        "compares": "presets" if plan.compares_presets else "checkpoints",
        "arms": [_arm_label(plan, a) for a in plan.arms],
        "pairs": [pair_label(plan, p) for p in plan.pairs],
        "references": len(plan.references),
        "sentences": len(plan.sentences),
        "takes": plan.takes,
        "trials": len(plan.trials),
        "design": "subset" if plan.raters else "complete",
        "raters": n_raters,
        "raters_planned": plan.raters,
        "trials_per_rater": {
            "total": len(scheds[0].trials),
            "counted": len(counted),
            "test": kinds["test"],
            "repeats": kinds["repeat"],
            "controls": kinds["control"],
            "training": kinds["training"],
        },
        "pairs_per_rater": {pair_label(plan, p): plan.per_pair for p in plan.pairs},
        "raters_per_trial": {"min": min(raters_per_trial), "max": max(raters_per_trial)},
        "controls": {"per_rater": plan.controls, "total": controls},
        "repeats": {
            "per_rater": kinds["repeat"],
            "total": sum(rep.values()),
            "same_side": rep["same_side"],
            "swapped": rep["swapped"],
            "per_pair": dict(rep_pairs),
        },
        "training": plan.training,
        "side_balance": {"A": sides["A"], "B": sides["B"]},
        "votes_per_pair": per_pair_votes,
        "planned_votes_per_pair": plan.planned_votes_per_pair or None,  # None: no number of votes is enough
        # the same for the "these raters" scope (raters fixed, clips random); None: not reachable or not recorded
        "planned_votes_these_raters": size.get("votes_these_raters"),
        "min_effect": plan.min_effect,
        "play_reference": plan.play_reference,
        "show_text": plan.show_text,
        "require_play": plan.require_play,
        "exclude_flagged": plan.exclude_flagged,
        "notes": notes,
    }


def summary_lines(s: dict) -> list[str]:
    """The design summary as short lines of text (CLI and admin form)."""
    yes = {True: "yes", False: "no"}
    tpr = s["trials_per_rater"]
    extras = [f"{tpr['test']} test"]
    if tpr["repeats"]:
        r = s["repeats"]
        extras.append(f"{tpr['repeats']} repeats")
    if tpr["controls"]:
        extras.append(f"{tpr['controls']} identical-pair controls")
    if tpr["training"]:
        extras.append(f"{tpr['training']} training (not counted)")
    takes = f" x {s['takes']} takes" if s["takes"] > 1 else ""
    each = next(iter(s["pairs_per_rater"].values()))
    if s["design"] == "subset":
        who = f"{s['raters']} raters, each trial rated by {s['raters_per_trial']['min']}" + (
            f"-{s['raters_per_trial']['max']}" if s["raters_per_trial"]["max"] != s["raters_per_trial"]["min"] else ""
        )
    else:
        who = "every rater rates every trial"
    lines = [
        f"{s['title']} ({s['test_id']}, {s['status']})" if s["test_id"] else f"{s['title']} (seed {s['seed']})",
        f"question: {s['question']}",
        f"compares {s['compares']}: {', '.join(s['pairs'])}",
        f"trials: {s['trials']} = {len(s['pairs'])} pair(s) x {s['references']} reference(s) x "
        f"{s['sentences']} sentence(s){takes}",
        f"raters: {who}",
        f"per rater: {tpr['total']} trials = {' + '.join(extras)}; each pair {each} times",
    ]
    if tpr["repeats"]:
        r = s["repeats"]
        per_pair = ", ".join(f"{k} {v}" for k, v in r["per_pair"].items())
        lines.append(
            f"repeats over {s['raters']} raters: {r['total']} ({r['swapped']} sides swapped, "
            f"{r['same_side']} same side); per pair: {per_pair}"
        )
    if tpr["controls"]:
        lines.append(f"identical-pair controls over {s['raters']} raters: {s['controls']['total']}")
    sb = s["side_balance"]
    lines.append(f"sides over {s['raters']} raters: first of each pair on A {sb['A']} times, on B {sb['B']} times")
    planned = s["planned_votes_per_pair"]
    planned = f"{planned} decisive votes" if planned else "no number of votes is enough with this design (see below)"
    lines.append(
        f"votes per pair from {s['raters']} raters: {s['votes_per_pair']}; planned: {planned} "
        f"(a {s['min_effect']:.2f} preference at alpha 0.05 over the pairs, power 0.8, "
        "votes clustered by rater and clip)"
    )
    if s.get("planned_votes_these_raters"):
        lines.append(
            f"planned for these raters only (raters fixed, votes clustered by clip): "
            f"{s['planned_votes_these_raters']} decisive votes per pair"
        )
    lines.append(
        f"reference playable: {yes[s['play_reference']]}; sentence text shown: {yes[s['show_text']]}; "
        f"voting after both were played: {yes[s['require_play']]}; "
        f"flagged takes replaced at Open: {yes[s['exclude_flagged']]}"
    )
    lines += [f"note: {n}" for n in s["notes"]]
    return lines
