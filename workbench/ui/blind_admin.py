"""The admin panel of the Blind A/B tab: create, open, close, archive and delete tests.

The form starts filled with sensible defaults (every checkpoint, every reference, up
to 8 sentences, preset ``none``, the reference playable), so a test is a title and
one click away; the design summary below the form (the same as ``python -m workbench
plan``) follows every change before the test is created. Each test has an invite link
(``?tab=blind&test=<id>``) that opens the rater page with the test picked. Archiving
hides a test from raters and lists; deleting moves its plan aside; votes always stay
in the CSV.

Every handler checks the caller is an admin (:func:`require_admin`); raters' pages
never get the panel's contents.
"""

from __future__ import annotations

import html
import statistics
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import gradio as gr
import pandas as pd
from pydantic import ValidationError

from ..abtest import (
    DEFAULT_QUESTION,
    PlanSpec,
    TestPlan,
    check_renderable,
    design_summary,
    form_problems,
    make_plan,
    plan_requests,
    summary_lines,
)
from ..abtest import load_plan_file as build_plan_file
from ..comparison import preset_offer
from ..errors import CatalogError, PlanError, VoteError
from ..quality import exclude_flagged_takes
from ..render import RenderRequest
from .blind import RENDER_GROUP, RENDER_LIMIT, _Errors, _open_tests, services
from .common import AppContext, bind, get_renderer, require_admin, username
from .quality_panel import get_quality_store

TEST_COLUMNS = ["test", "title", "status", "design", "raters", "votes"]
#: sentences picked by default in a new test
DEFAULT_SENTENCES = 8
DEFAULT_TITLE = "Listening test"


def _tests_table(ctx: AppContext) -> pd.DataFrame:
    svc = services(ctx)
    df = svc.votes.read()
    rows = []
    for plan in svc.plans.list():
        mine = df[df["test_id"] == plan.test_id] if not df.empty else df
        arms = plan.presets if plan.compares_presets else plan.checkpoints
        rows.append(
            {
                "test": plan.test_id,
                "title": plan.title,
                "status": plan.status,
                "design": f"{' vs '.join(arms)}: {plan.describe()}",
                "raters": int(mine["rater"].nunique()) if len(mine) else 0,
                "votes": len(mine),
            }
        )
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def _choices(ctx: AppContext) -> list[tuple[str, str]]:
    return [(f"{p.title} [{p.status}] {p.test_id}", p.test_id) for p in services(ctx).plans.list()]


def invite_link(request: gr.Request | None, test_id: str | None) -> str:
    """The link that opens the rater page with ``test_id`` picked (this server's address as the admin sees it)."""
    if not test_id:
        return ""
    headers = dict(getattr(request, "headers", None) or {})
    origin = headers.get("origin")
    if not origin:
        host = headers.get("x-forwarded-host") or headers.get("host") or "127.0.0.1:7860"
        scheme = headers.get("x-forwarded-proto") or "http"
        origin = f"{scheme}://{host}"
    return f"{origin.rstrip('/')}/?tab=blind&test={quote(test_id)}"


def _admin_refresh(ctx: AppContext, message: str, rater: str | None, request: gr.Request, pick: str | None = None):
    choices = _choices(ctx)
    ids = [c[1] for c in choices]
    value = pick if pick in ids else (ids[0] if ids else None)
    return (
        message,
        _tests_table(ctx),
        gr.update(choices=choices, value=value),
        gr.update(choices=_open_tests(ctx, rater)),
        invite_link(request, value),
    )


def admin_load(ctx: AppContext, request: gr.Request):
    """Fill the admin panel for admins; raters get nothing (no names in their page)."""
    if ctx.users is not None and ctx.users.role(username(ctx, request)) != "admin":
        return (gr.update(visible=False),) + tuple(gr.skip() for _ in range(8))
    with _Errors():
        cat = ctx.catalog
        choices = _choices(ctx)
        first = choices[0][1] if choices else None
        fields = _default_fields(ctx)
        return (
            gr.update(visible=True),
            gr.update(choices=list(cat.checkpoints), value=fields["checkpoints"]),
            gr.update(choices=list(cat.references), value=fields["references"]),
            gr.update(choices=list(cat.sentences), value=fields["sentences"]),
            gr.update(choices=preset_offer(cat).choices, value=fields["presets"]),  # only presets that can run
            _tests_table(ctx),
            gr.update(choices=choices, value=first),
            invite_link(request, first),
            _summary_markdown(ctx, _spec(**fields)),
        )


def _default_fields(ctx: AppContext) -> dict:
    cat = ctx.catalog
    return {
        "title": DEFAULT_TITLE,
        "question": DEFAULT_QUESTION,
        "checkpoints": list(cat.checkpoints),
        "references": list(cat.references),
        "sentences": list(cat.sentences)[:DEFAULT_SENTENCES],
        "presets": ["none"] if "none" in cat.enhancements else [],
        "takes": 1,
        "controls": 0,
        "repeats": 0,
        "training": 0,
        "raters": 0,
        "raters_per_trial": 2,
        "play_reference": True,
        "show_text": False,
        "require_play": True,
    }


def _spec(
    title: str | None = "",
    question: str | None = "",
    checkpoints: list[str] | None = None,
    references: list[str] | None = None,
    sentences: list[str] | None = None,
    presets: list[str] | None = None,
    takes: float | None = 1,
    controls: float | None = 0,
    repeats: float | None = 0,
    training: float | None = 0,
    raters: float | None = 0,
    raters_per_trial: float | None = 2,
    play_reference: bool = True,
    show_text: bool = False,
    require_play: bool = True,
    seed: int | None = None,
) -> PlanSpec:
    """A :class:`PlanSpec` from the form's values; raises :class:`PlanError` naming the fields."""
    try:
        return PlanSpec(
            title=title or "",
            question=question or DEFAULT_QUESTION,
            checkpoints=checkpoints or [],
            references=references or [],
            sentences=sentences or [],
            presets=presets or ["none"],
            takes=int(takes or 1),
            controls=int(controls or 0),
            repeats=int(repeats or 0),
            training=int(training or 0),
            raters=int(raters) if raters else None,
            raters_per_trial=int(raters_per_trial or 2),
            play_reference=bool(play_reference),
            show_text=bool(show_text),
            require_play=bool(require_play),
            seed=seed,
        )
    except ValidationError as e:
        raise form_problems(e) from None


def _summary_markdown(ctx: AppContext, spec: PlanSpec) -> str:
    try:
        plan = make_plan(ctx.catalog, spec.model_copy(update={"seed": spec.seed or 0}))
    except PlanError as e:
        return "**Design:** fix these first:\n\n" + "\n".join(f"- {html.escape(p)}" for p in e.problems)
    lines = summary_lines({**design_summary(plan), "test_id": None})
    return "**Design** (as `python -m workbench plan` prints it):\n\n" + "\n".join(
        f"- {html.escape(line)}" for line in lines[1:]
    )


def preview(
    ctx: AppContext,
    title: str | None,
    question: str | None,
    checkpoints: list[str] | None,
    references: list[str] | None,
    sentences: list[str] | None,
    presets: list[str] | None,
    takes: float | None,
    controls: float | None,
    repeats: float | None,
    training: float | None,
    raters: float | None,
    raters_per_trial: float | None,
    play_reference: bool,
    show_text: bool,
    require_play: bool,
    request: gr.Request,
):
    """The design summary of what the form holds now (nothing is stored)."""
    require_admin(ctx, request)
    try:
        spec = _spec(
            title,
            question,
            checkpoints,
            references,
            sentences,
            presets,
            takes,
            controls,
            repeats,
            training,
            raters,
            raters_per_trial,
            play_reference,
            show_text,
            require_play,
            seed=0,
        )
        return _summary_markdown(ctx, spec)
    except PlanError as e:
        return "**Design:** fix these first:\n\n" + "\n".join(f"- {html.escape(p)}" for p in e.problems)


def _save_new(ctx: AppContext, plan: TestPlan) -> str:
    problems = check_renderable(plan, get_renderer(ctx))
    if problems:
        raise CatalogError(problems)
    services(ctx).plans.save(plan)
    return f"Created **{html.escape(plan.title)}** (`{plan.test_id}`, draft): {plan.describe()}. Open it to start."


def create_test(
    ctx: AppContext,
    title: str | None,
    question: str | None,
    checkpoints: list[str] | None,
    references: list[str] | None,
    sentences: list[str] | None,
    presets: list[str] | None,
    takes: float | None,
    controls: float | None,
    repeats: float | None,
    training: float | None,
    raters: float | None,
    raters_per_trial: float | None,
    play_reference: bool,
    show_text: bool,
    require_play: bool,
    request: gr.Request,
):
    """Create a blind test from the admin form (a draft until opened)."""
    require_admin(ctx, request)
    with _Errors():
        spec = _spec(
            title,
            question,
            checkpoints,
            references,
            sentences,
            presets,
            takes,
            controls,
            repeats,
            training,
            raters,
            raters_per_trial,
            play_reference,
            show_text,
            require_play,
        )
        plan = make_plan(ctx.catalog, spec, created_by=username(ctx, request) or "local")
        msg = _save_new(ctx, plan)
        return _admin_refresh(ctx, msg, username(ctx, request), request, pick=plan.test_id)


def load_plan_file(ctx: AppContext, file: str | None, request: gr.Request):
    """Create a test from an uploaded plan YAML (saved as a draft first, then given the file's status)."""
    require_admin(ctx, request)
    with _Errors():
        if not file:
            raise VoteError("choose a plan file (.yaml) first")
        plan = build_plan_file(ctx.catalog, file, created_by=username(ctx, request) or "local")
        wanted = plan.status
        plan = replace(plan, status="draft")
        msg = _save_new(ctx, plan)
        if wanted == "open":
            msg += " The file asks for it to be open: press Open to render its clips first."
        return _admin_refresh(ctx, msg, username(ctx, request), request, pick=plan.test_id)


def open_test(ctx: AppContext, test_id: str | None, request: gr.Request, progress=gr.Progress()):
    """Render every clip the test needs (so raters never wait), then open it."""
    require_admin(ctx, request)
    with _Errors():
        svc = services(ctx)
        plan = svc.plans.get(test_id or "")
        reqs = [
            RenderRequest(checkpoint=c, reference=r, sentence=s, enhancement=p, take=k)
            for c, r, s, p, k in plan_requests(plan)
        ]
        results = get_renderer(ctx).render_many(reqs, progress=lambda f, label: progress(f, desc="rendering clips"))
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise CatalogError([str(e) for e in failed])
        swapped = ""
        if plan.exclude_flagged:  # the plan asks for takes the quality checks flag to be replaced
            progress(0.9, desc="checking takes for flags")
            plan, notes = exclude_flagged_takes(plan, get_quality_store(ctx), get_renderer(ctx))
            svc.plans.save(plan)
            swapped = " Flagged takes: " + ("; ".join(html.escape(n) for n in notes) if notes else "none.")
        svc.plans.set_status(plan.test_id, "open")
        msg = (
            f"**{html.escape(plan.title)}** is open: {len(reqs)} clips ready. Send raters the invite link. "
            f"{_durations(plan, reqs, results)}{swapped}"
        )
        return _admin_refresh(ctx, msg, username(ctx, request), request, pick=plan.test_id)


def _durations(plan: TestPlan, reqs: list[RenderRequest], clips: list) -> str:
    """Median clip duration per compared item: the models' own speaking rate, which raters hear."""
    by_arm: dict[str, list[float]] = {}
    for req, clip in zip(reqs, clips, strict=True):
        arm = req.enhancement if plan.compares_presets else req.checkpoint
        if getattr(clip, "duration", 0):
            by_arm.setdefault(arm, []).append(clip.duration)
    if not by_arm:
        return ""
    parts = ", ".join(f"{html.escape(a)} {statistics.median(d):.1f} s" for a, d in by_arm.items())
    return f"Median clip duration: {parts} (each model's own speaking rate; raters hear it)."


def close_test(ctx: AppContext, test_id: str | None, request: gr.Request):
    """Close a test: no more votes; its results stay."""
    require_admin(ctx, request)
    with _Errors():
        plan = services(ctx).plans.set_status(test_id or "", "closed")
        msg = f"**{html.escape(plan.title)}** is closed: raters can no longer vote on it."
        return _admin_refresh(ctx, msg, username(ctx, request), request, pick=plan.test_id)


def archive_test(ctx: AppContext, test_id: str | None, request: gr.Request):
    """Archive a test: raters no longer see it; its votes stay in the CSV."""
    require_admin(ctx, request)
    with _Errors():
        plan = services(ctx).plans.set_status(test_id or "", "archived")
        msg = f"**{html.escape(plan.title)}** is archived: raters no longer see it; its votes stay in the CSV."
        return _admin_refresh(ctx, msg, username(ctx, request), request, pick=plan.test_id)


def delete_test(ctx: AppContext, test_id: str | None, request: gr.Request):
    """Delete a closed or draft test's plan and schedules (its votes stay in the CSV)."""
    require_admin(ctx, request)
    with _Errors():
        svc = services(ctx)
        plan = svc.plans.get(test_id or "")
        if plan.status == "open":
            raise VoteError(f"{plan.title!r} is open: close it before deleting it")
        svc.plans.delete(plan.test_id)
        msg = (
            f"**{html.escape(plan.title)}** (`{plan.test_id}`) is deleted: its plan moved to `tests/deleted/`; "
            "its votes stay in the CSV."
        )
        return _admin_refresh(ctx, msg, username(ctx, request), request)


def show_invite(ctx: AppContext, test_id: str | None, request: gr.Request):
    """The invite link for a test, built from the address the admin is using."""
    require_admin(ctx, request)
    return invite_link(request, test_id)


def build(ctx: AppContext, demo: gr.Blocks, rater_test: gr.Dropdown) -> None:
    """The admin panel (hidden until :func:`admin_load` shows it to an admin)."""
    b = bind
    with gr.Accordion("Admin: blind tests", open=False, visible=False) as admin_box:
        gr.Markdown(
            "Pick what to compare (every pair is played on every reference, sentence and take; each rater gets "
            "their own order and sides), then **Create test** and **Open** it. Compare presets by picking one "
            "checkpoint and two or more presets. The design below follows the form."
        )
        with gr.Row():
            title = gr.Textbox(
                label="Title raters see (no checkpoint names)",
                value=DEFAULT_TITLE,
                max_lines=1,
                max_length=100,
                elem_id="wb-admin-title",
            )
            question = gr.Textbox(
                label="Question raters answer",
                value=DEFAULT_QUESTION,
                max_lines=1,
                max_length=200,
                elem_id="wb-admin-question",
            )
        with gr.Row():
            checkpoints = gr.Dropdown(label="Checkpoints", choices=[], multiselect=True, elem_id="wb-admin-checkpoints")
            presets = gr.Dropdown(
                label="Enhancement preset(s)", choices=[], multiselect=True, elem_id="wb-admin-presets"
            )
        with gr.Row():
            references = gr.Dropdown(label="References", choices=[], multiselect=True, elem_id="wb-admin-references")
            sentences = gr.Dropdown(label="Sentences", choices=[], multiselect=True, elem_id="wb-admin-sentences")
        with gr.Row():
            takes = gr.Number(label="Takes per clip (seeds)", value=1, precision=0, minimum=1, elem_id="wb-admin-takes")
            controls = gr.Number(
                label="Identical-pair controls per rater", value=0, precision=0, minimum=0, elem_id="wb-admin-controls"
            )
            repeats = gr.Number(
                label="Repeated trials per rater", value=0, precision=0, minimum=0, elem_id="wb-admin-repeats"
            )
            training = gr.Number(
                label="Training trials (not counted)", value=0, precision=0, minimum=0, elem_id="wb-admin-training"
            )
        with gr.Row():
            raters = gr.Number(
                label="Raters taking part (0 = each rates every trial)",
                value=0,
                precision=0,
                minimum=0,
                elem_id="wb-admin-raters",
            )
            per_trial = gr.Number(
                label="Raters per trial (with a rater count)",
                value=2,
                precision=0,
                minimum=1,
                elem_id="wb-admin-per-trial",
            )
        with gr.Row():
            play_reference = gr.Checkbox(label="Raters can play the reference", value=True, elem_id="wb-admin-ref")
            show_text = gr.Checkbox(label="Show the sentence text", value=False, elem_id="wb-admin-text")
            require_play = gr.Checkbox(
                label="Voting unlocks after both clips were played", value=True, elem_id="wb-admin-require-play"
            )
        summary = gr.Markdown("", elem_id="wb-admin-summary")
        create_btn = gr.Button("Create test", variant="primary", elem_id="wb-admin-create")
        with gr.Accordion("…or load a plan file (YAML)", open=False):
            plan_file = gr.File(label="Plan", file_types=[".yaml", ".yml"], type="filepath", elem_id="wb-admin-plan")
            load_btn = gr.Button("Load plan", elem_id="wb-admin-load")
        tests_table = gr.Dataframe(
            headers=TEST_COLUMNS, interactive=False, wrap=True, column_widths=["13%", "17%", "9%", "47%", "7%", "7%"]
        )
        with gr.Row():
            admin_test = gr.Dropdown(label="Test to manage", choices=[], scale=3, elem_id="wb-admin-test")
            open_btn = gr.Button("Open (render clips)", scale=1, variant="primary", elem_id="wb-admin-open")
            close_btn = gr.Button("Close", scale=1, elem_id="wb-admin-close")
            archive_btn = gr.Button("Archive", scale=1, elem_id="wb-admin-archive")
            delete_btn = gr.Button("Delete", scale=1, variant="stop", elem_id="wb-admin-delete")
        invite = gr.Textbox(
            label="Invite link for raters (copy and send)",
            interactive=False,
            buttons=["copy"],
            elem_id="wb-admin-invite",
        )
        admin_msg = gr.Markdown("", elem_id="wb-admin-msg")

    fields: list[Any] = [
        title,
        question,
        checkpoints,
        references,
        sentences,
        presets,
        takes,
        controls,
        repeats,
        training,
        raters,
        per_trial,
        play_reference,
        show_text,
        require_play,
    ]
    outs = [admin_msg, tests_table, admin_test, rater_test, invite]
    demo.load(
        b(admin_load, ctx),
        None,
        [admin_box, checkpoints, references, sentences, presets, tests_table, admin_test, invite, summary],
        api_visibility="private",
    )
    gr.on(
        [f.change for f in fields], b(preview, ctx), fields, summary, api_visibility="private", show_progress="hidden"
    )
    create_btn.click(b(create_test, ctx), fields, outs, api_visibility="private")
    load_btn.click(b(load_plan_file, ctx), [plan_file], outs, api_visibility="private")
    open_btn.click(
        b(open_test, ctx),
        [admin_test],
        outs,
        api_visibility="private",
        concurrency_id=RENDER_GROUP,
        concurrency_limit=RENDER_LIMIT,
    )
    close_btn.click(b(close_test, ctx), [admin_test], outs, api_visibility="private")
    archive_btn.click(b(archive_test, ctx), [admin_test], outs, api_visibility="private")
    delete_btn.click(b(delete_test, ctx), [admin_test], outs, api_visibility="private")
    admin_test.change(b(show_invite, ctx), [admin_test], [invite], api_visibility="private")
