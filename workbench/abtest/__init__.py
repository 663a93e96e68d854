"""Blind A/B tests: plans, per-rater schedules, the plan store, anonymous served audio, rater sessions.

- :mod:`.plan`: what is compared and how (:class:`PlanSpec` -> :class:`TestPlan`), plan YAML.
- :mod:`.schedule`: each rater's trials, order and sides; the design summary.
- :mod:`.store`: plans and schedules on disk behind one lock (:class:`PlanStore`).
- :mod:`.serve`: anonymous copies of clips for browsers and their delivery counts.
- :mod:`.session`: one rater working through a test (:class:`RaterSession`), the play gate.

Blindness: the key (which checkpoint plays in slot A or B, which trial is a control or a
repeat) never leaves the server.
"""

from .plan import (
    DEFAULT_QUESTION,
    MAX_TITLE_CHARS,
    MAX_TRIALS_PER_RATER,
    STATUSES,
    TRIAL_KINDS,
    PlanSpec,
    TestPlan,
    Trial,
    form_problems,
    load_plan_file,
    load_plan_yaml,
    make_plan,
    new_test_id,
    parse_plan_yaml,
    plan_from_yaml,
    sample_size,
)
from .schedule import (
    RaterSchedule,
    ScheduledTrial,
    assigned_trials,
    design_summary,
    draw_schedule,
    rater_seed,
    schedule_from_dict,
    summary_lines,
)
from .serve import SERVED_SR, SERVED_SUBTYPE, ServedFiles, clip_url, maybe_sweep, serve_clip, sweep_served
from .session import RaterSession, ShownTrial, check_renderable, median_durations, plan_requests
from .store import PlanStore

__all__ = [
    "DEFAULT_QUESTION",
    "MAX_TITLE_CHARS",
    "MAX_TRIALS_PER_RATER",
    "SERVED_SR",
    "SERVED_SUBTYPE",
    "STATUSES",
    "TRIAL_KINDS",
    "PlanSpec",
    "PlanStore",
    "RaterSchedule",
    "RaterSession",
    "ScheduledTrial",
    "ServedFiles",
    "ShownTrial",
    "TestPlan",
    "Trial",
    "assigned_trials",
    "check_renderable",
    "clip_url",
    "design_summary",
    "draw_schedule",
    "form_problems",
    "load_plan_file",
    "load_plan_yaml",
    "make_plan",
    "maybe_sweep",
    "median_durations",
    "new_test_id",
    "parse_plan_yaml",
    "plan_from_yaml",
    "plan_requests",
    "sample_size",
    "rater_seed",
    "schedule_from_dict",
    "serve_clip",
    "summary_lines",
    "sweep_served",
]
