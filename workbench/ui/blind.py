"""Blind A/B tab, rater page: raters answer anonymous trials one at a time.

Only wiring: :func:`build` lays out the page and returns its components by name
(:class:`RaterView`), :func:`wire` connects them; handlers return ``{component: value}``.
The logic lives in :mod:`workbench.abtest` (plans, schedules, sessions,
served audio) and :mod:`workbench.votes` (the CSV); the admin panel is in
:mod:`.blind_admin`, the player's script and style in :mod:`.blind_assets`, the route
that delivers clips in :mod:`.blind_files`. What reaches the browser is anonymous: the
question, the sentence text and the reference when the plan allows them, two clip URLs
with random names and fresh content per trial (the same for a control, a repeat or a
training trial as for any other), a random per-trial token, progress counts and the
test's title. The rater's :class:`~workbench.abtest.RaterSession` (which knows the key)
stays in ``gr.State`` on the server. Every handler is private (``api_visibility="private"``) and
checks its caller itself: admin handlers call :func:`require_admin`; rater handlers
check that the session belongs to the logged-in user.

Queues: votes and player events skip the queue (a few milliseconds each), trial loading
(which may render) has its own concurrency group and pre-rendering a test uses the app's
single render slot, so a long render never delays a vote.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gradio as gr

from ..abtest import RaterSession, ShownTrial
from ..catalog import reference_audio_path
from ..errors import VoteError, WorkbenchError
from ..render import RenderRequest
from ..services import Services
from ..votes import REASONS, BadVote, check_name
from .blind_assets import PLAYER_HTML, PLAYER_JS, SLOT_TEMPLATE, STYLE, slot_js
from .common import AppContext, bind, get_renderer, role_of, show_error, username

PlayerEvent = Literal["play", "pause", "stop"]
log = logging.getLogger(__name__)

#: queue groups (votes and player events bypass the queue altogether, see :func:`wire`):
#: page loads, trial loading (may render a missing clip) and pre-rendering a test each
#: have their own slots, so none waits behind another
LIGHT_GROUP, LIGHT_LIMIT = "blind-light", 16
TRIAL_GROUP, TRIAL_LIMIT = "blind-trial", 4
RENDER_GROUP, RENDER_LIMIT = "render", 1

CHOICE_LABELS = {"A": "A is better", "B": "B is better", "none": "No preference"}


# ---------------------------------------------------------------------------- services


def services(ctx: AppContext) -> Services:
    """The app's services (votes, plans, served audio, renderer): ``ctx.services``."""
    return ctx.services


def _clip_path(ctx: AppContext, checkpoint: str, reference: str, sentence: str, preset: str, take: int) -> Path:
    req = RenderRequest(checkpoint=checkpoint, reference=reference, sentence=sentence, enhancement=preset, take=take)
    return get_renderer(ctx).render(req).path


def _reference_path(ctx: AppContext, reference: str) -> Path | None:
    return reference_audio_path(ctx.catalog.reference(reference))


def _sentence_text(ctx: AppContext, sentence: str) -> str:
    return ctx.catalog.sentence(sentence).text


class _Errors:
    """``with _Errors():`` turns workbench errors into a ``gr.Error`` with the message (admins)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, gr.Error):
            return False
        raise show_error(exc) from None


RATER_TROUBLE = "Something went wrong on the server, so this trial cannot go on; the details are in the server log."
VOTE_NOT_SAVED = (
    "Your vote was NOT saved: the server could not write it to disk. Your earlier votes are safe; "
    "please try the same vote again in a moment."
)


class _RaterErrors(_Errors):
    """Like :class:`_Errors`, but only :class:`BadVote` messages reach the rater verbatim.

    Other errors (a clip that fails to render, a damaged file) could name a checkpoint
    or a path: they are logged and the rater gets a neutral message.
    """

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, gr.Error):
            return False
        if isinstance(exc, BadVote):
            raise gr.Error(str(exc)) from None
        if isinstance(exc, VoteError):  # storage trouble (disk full, read-only): the trial can be retried
            log.error("blind test: vote not saved: %s", exc)
            raise gr.Error(VOTE_NOT_SAVED) from None
        log.error("blind test: %s: %s", type(exc).__name__, exc, exc_info=not isinstance(exc, WorkbenchError))
        raise gr.Error(RATER_TROUBLE) from None


# ---------------------------------------------------------------------------- identity


def _rater(ctx: AppContext, typed: str | None, request: gr.Request | None) -> str:
    """The rater's name: the login when login is on, else the typed name."""
    if ctx.auth_enabled:
        role_of(ctx, request)  # refuses unknown callers
        name = username(ctx, request)
        assert name is not None  # role_of refused callers without a login
        return name
    try:
        return check_name(typed or "", "your name")
    except VoteError:
        raise gr.Error("Type your name first (it goes into the results with your votes).") from None


def _own(ctx: AppContext, session: RaterSession | None, request: gr.Request | None) -> RaterSession:
    if session is None:
        raise gr.Error("Pick a test and press Start first.")
    if ctx.auth_enabled:
        role_of(ctx, request)
        if username(ctx, request) != session.rater:
            raise gr.Error("This page belongs to another login; reload it.")
    return session


def _vote_role(ctx: AppContext, request: gr.Request | None) -> str:
    """``admin`` for an admin logged in (their votes are labelled); else ``rater``.

    Without login everyone who types a name is counted as a rater: the one local user
    is an admin for access, but the names typed on a shared machine are raters'.
    """
    return "admin" if ctx.auth_enabled and role_of(ctx, request) == "admin" else "rater"


# ---------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class RaterView:
    """The rater page's components by name: :func:`build` makes them, :func:`wire` connects them."""

    session: gr.State  # the rater's RaterSession (knows the key; never sent to the browser)
    saved_name: gr.BrowserState  # the typed name, kept in the browser (no login)
    picker: gr.Row
    name: gr.Textbox
    test: gr.Dropdown
    refresh: gr.Button
    start: gr.Button
    who: gr.Markdown
    intro_box: gr.Column
    intro_md: gr.Markdown
    begin: gr.Button
    status: gr.Markdown
    change: gr.Button
    trial_box: gr.Column
    progress: gr.HTML
    question: gr.HTML
    text: gr.Markdown
    audio_a: gr.HTML
    audio_b: gr.HTML
    ref: gr.HTML
    gate: gr.Markdown
    reasons: gr.CheckboxGroup
    comment: gr.Textbox
    vote_a: gr.Button
    vote_none: gr.Button
    vote_b: gr.Button
    token: gr.Textbox
    done_box: gr.Column
    done_md: gr.Markdown

    @property
    def gate_outputs(self) -> list[Any]:
        """The three vote buttons and the line above them (:func:`_gate`)."""
        return [self.vote_a, self.vote_none, self.vote_b, self.gate]

    @property
    def screen(self) -> list[Any]:
        """Everything one trial (or the thank-you screen) sets (:func:`_screen`)."""
        return [
            self.picker,
            self.trial_box,
            self.done_box,
            self.done_md,
            self.intro_box,
            self.intro_md,
            self.progress,
            self.question,
            self.text,
            self.audio_a,
            self.audio_b,
            self.ref,
            self.token,
            *self.gate_outputs,
            self.change,
            self.reasons,
            self.comment,
            self.test,
        ]


#: the Column around the tab (rater page and admin panel); the player's style is scoped to it
ROOT_ID = "wb-blind"


def build() -> RaterView:
    """Lay out the rater page inside the current column (nothing secret in it; nothing connected yet)."""
    gr.HTML("", head=STYLE, js_on_load=PLAYER_JS, container=False, padding=False, elem_id="wb-style")
    session = gr.State(None, delete_callback=lambda s: s.close() if s is not None else None)
    saved_name = gr.BrowserState("", storage_key="wb-rater-name")
    with gr.Row(elem_id="wb-picker") as picker:
        name = gr.Textbox(label="Your name", max_lines=1, visible=False, scale=2, max_length=64, elem_id="wb-name")
        test = gr.Dropdown(label="Test to rate", choices=[], scale=3, elem_id="wb-test")
        refresh = gr.Button("↻", scale=0, min_width=48, size="sm", elem_id="wb-refresh")
        start_btn = gr.Button("Start", variant="primary", scale=0, min_width=120, elem_id="wb-start")
    who = gr.Markdown("", elem_classes="wb-muted")
    with gr.Column(visible=False, elem_id="wb-instructions") as intro_box:
        intro_md = gr.Markdown("", elem_id="wb-instructions-text")
        begin_btn = gr.Button("Begin", variant="primary", size="lg", elem_id="wb-begin")
    # above the trial: the page scrolls here when the next trial comes, so "Saved" is in view (phones too)
    with gr.Row(elem_id="wb-after", equal_height=True):
        status = gr.Markdown("", elem_classes="wb-status", elem_id="wb-status")
        change_btn = gr.Button(
            "↩ Change my previous vote",
            visible=False,
            size="sm",
            variant="secondary",
            elem_id="wb-change",
            scale=0,
            min_width=220,
        )
    with gr.Column(visible=False, elem_id="wb-trial") as trial_box:
        progress = gr.HTML("", elem_id="wb-progress")
        question = gr.HTML("", elem_id="wb-question")
        text = gr.Markdown("", visible=False, elem_id="wb-text")
        holder: dict[str, Any] = {
            "html_template": SLOT_TEMPLATE,
            "container": False,
            "padding": False,
            "elem_classes": "wb-hidden",
        }
        audio_a = gr.HTML("", elem_id="wb-audio-a", js_on_load=slot_js("A"), **holder)
        audio_b = gr.HTML("", elem_id="wb-audio-b", js_on_load=slot_js("B"), **holder)
        ref = gr.HTML("", elem_id="wb-ref", visible=False, js_on_load=None, **holder)
        gr.HTML(PLAYER_HTML, elem_id="wb-player", container=False, padding=False, js_on_load=None)
        gate = gr.Markdown(GATE_LOCKED, elem_classes="wb-gate", elem_id="wb-gate")
        # reasons beside the comment (stacked on a phone), both above the vote buttons: tick, then vote
        with gr.Row(elem_id="wb-why", equal_height=True):
            reasons = gr.CheckboxGroup(
                list(REASONS),
                label="What made the difference? (optional, tick before voting)",
                elem_id="wb-reasons",
                scale=3,
            )
            comment = gr.Textbox(
                label="Comment (optional)",
                placeholder="e.g. 'A stresses the wrong word'",
                lines=1,
                max_lines=4,
                max_length=2000,
                elem_id="wb-comment",
                scale=2,
            )
        with gr.Row(elem_id="wb-votes"):
            vote_a = gr.Button("A is better", elem_id="wb-vote-a", interactive=False, size="lg")
            vote_none = gr.Button("No preference", elem_id="wb-vote-none", interactive=False, size="lg")
            vote_b = gr.Button("B is better", elem_id="wb-vote-b", interactive=False, size="lg")
        token = gr.Textbox(visible=False, elem_id="wb-token")
    with gr.Column(visible=False, elem_id="wb-done") as done_box:
        done_md = gr.Markdown("", elem_id="wb-done-text")
    return RaterView(
        session=session,
        saved_name=saved_name,
        picker=picker,
        name=name,
        test=test,
        refresh=refresh,
        start=start_btn,
        who=who,
        intro_box=intro_box,
        intro_md=intro_md,
        begin=begin_btn,
        status=status,
        change=change_btn,
        trial_box=trial_box,
        progress=progress,
        question=question,
        text=text,
        audio_a=audio_a,
        audio_b=audio_b,
        ref=ref,
        gate=gate,
        reasons=reasons,
        comment=comment,
        vote_a=vote_a,
        vote_none=vote_none,
        vote_b=vote_b,
        token=token,
        done_box=done_box,
        done_md=done_md,
    )


# ---------------------------------------------------------------------------- what a trial shows


def _progress_html(shown: ShownTrial, title: str) -> str:
    pct = 100.0 * shown.done / max(shown.total, 1)
    if shown.changing:
        label = (
            f"Changing your answer to trial <b>{shown.number}</b> / {shown.total} "
            f"(you chose: {html.escape(CHOICE_LABELS.get(shown.previous_choice, shown.previous_choice))})"
        )
    else:
        label = f"Trial <b>{shown.number}</b> / {shown.total}"
    return (
        f'<div class="wb-progress"><div class="wb-progress-row"><span class="wb-progress-title">'
        f"{html.escape(title)}</span><span>{label}</span></div>"
        f'<div class="wb-bar" role="progressbar" aria-valuenow="{shown.done}" aria-valuemax="{shown.total}">'
        f'<div style="width:{pct:.1f}%"></div></div></div>'
    )


GATE_LOCKED = "▶ Play **both A and B** to unlock voting."
GATE_OPEN = "Voting is open: which one answers the question better?"


def _gate(v: RaterView, enabled: bool) -> dict[Any, Any]:
    """The vote buttons on or off, and the line above them saying why."""
    buttons = {b: gr.update(interactive=enabled) for b in (v.vote_a, v.vote_none, v.vote_b)}
    return {**buttons, v.gate: GATE_OPEN if enabled else GATE_LOCKED}


def instructions(plan) -> str:
    """The short instructions shown before a rater's first trial (Markdown)."""
    ref = (
        "- **Reference** plays the voice the clips should sound like (key <kbd>R</kbd>).\n"
        if plan.play_reference
        else ""
    )
    text = "- The sentence being spoken is shown above the players.\n" if plan.show_text else ""
    return (
        f"## Before you start\n\n"
        f"Each trial plays two versions of the same sentence, **A** and **B**. For every trial, answer:\n\n"
        f"> **{html.escape(plan.question)}**\n\n"
        f"- Press **A** and **B** to listen (keys <kbd>A</kbd> and <kbd>B</kbd>). Switching keeps the position, "
        f"so you can compare the same word; **Loop** plays it over and over.\n{ref}{text}"
        f"- Voting unlocks once you have played both. Then choose **A is better**, **B is better** or "
        f"**No preference** (keys <kbd>1</kbd>, <kbd>2</kbd>, <kbd>0</kbd>). Tick what made the difference first "
        f"if you like.\n"
        f"- Some pairs may sound alike or come back later: answer each one on its own.\n\n"
        f"There are **{plan.per_rater}** trials. Use headphones in a quiet place if you can."
    )


def _screen(
    ctx: AppContext, v: RaterView, session: RaterSession, shown: ShownTrial | None, *, intro: bool = False
) -> dict[Any, Any]:
    """Updates for :attr:`RaterView.screen`: one trial (behind the instructions when ``intro``), or the thanks."""
    plan = session.plan
    cleared = {v.reasons: [], v.comment: ""}  # a new trial starts without the last one's tags and comment
    if shown is None:
        done, total = session.progress()
        thanks = (
            f"## Thank you!\n\nYou answered all **{total}** trials of *{html.escape(plan.title)}*. "
            "Your votes are saved; you can close this page."
        )
        return {
            v.picker: gr.update(visible=True),
            v.trial_box: gr.update(visible=False),
            v.done_box: gr.update(visible=True),
            v.done_md: thanks,
            v.intro_box: gr.update(visible=False),
            v.progress: "",
            v.text: "",
            v.audio_a: "",
            v.audio_b: "",
            v.ref: gr.update(visible=False, value=""),
            v.token: "",
            **_gate(v, False),
            v.change: gr.update(visible=done > 0),
            **cleared,
            v.test: gr.update(choices=_open_tests(ctx, session.rater), value=plan.test_id),
        }
    out = {
        v.picker: gr.update(visible=False),  # the test picker: back when the test is done (or after a reload)
        v.trial_box: gr.update(visible=not intro),
        v.done_box: gr.update(visible=False),
        v.done_md: "",
        v.intro_box: gr.update(visible=intro),
        v.progress: _progress_html(shown, plan.title),
        v.question: f'<div id="wb-question-text">{html.escape(plan.question)}</div>',
        v.text: gr.update(value=f"“{html.escape(shown.text)}”" if shown.text else "", visible=bool(shown.text)),
        v.audio_a: shown.url_a,
        v.audio_b: shown.url_b,
        v.ref: gr.update(visible=bool(shown.url_ref), value=shown.url_ref),
        v.token: shown.token,
        **_gate(v, not shown.require_play),
        v.change: gr.update(visible=shown.done > 0 and not shown.changing),
        **cleared,
    }
    if intro:
        out[v.intro_md] = instructions(plan)
    return out


# ---------------------------------------------------------------------------- rater handlers


def _open_tests(ctx: AppContext, rater: str | None) -> list[tuple[str, str]]:
    svc = services(ctx)
    out = []
    for plan in svc.plans.list(status="open"):
        label = plan.title
        if rater:
            done = len(svc.votes.effective_for(rater, plan.test_id))
            label += f"  ({min(done, plan.per_rater)} / {plan.per_rater} done)"
        out.append((label, plan.test_id))
    return out


def _tests_update(ctx: AppContext, rater: str | None, wanted: str | None = None):
    """The test picker's choices; the test of an invite link (``?test=``), or the only open one, comes preselected."""
    choices = _open_tests(ctx, rater)
    ids = [c[1] for c in choices]
    value = wanted if wanted in ids else (ids[0] if len(ids) == 1 else None)
    return gr.update(choices=choices, value=value)


def _invited(request: gr.Request | None) -> str | None:
    """The test id of an invite link (``?test=ab-...``), if the page was opened with one."""
    params = dict(getattr(request, "query_params", None) or {})
    return str(params.get("test", "")) or None


def rater_load(ctx: AppContext, v: RaterView, saved_name: str | None, request: gr.Request):
    """Page load: who is rating, and the open tests."""
    with _RaterErrors():
        if ctx.auth_enabled:
            name = username(ctx, request)
            role_of(ctx, request)
            return {
                v.name: gr.update(visible=False),
                v.who: f"Rating as **{html.escape(name or '')}**.",
                v.test: _tests_update(ctx, name, _invited(request)),
            }
        name = (saved_name or "").strip()
        return {
            v.name: gr.update(visible=True, value=name),
            v.who: "Type your name, pick a test and press **Start**.",
            v.test: _tests_update(ctx, name, _invited(request)),
        }


def refresh_tests(ctx: AppContext, typed: str | None, request: gr.Request):
    """Refill the rater's list of open tests (the typed name counts only without login)."""
    with _RaterErrors():
        name = username(ctx, request) if ctx.auth_enabled else (typed or "").strip()
        if ctx.auth_enabled:
            role_of(ctx, request)
        return _tests_update(ctx, name)


def start(
    ctx: AppContext,
    v: RaterView,
    old: RaterSession | None,
    typed: str | None,
    test_id: str | None,
    request: gr.Request,
):
    """Start (or resume) a test: the instructions before a first trial, else the first trial without a vote."""
    with _RaterErrors():
        rater = _rater(ctx, typed, request)
        if not test_id:
            raise gr.Error("Pick a test from the list first.")
        svc = services(ctx)
        plan = svc.plans.get(test_id)
        if old is not None:
            old.close()
        session = RaterSession(
            plan=plan,
            rater=rater,
            votes=svc.votes,
            plans=svc.plans,
            clip_path=bind(_clip_path, ctx),
            served=svc.served,
            reference_path=bind(_reference_path, ctx),
            sentence_text=bind(_sentence_text, ctx),
            role=_vote_role(ctx, request),
        )
        shown = session.show_next()
        intro = shown is not None and shown.done == 0
        return {
            v.session: session,
            **_screen(ctx, v, session, shown, intro=intro),
            v.status: "Welcome back: continuing where you left off." if shown and shown.done else "",
            v.saved_name: rater,
        }


def begin(ctx: AppContext, v: RaterView, session: RaterSession | None, request: gr.Request):
    """Leave the instructions for the first trial (already loaded behind them)."""
    with _RaterErrors():
        _own(ctx, session, request)
        return {v.intro_box: gr.update(visible=False), v.trial_box: gr.update(visible=True)}


def player_event(
    ctx: AppContext,
    v: RaterView,
    which: str,
    event: PlayerEvent,
    session: RaterSession | None,
    request: gr.Request,
):
    """A slot started, paused or ended playing; unlock voting once both were played (and delivered)."""
    if session is None or session.current is None:
        return gr.skip()
    with _RaterErrors():
        _own(ctx, session, request)
        unlocked = session.played(which, event)
        return _gate(v, unlocked) if event == "play" else gr.skip()


def vote(
    ctx: AppContext,
    v: RaterView,
    choice: str,
    session: RaterSession | None,
    token: str | None,
    reasons: list[str] | None,
    comment: str | None,
    request: gr.Request,
):
    """Save the vote (durably) before saying so; the next trial loads in a chained step."""
    with _RaterErrors():
        session = _own(ctx, session, request)
        number = session.current.position + 1 if session.current is not None else 0
        session.vote(token or "", choice, reasons or [], comment or "")
        return {
            v.status: f"✓ Saved: {CHOICE_LABELS[choice]} on trial {number}.",
            **_gate(v, False),
            v.gate: "Loading the next trial…",
            v.token: "",  # until the next trial brings its own
        }


def next_trial(ctx: AppContext, v: RaterView, session: RaterSession | None, request: gr.Request):
    """Show the rater's next unanswered trial."""
    with _RaterErrors():
        session = _own(ctx, session, request)
        return _screen(ctx, v, session, session.show_next())


def change_previous(ctx: AppContext, v: RaterView, session: RaterSession | None, request: gr.Request):
    """Show the previous trial again so the rater can change that vote."""
    with _RaterErrors():
        session = _own(ctx, session, request)
        shown = session.show_previous()
        return {
            **_screen(ctx, v, session, shown),
            v.status: "Listen again and vote; your new answer replaces the old one.",
        }


# ---------------------------------------------------------------------------- events


def wire(ctx: AppContext, demo: gr.Blocks, v: RaterView) -> None:
    """Connect the rater page's events to its handlers (all private; each checks its caller)."""
    b = bind
    # Votes and player events take a few milliseconds: they skip the queue (one plain
    # request each, no event stream), so they never wait behind anything queued.
    direct: dict[str, Any] = {"api_visibility": "private", "queue": False}
    light: dict[str, Any] = {
        "api_visibility": "private",
        "concurrency_id": LIGHT_GROUP,
        "concurrency_limit": LIGHT_LIMIT,
    }
    trial: dict[str, Any] = {
        "api_visibility": "private",
        "concurrency_id": TRIAL_GROUP,
        "concurrency_limit": TRIAL_LIMIT,
    }
    screen = v.screen
    demo.load(b(rater_load, ctx, v), [v.saved_name], [v.name, v.who, v.test], **light)
    v.refresh.click(b(refresh_tests, ctx), [v.name], [v.test], **light)
    v.start.click(b(start, ctx, v), [v.session, v.name, v.test], [v.session, *screen, v.status, v.saved_name], **trial)
    v.begin.click(b(begin, ctx, v), [v.session], [v.intro_box, v.trial_box], **direct)
    for comp, which in ((v.audio_a, "A"), (v.audio_b, "B")):
        for event, listener in (("play", comp.play), ("pause", comp.pause), ("stop", comp.stop)):
            listener(
                b(player_event, ctx, v, which, event), [v.session], v.gate_outputs, show_progress="hidden", **direct
            )
    for btn, choice in ((v.vote_a, "A"), (v.vote_b, "B"), (v.vote_none, "none")):
        btn.click(
            b(vote, ctx, v, choice),
            [v.session, v.token, v.reasons, v.comment],
            [v.status, *v.gate_outputs, v.token],
            show_progress="minimal",
            **direct,
        ).success(b(next_trial, ctx, v), [v.session], screen, show_progress="hidden", **trial)
    v.change.click(b(change_previous, ctx, v), [v.session], [*screen, v.status], **trial)


def routes(ctx: AppContext) -> list:
    """Routes the blind test adds to the app (the clip delivery route, see :mod:`.blind_files`)."""
    from .blind_files import routes as clip_routes

    return clip_routes(ctx)
