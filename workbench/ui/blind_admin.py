"""The admin panel of the Blind A/B tab: create, open, close, archive and delete tests.

The form starts filled with sensible defaults (every checkpoint, every reference, up
to 8 sentences, preset ``none``, the reference playable), so a test is a title and
one click away; the design summary below the form (the same as ``python -m workbench
plan``) follows every change before the test is created. Each test has an invite link
(``?tab=blind&test=<id>``) that opens the rater page with the test picked. Archiving
hides a test from raters and lists; deleting moves its plan aside; votes always stay
in the CSV.

Only wiring: :func:`build` lays out the panel and returns its components by name
(:class:`AdminView`), :func:`wire` connects them; handlers return ``{component: value}``.
The form's values arrive as one :class:`TestForm`, which turns them into the
:class:`~workbench.abtest.PlanSpec` that :mod:`workbench.abtest` checks and plans.

Every handler checks the caller is an admin (:func:`require_admin`); raters' pages
never get the panel's contents.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
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
    median_durations,
    plan_requests,
    summary_lines,
)
from ..abtest import load_plan_file as build_plan_file
from ..catalog import Catalog
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


# --------------------------------------------------------------------------- the form


@dataclass(frozen=True)
class TestForm:
    """The create form's values as Gradio sends them: numbers as floats, an empty picker as None.

    The one list of the form's fields: :class:`AdminView` has a component of the same
    name for each, and :meth:`spec` turns the values into a :class:`PlanSpec`.
    """

    __test__ = False  # not a pytest test class

    title: str | None = DEFAULT_TITLE
    question: str | None = DEFAULT_QUESTION
    checkpoints: list[str] | None = None
    references: list[str] | None = None
    sentences: list[str] | None = None
    presets: list[str] | None = None  # one: both sides; two or more (one checkpoint): compared
    takes: float | None = 1  # renders (seeds) per clip
    controls: float | None = 0  # identical-pair trials per rater
    repeats: float | None = 0  # trials played again per rater
    training: float | None = 0  # practice trials, not counted
    raters: float | None = 0  # 0: every rater rates every trial
    raters_per_trial: float | None = 2  # with a rater count: raters per trial, at least
    play_reference: bool = True
    show_text: bool = False
    require_play: bool = True
    exclude_flagged: bool = False  # at Open, a take the quality checks flag plays a clean new take

    @classmethod
    def defaults(cls, catalog: Catalog) -> TestForm:
        """What a new form holds: every checkpoint and reference, the first sentences, preset ``none``."""
        return cls(
            checkpoints=list(catalog.checkpoints),
            references=list(catalog.references),
            sentences=list(catalog.sentences)[:DEFAULT_SENTENCES],
            presets=["none"] if "none" in catalog.enhancements else [],
        )

    def spec(self, seed: int | None = None) -> PlanSpec:
        """The :class:`PlanSpec` these values ask for; raises :class:`PlanError` naming the fields."""
        try:
            return PlanSpec(
                title=self.title or "",
                question=self.question or DEFAULT_QUESTION,
                checkpoints=self.checkpoints or [],
                references=self.references or [],
                sentences=self.sentences or [],
                presets=self.presets or ["none"],
                takes=int(self.takes or 1),
                controls=int(self.controls or 0),
                repeats=int(self.repeats or 0),
                training=int(self.training or 0),
                raters=int(self.raters) if self.raters else None,
                raters_per_trial=int(self.raters_per_trial or 2),
                play_reference=bool(self.play_reference),
                show_text=bool(self.show_text),
                require_play=bool(self.require_play),
                exclude_flagged=bool(self.exclude_flagged),
                seed=seed,
            )
        except ValidationError as e:
            raise form_problems(e) from None


FORM_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TestForm))


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class AdminView:
    """The admin panel's components by name: :func:`build` makes them, :func:`wire` connects them.

    The form's components carry the names of :class:`TestForm`'s fields.
    """

    box: gr.Accordion  # hidden until the load handler shows it to an admin
    title: gr.Textbox
    question: gr.Textbox
    checkpoints: gr.Dropdown
    references: gr.Dropdown
    sentences: gr.Dropdown
    presets: gr.Dropdown
    takes: gr.Number
    controls: gr.Number
    repeats: gr.Number
    training: gr.Number
    raters: gr.Number
    raters_per_trial: gr.Number
    play_reference: gr.Checkbox
    show_text: gr.Checkbox
    require_play: gr.Checkbox
    exclude_flagged: gr.Checkbox
    summary: gr.Markdown
    create: gr.Button
    plan_file: gr.File
    load: gr.Button
    tests_table: gr.Dataframe
    test: gr.Dropdown  # the test to manage
    open: gr.Button
    close: gr.Button
    archive: gr.Button
    delete: gr.Button
    invite: gr.Textbox
    message: gr.Markdown
    rater_test: gr.Dropdown  # the rater page's test picker: its list follows tests opening and closing

    @property
    def form(self) -> set[Any]:
        """The form's components, as Gradio inputs that reach a handler as one dict (see :meth:`read_form`)."""
        return {getattr(self, name) for name in FORM_FIELDS}

    def read_form(self, values: dict[Any, Any]) -> TestForm:
        """The :class:`TestForm` in ``values`` (component -> value, as Gradio passes :attr:`form`)."""
        return TestForm(**{name: values[getattr(self, name)] for name in FORM_FIELDS})

    @property
    def outputs(self) -> list[Any]:
        """What the create / load / open / close / archive / delete handlers set (:func:`_refreshed`)."""
        return [self.message, self.tests_table, self.test, self.rater_test, self.invite]


def build(rater_test: gr.Dropdown) -> AdminView:
    """Lay out the admin panel (hidden until :func:`admin_load` shows it to an admin); nothing is connected yet."""
    d = TestForm()  # the form's starting values
    with gr.Accordion("Admin: blind tests", open=False, visible=False) as box:
        gr.Markdown(
            "Pick what to compare (every pair is played on every reference, sentence and take; each rater gets "
            "their own order and sides), then **Create test** and **Open** it. Compare presets by picking one "
            "checkpoint and two or more presets. The design below follows the form."
        )
        with gr.Row():
            title = gr.Textbox(
                label="Title raters see (no checkpoint names)",
                value=d.title,
                max_lines=1,
                max_length=100,
                elem_id="wb-admin-title",
            )
            question = gr.Textbox(
                label="Question raters answer",
                value=d.question,
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
            takes = gr.Number(
                label="Takes per clip (seeds)", value=d.takes, precision=0, minimum=1, elem_id="wb-admin-takes"
            )
            controls = gr.Number(
                label="Identical-pair controls per rater",
                value=d.controls,
                precision=0,
                minimum=0,
                elem_id="wb-admin-controls",
            )
            repeats = gr.Number(
                label="Repeated trials per rater", value=d.repeats, precision=0, minimum=0, elem_id="wb-admin-repeats"
            )
            training = gr.Number(
                label="Training trials (not counted)",
                value=d.training,
                precision=0,
                minimum=0,
                elem_id="wb-admin-training",
            )
        with gr.Row():
            raters = gr.Number(
                label="Raters taking part (0 = each rates every trial)",
                value=d.raters,
                precision=0,
                minimum=0,
                elem_id="wb-admin-raters",
            )
            raters_per_trial = gr.Number(
                label="Raters per trial (with a rater count)",
                value=d.raters_per_trial,
                precision=0,
                minimum=1,
                elem_id="wb-admin-per-trial",
            )
        with gr.Row(elem_id="wb-admin-options"):
            play_reference = gr.Checkbox(
                label="Raters can play the reference", value=d.play_reference, elem_id="wb-admin-ref"
            )
            show_text = gr.Checkbox(label="Show the sentence text", value=d.show_text, elem_id="wb-admin-text")
            require_play = gr.Checkbox(
                label="Voting unlocks after both clips were played",
                value=d.require_play,
                elem_id="wb-admin-require-play",
            )
            exclude_flagged = gr.Checkbox(
                label="At Open, replace takes the quality checks flag",
                value=d.exclude_flagged,
                elem_id="wb-admin-exclude-flagged",
            )
        summary = gr.Markdown("", elem_id="wb-admin-summary")
        create = gr.Button("Create test", variant="primary", elem_id="wb-admin-create")
        with gr.Accordion("…or load a plan file (YAML)", open=False):
            plan_file = gr.File(label="Plan", file_types=[".yaml", ".yml"], type="filepath", elem_id="wb-admin-plan")
            load = gr.Button("Load plan", elem_id="wb-admin-load")
        tests_table = gr.Dataframe(
            headers=TEST_COLUMNS, interactive=False, wrap=True, column_widths=["13%", "17%", "9%", "47%", "7%", "7%"]
        )
        with gr.Row():
            test = gr.Dropdown(label="Test to manage", choices=[], scale=3, elem_id="wb-admin-test")
            open_btn = gr.Button("Open (render clips)", scale=1, variant="primary", elem_id="wb-admin-open")
            close = gr.Button("Close", scale=1, elem_id="wb-admin-close")
            archive = gr.Button("Archive", scale=1, elem_id="wb-admin-archive")
            delete = gr.Button("Delete", scale=1, variant="stop", elem_id="wb-admin-delete")
        invite = gr.Textbox(
            label="Invite link for raters (copy and send)",
            interactive=False,
            buttons=["copy"],
            elem_id="wb-admin-invite",
        )
        message = gr.Markdown("", elem_id="wb-admin-msg")
    return AdminView(
        box=box,
        title=title,
        question=question,
        checkpoints=checkpoints,
        references=references,
        sentences=sentences,
        presets=presets,
        takes=takes,
        controls=controls,
        repeats=repeats,
        training=training,
        raters=raters,
        raters_per_trial=raters_per_trial,
        play_reference=play_reference,
        show_text=show_text,
        require_play=require_play,
        exclude_flagged=exclude_flagged,
        summary=summary,
        create=create,
        plan_file=plan_file,
        load=load,
        tests_table=tests_table,
        test=test,
        open=open_btn,
        close=close,
        archive=archive,
        delete=delete,
        invite=invite,
        message=message,
        rater_test=rater_test,
    )


# --------------------------------------------------------------------------- helpers


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


def _refreshed(ctx: AppContext, v: AdminView, message: str, request: gr.Request, pick: str | None = None) -> dict:
    """Updates for :attr:`AdminView.outputs`: the message, the tests (``pick`` selected) and both test pickers."""
    choices = _choices(ctx)
    ids = [c[1] for c in choices]
    value = pick if pick in ids else (ids[0] if ids else None)
    return {
        v.message: message,
        v.tests_table: _tests_table(ctx),
        v.test: gr.update(choices=choices, value=value),
        v.rater_test: gr.update(choices=_open_tests(ctx, username(ctx, request))),
        v.invite: invite_link(request, value),
    }


def _summary_markdown(ctx: AppContext, form: TestForm) -> str:
    """The design of what ``form`` asks for, as ``python -m workbench plan`` prints it (Markdown)."""
    try:
        plan = make_plan(ctx.catalog, form.spec(seed=0))
    except PlanError as e:
        return "**Design:** fix these first:\n\n" + "\n".join(f"- {html.escape(p)}" for p in e.problems)
    lines = summary_lines({**design_summary(plan), "test_id": None})
    return "**Design** (as `python -m workbench plan` prints it):\n\n" + "\n".join(
        f"- {html.escape(line)}" for line in lines[1:]
    )


def _save_new(ctx: AppContext, plan: TestPlan) -> str:
    problems = check_renderable(plan, get_renderer(ctx))
    if problems:
        raise CatalogError(problems)
    services(ctx).plans.save(plan)
    return f"Created **{html.escape(plan.title)}** (`{plan.test_id}`, draft): {plan.describe()}. Open it to start."


def _durations(plan: TestPlan, cells: list[tuple], clips: list) -> str:
    """Median clip duration per compared item: the models' own speaking rate, which raters hear."""
    medians = median_durations(plan, cells, [getattr(c, "duration", None) for c in clips])
    if not medians:
        return ""
    parts = ", ".join(f"{html.escape(a)} {s:.1f} s" for a, s in medians.items())
    return f"Median clip duration: {parts} (each model's own speaking rate; raters hear it)."


# --------------------------------------------------------------------------- handlers


def admin_load(ctx: AppContext, v: AdminView, request: gr.Request):
    """Fill the admin panel for admins; raters get nothing (no names in their page)."""
    if ctx.users is not None and ctx.users.role(username(ctx, request)) != "admin":
        return {v.box: gr.update(visible=False)}
    with _Errors():
        cat = ctx.catalog
        choices = _choices(ctx)
        first = choices[0][1] if choices else None
        form = TestForm.defaults(cat)
        return {
            v.box: gr.update(visible=True),
            v.checkpoints: gr.update(choices=list(cat.checkpoints), value=form.checkpoints),
            v.references: gr.update(choices=list(cat.references), value=form.references),
            v.sentences: gr.update(choices=list(cat.sentences), value=form.sentences),
            v.presets: gr.update(choices=preset_offer(cat).choices, value=form.presets),  # only presets that can run
            v.tests_table: _tests_table(ctx),
            v.test: gr.update(choices=choices, value=first),
            v.invite: invite_link(request, first),
            v.summary: _summary_markdown(ctx, form),
        }


def preview(ctx: AppContext, form: TestForm, request: gr.Request) -> str:
    """The design summary of what the form holds now (nothing is stored)."""
    require_admin(ctx, request)
    return _summary_markdown(ctx, form)


def create_test(ctx: AppContext, v: AdminView, form: TestForm, request: gr.Request):
    """Create a blind test from the admin form (a draft until opened)."""
    require_admin(ctx, request)
    with _Errors():
        plan = make_plan(ctx.catalog, form.spec(), created_by=username(ctx, request) or "local")
        msg = _save_new(ctx, plan)
        return _refreshed(ctx, v, msg, request, pick=plan.test_id)


def load_plan_file(ctx: AppContext, v: AdminView, file: str | None, request: gr.Request):
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
        return _refreshed(ctx, v, msg, request, pick=plan.test_id)


def open_test(ctx: AppContext, v: AdminView, test_id: str | None, request: gr.Request, progress=gr.Progress()):
    """Render every clip the test needs (so raters never wait), then open it."""
    require_admin(ctx, request)
    with _Errors():
        svc = services(ctx)
        plan = svc.plans.get(test_id or "")
        cells = plan_requests(plan)
        reqs = [RenderRequest(checkpoint=c, reference=r, sentence=s, enhancement=p, take=k) for c, r, s, p, k in cells]
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
            f"{_durations(plan, cells, results)}{swapped}"
        )
        return _refreshed(ctx, v, msg, request, pick=plan.test_id)


def close_test(ctx: AppContext, v: AdminView, test_id: str | None, request: gr.Request):
    """Close a test: no more votes; its results stay."""
    return _set_status(ctx, v, test_id, "closed", "is closed: raters can no longer vote on it.", request)


def archive_test(ctx: AppContext, v: AdminView, test_id: str | None, request: gr.Request):
    """Archive a test: raters no longer see it; its votes stay in the CSV."""
    said = "is archived: raters no longer see it; its votes stay in the CSV."
    return _set_status(ctx, v, test_id, "archived", said, request)


def _set_status(ctx: AppContext, v: AdminView, test_id: str | None, status: str, said: str, request: gr.Request):
    """Give a test ``status`` and say so (``said`` follows the test's title)."""
    require_admin(ctx, request)
    with _Errors():
        plan = services(ctx).plans.set_status(test_id or "", status)
        return _refreshed(ctx, v, f"**{html.escape(plan.title)}** {said}", request, pick=plan.test_id)


def delete_test(ctx: AppContext, v: AdminView, test_id: str | None, request: gr.Request):
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
        return _refreshed(ctx, v, msg, request)


def show_invite(ctx: AppContext, test_id: str | None, request: gr.Request) -> str:
    """The invite link for a test, built from the address the admin is using."""
    require_admin(ctx, request)
    return invite_link(request, test_id)


# --------------------------------------------------------------------------- events


def with_form(v: AdminView, fn: Callable, *bound: Any) -> Callable:
    """``fn(*bound, form, request)`` as a handler of :attr:`AdminView.form`, whose values Gradio passes as one dict.

    Keeps ``fn``'s name: the guard's quotas (``guard.QUOTAS``) find a handler by it.
    """

    def handler(values: dict, request: gr.Request):
        return fn(*bound, v.read_form(values), request)

    handler.__name__ = handler.__qualname__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


def wire(ctx: AppContext, demo: gr.Blocks, v: AdminView) -> None:
    """Connect the admin panel's events to its handlers (all private, admins only)."""
    b = bind
    private: dict[str, Any] = {"api_visibility": "private"}
    outs = v.outputs
    demo.load(
        b(admin_load, ctx, v),
        None,
        [v.box, v.checkpoints, v.references, v.sentences, v.presets, v.tests_table, v.test, v.invite, v.summary],
        **private,
    )
    form = v.form
    gr.on([c.change for c in form], with_form(v, preview, ctx), form, v.summary, show_progress="hidden", **private)
    v.create.click(with_form(v, create_test, ctx, v), form, outs, **private)
    v.load.click(b(load_plan_file, ctx, v), [v.plan_file], outs, **private)
    v.open.click(
        b(open_test, ctx, v), [v.test], outs, concurrency_id=RENDER_GROUP, concurrency_limit=RENDER_LIMIT, **private
    )
    v.close.click(b(close_test, ctx, v), [v.test], outs, **private)
    v.archive.click(b(archive_test, ctx, v), [v.test], outs, **private)
    v.delete.click(b(delete_test, ctx, v), [v.test], outs, **private)
    v.test.change(b(show_invite, ctx), [v.test], [v.invite], **private)
