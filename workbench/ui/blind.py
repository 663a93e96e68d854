"""Blind A/B tab: raters answer anonymous trials one at a time; admins create and run tests.

Only wiring: the logic lives in :mod:`workbench.abtest` (plans, schedules, sessions,
served audio) and :mod:`workbench.votes` (the CSV). What reaches the browser is
anonymous: two players labelled A and B whose files have random names and fresh
content per trial, a random per-trial token, progress counts and the test's title. The
rater's :class:`~workbench.abtest.RaterSession` (which knows the key) stays in
``gr.State`` on the server. Every handler is private (``api_name=False``) and checks
its caller itself: admin handlers call :func:`require_admin`; rater handlers check
that the session belongs to the logged-in user.

Queues: votes and player events skip the queue (a few milliseconds each), trial loading
(which may render) has its own concurrency group and pre-rendering a test uses the app's
single render slot, so a long render never delays a vote.
"""

from __future__ import annotations

import html
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr
import pandas as pd

from ..abtest import (
    PlanSpec,
    PlanStore,
    RaterSession,
    ServedFiles,
    ShownTrial,
    TestPlan,
    check_renderable,
    make_plan,
    plan_requests,
    sweep_served,
)
from ..abtest import load_plan_file as build_plan_file
from ..catalog import reference_audio_path
from ..errors import CatalogError, VoteError, WorkbenchError
from ..render import RenderRequest
from ..votes import REASONS, BadVote, VoteStore, check_name
from .common import AppContext, bind, get_renderer, require_admin, role_of, show_error, username

log = logging.getLogger(__name__)

#: queue groups (votes and player events bypass the queue altogether, see :func:`build`):
#: page loads, trial loading (may render a missing clip) and pre-rendering a test each
#: have their own slots, so none waits behind another
LIGHT_GROUP, LIGHT_LIMIT = "blind-light", 16
TRIAL_GROUP, TRIAL_LIMIT = "blind-trial", 4
RENDER_GROUP, RENDER_LIMIT = "render", 1

CHOICE_LABELS = {"A": "A is better", "B": "B is better", "none": "No preference"}
TEST_COLUMNS = ["test", "title", "status", "design", "raters", "votes"]


# ---------------------------------------------------------------------------- services


@dataclass
class BlindServices:
    """The vote store, plan store and served-audio folder of one app."""

    votes: VoteStore
    plans: PlanStore
    served: ServedFiles


_services_lock = threading.Lock()


def served_dir(ctx: AppContext) -> Path:
    """Where anonymous copies of clips are written for browsers (pass to ``allowed_paths``)."""
    return Path(ctx.data_dir) / "served"


def services(ctx: AppContext) -> BlindServices:
    """The app's blind-test services, created once (opening the vote store recovers it)."""
    with _services_lock:
        svc = ctx.extras.get("blind")
        if svc is None:
            folder = served_dir(ctx)
            folder.mkdir(parents=True, exist_ok=True)
            sweep_served(folder)
            svc = BlindServices(
                votes=VoteStore(ctx.votes_path),
                plans=PlanStore(Path(ctx.data_dir) / "tests"),
                served=ServedFiles(folder),
            )
            ctx.extras["blind"] = svc
        return svc


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
        return username(ctx, request)
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


# ---------------------------------------------------------------------------- views


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
GATE_OPEN = (
    "Keys: <kbd>A</kbd> / <kbd>B</kbd> play or pause a clip · <kbd>1</kbd> A is better · "
    "<kbd>2</kbd> B is better · <kbd>0</kbd> no preference"
)


def _buttons(enabled: bool) -> tuple:
    return tuple(gr.update(interactive=enabled) for _ in range(3)) + (GATE_OPEN if enabled else GATE_LOCKED,)


def _view(ctx: AppContext, session: RaterSession, shown: ShownTrial | None) -> tuple:
    """Updates for the ``view`` outputs of :func:`build`, in order."""
    if shown is None:
        done, total = session.progress()
        tests = gr.update(choices=_open_tests(ctx, session.rater), value=session.plan.test_id)
        thanks = (
            f"## Thank you!\n\nYou answered all **{total}** trials of *{html.escape(session.plan.title)}*. "
            "Your votes are saved; you can close this page."
        )
        return (
            gr.update(visible=False),
            gr.update(visible=True),
            thanks,
            "",
            None,
            None,
            "",
            *_buttons(False),
            gr.update(visible=done > 0),
            [],
            "",
            tests,
        )
    enabled = not shown.require_play
    return (
        gr.update(visible=True),
        gr.update(visible=False),
        "",
        _progress_html(shown, session.plan.title),
        str(shown.audio_a),
        str(shown.audio_b),
        shown.token,
        *_buttons(enabled),
        gr.update(visible=shown.done > 0 and not shown.changing),
        [],
        "",
        gr.skip(),
    )


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


def _tests_update(ctx: AppContext, rater: str | None):
    """The test picker's choices; the only open test comes preselected."""
    choices = _open_tests(ctx, rater)
    return gr.update(choices=choices, value=choices[0][1] if len(choices) == 1 else None)


def rater_load(ctx: AppContext, saved_name: str | None, request: gr.Request):
    """Page load: who is rating, and the open tests."""
    with _RaterErrors():
        if ctx.auth_enabled:
            name = username(ctx, request)
            role_of(ctx, request)
            who = f"Rating as **{html.escape(name)}**."
            return gr.update(visible=False), who, _tests_update(ctx, name)
        name = (saved_name or "").strip()
        who = "Type your name, pick a test and press **Start**."
        return gr.update(visible=True, value=name), who, _tests_update(ctx, name)


def refresh_tests(ctx: AppContext, typed: str | None, request: gr.Request):
    with _RaterErrors():
        name = username(ctx, request) if ctx.auth_enabled else (typed or "").strip()
        if ctx.auth_enabled:
            role_of(ctx, request)
        return _tests_update(ctx, name)


def start(ctx: AppContext, old: RaterSession | None, typed: str | None, test_id: str | None, request: gr.Request):
    """Start (or resume) a test: the first trial without a vote."""
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
            role=role_of(ctx, request),
            fetch_gate=False,
        )
        shown = session.show_next()
        status = "Welcome back: continuing where you left off." if shown and shown.done else ""
        return (session, *_view(ctx, session, shown), status, rater)


def player_event(ctx: AppContext, which: str, event: str, session: RaterSession | None, request: gr.Request):
    """A player started, paused or ended; unlock voting once both were played."""
    if session is None or session.current is None:
        return tuple(gr.skip() for _ in range(4))
    with _RaterErrors():
        _own(ctx, session, request)
        unlocked = session.played(which, event)
        return _buttons(unlocked) if event == "play" else tuple(gr.skip() for _ in range(4))


def vote(
    ctx: AppContext,
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
        saved = f"✓ Saved: {CHOICE_LABELS[choice]} on trial {number}."
        return (saved, *_buttons(False)[:3], "Loading the next trial…", "")


def next_trial(ctx: AppContext, session: RaterSession | None, request: gr.Request):
    with _RaterErrors():
        session = _own(ctx, session, request)
        return _view(ctx, session, session.show_next())


def change_previous(ctx: AppContext, session: RaterSession | None, request: gr.Request):
    with _RaterErrors():
        session = _own(ctx, session, request)
        shown = session.show_previous()
        return (*_view(ctx, session, shown), "Listen again and vote; your new answer replaces the old one.")


# ---------------------------------------------------------------------------- admin handlers


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


def _admin_refresh(ctx: AppContext, message: str, rater: str | None) -> tuple:
    plans = services(ctx).plans.list()
    choices = [(f"{p.title} [{p.status}] {p.test_id}", p.test_id) for p in plans]
    return (
        message,
        _tests_table(ctx),
        gr.update(choices=choices, value=choices[0][1] if choices else None),
        gr.update(choices=_open_tests(ctx, rater)),
    )


def admin_load(ctx: AppContext, request: gr.Request):
    """Fill the admin panel for admins; raters get nothing (no names in their page)."""
    if ctx.auth_enabled and ctx.users.role(username(ctx, request)) != "admin":
        return (gr.update(visible=False),) + tuple(gr.skip() for _ in range(6))
    with _Errors():
        cat = ctx.catalog
        plans = services(ctx).plans.list()
        choices = [(f"{p.title} [{p.status}] {p.test_id}", p.test_id) for p in plans]
        return (
            gr.update(visible=True),
            gr.update(choices=list(cat.checkpoints), value=list(cat.checkpoints)[:2]),
            gr.update(choices=list(cat.references), value=list(cat.references)[:2]),
            gr.update(choices=list(cat.sentences), value=list(cat.sentences)[:2]),
            gr.update(choices=list(cat.enhancements), value=["none"] if "none" in cat.enhancements else []),
            _tests_table(ctx),
            gr.update(choices=choices, value=choices[0][1] if choices else None),
        )


def _save_new(ctx: AppContext, plan: TestPlan) -> str:
    problems = check_renderable(plan, get_renderer(ctx))
    if problems:
        raise CatalogError(problems)
    services(ctx).plans.save(plan)
    return f"Created **{html.escape(plan.title)}** (`{plan.test_id}`, draft): {plan.describe()}. Open it to start."


def create_test(
    ctx: AppContext,
    title: str,
    checkpoints: list[str] | None,
    references: list[str] | None,
    sentences: list[str] | None,
    presets: list[str] | None,
    repeats: float | None,
    per_rater: float | None,
    require_play: bool,
    request: gr.Request,
):
    require_admin(ctx, request)
    with _Errors():
        try:
            spec = PlanSpec(
                title=title or "",
                checkpoints=checkpoints or [],
                references=references or [],
                sentences=sentences or [],
                presets=presets or ["none"],
                repeats=int(repeats or 0),
                trials_per_rater=int(per_rater) if per_rater else None,
                require_play=bool(require_play),
            )
        except ValueError as e:  # pydantic's ValidationError is a ValueError
            raise VoteError(_pydantic_message(e)) from None
        plan = make_plan(ctx.catalog, spec, created_by=username(ctx, request) or "local")
        return _admin_refresh(ctx, _save_new(ctx, plan), username(ctx, request))


def _pydantic_message(e: Exception) -> str:
    errors = getattr(e, "errors", None)
    if not callable(errors):
        return str(e)
    return "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in errors())


def load_plan_file(ctx: AppContext, file: str | None, request: gr.Request):
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
        return _admin_refresh(ctx, msg, username(ctx, request))


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
        svc.plans.set_status(plan.test_id, "open")
        msg = f"**{html.escape(plan.title)}** is open: {len(reqs)} clips ready."
        return _admin_refresh(ctx, msg, username(ctx, request))


def close_test(ctx: AppContext, test_id: str | None, request: gr.Request):
    require_admin(ctx, request)
    with _Errors():
        plan = services(ctx).plans.set_status(test_id or "", "closed")
        msg = f"**{html.escape(plan.title)}** is closed: raters can no longer vote on it."
        return _admin_refresh(ctx, msg, username(ctx, request))


# ---------------------------------------------------------------------------- page


STYLE = """
<style>
#wb-blind {max-width: 980px; margin: 0 auto;}
#wb-blind .wb-progress {margin: 4px 0 10px;}
#wb-blind .wb-progress-row {display: flex; justify-content: space-between; gap: 1em; font-size: 1.05rem;
  margin-bottom: 6px;}
#wb-blind .wb-progress-title {opacity: .75;}
#wb-blind .wb-bar {height: 8px; border-radius: 4px; background: var(--neutral-200, #e5e7eb); overflow: hidden;}
#wb-blind .wb-bar > div {height: 100%; background: var(--color-accent, #f97316); transition: width .3s;}
#wb-blind .wb-slot {outline: 3px solid transparent; border-radius: 8px; transition: outline-color .15s;}
#wb-blind .wb-slot.wb-playing {outline-color: var(--color-accent, #f97316);}
#wb-blind .wb-slot-label {font-size: 2.4rem; font-weight: 700; text-align: center; line-height: 1.1;}
#wb-blind audio {width: 100%; height: 56px;}
#wb-vote-a, #wb-vote-b, #wb-vote-none {min-height: 64px; font-size: 1.15rem;}
#wb-blind kbd {border: 1px solid var(--neutral-300, #ccc); border-bottom-width: 2px; border-radius: 4px;
  padding: 0 .35em; font-size: .9em;}
#wb-blind .wb-gate {text-align: center; min-height: 1.6em;}
#wb-blind .wb-status {min-height: 1.6em; align-self: center;}
#wb-picker {align-items: end;}
#wb-picker button {align-self: end; min-height: 42px;}
#wb-done {text-align: center; padding: 2em 0;}
</style>
"""

#: keyboard shortcuts and player hygiene, installed once per page
SHORTCUTS_JS = r"""
if (!window.__wbBlind) {
  window.__wbBlind = true;
  const player = (s) => document.querySelector('#wb-audio-' + s + ' audio');
  const visible = (el) => el && el.offsetParent !== null;
  const click = (id) => { const b = document.getElementById(id); if (visible(b) && !b.disabled) b.click(); };
  const toggle = (s) => {
    const me = player(s), other = player(s === 'a' ? 'b' : 'a');
    if (!me || !me.src) return;
    if (!me.paused) { me.pause(); return; }
    if (other && !other.paused) other.pause();
    me.play();
  };
  const mark = (e) => {
    const t = e.target;
    if (!(t instanceof HTMLMediaElement) || !t.closest('#wb-blind')) return;
    if (e.type === 'play') {
      document.querySelectorAll('#wb-blind audio').forEach((a) => { if (a !== t && !a.paused) a.pause(); });
    }
    const slot = t.closest('.wb-slot');
    if (slot) slot.classList.toggle('wb-playing', e.type === 'play');
  };
  ['play', 'pause', 'ended', 'emptied'].forEach((k) => document.addEventListener(k, mark, true));
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.target;
    // keys type into text boxes; a ticked reason checkbox keeps focus but takes no text
    const typing = t && (t.tagName === 'TEXTAREA' || t.isContentEditable ||
      (t.tagName === 'INPUT' && !['checkbox', 'radio', 'button'].includes(t.type)));
    if (typing) {
      if (e.key === 'Escape') t.blur();
      return;
    }
    if (!visible(document.getElementById('wb-trial'))) return;
    const k = e.key.toLowerCase();
    const act = {'1': () => click('wb-vote-a'), '2': () => click('wb-vote-b'), '0': () => click('wb-vote-none'),
                 'a': () => toggle('a'), 'b': () => toggle('b')}[k];
    if (act) { e.preventDefault(); act(); }
  });
  new MutationObserver(() => {
    document.querySelectorAll('#wb-blind audio').forEach((a) => {
      if (a.getAttribute('controlslist') !== 'nodownload noplaybackrate') {
        a.setAttribute('controlslist', 'nodownload noplaybackrate');
      }
    });
  }).observe(document.body, {subtree: true, childList: true});
}
"""


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    """Lay out the Blind A/B tab and wire its events (nothing secret in the layout)."""
    services(ctx)  # open (and if needed recover) the vote store at start-up
    b = bind
    player_opts = {
        "type": "filepath",
        "interactive": False,
        "show_label": False,
        "buttons": [],
        "editable": False,
        "waveform_options": gr.WaveformOptions(show_recording_waveform=False),
    }
    with gr.Column(elem_id="wb-blind"):
        gr.HTML("", head=STYLE, js_on_load=SHORTCUTS_JS, container=False, padding=False)
        session = gr.State(None, delete_callback=lambda s: s.close() if s is not None else None)
        saved_name = gr.BrowserState("", storage_key="wb-rater-name")
        with gr.Row(elem_id="wb-picker"):
            name = gr.Textbox(label="Your name", max_lines=1, visible=False, scale=2, max_length=64, elem_id="wb-name")
            test = gr.Dropdown(label="Test", choices=[], scale=3, elem_id="wb-test")
            refresh = gr.Button("↻", scale=0, min_width=48, size="sm", elem_id="wb-refresh")
            start_btn = gr.Button("Start", variant="primary", scale=0, min_width=120, elem_id="wb-start")
        who = gr.Markdown("", elem_classes="wb-muted")
        with gr.Column(visible=False, elem_id="wb-trial") as trial_box:
            progress = gr.HTML("", elem_id="wb-progress")
            with gr.Row(equal_height=True):
                with gr.Column(variant="panel", elem_classes="wb-slot"):
                    gr.HTML('<div class="wb-slot-label">A</div>')
                    audio_a = gr.Audio(elem_id="wb-audio-a", **player_opts)
                with gr.Column(variant="panel", elem_classes="wb-slot"):
                    gr.HTML('<div class="wb-slot-label">B</div>')
                    audio_b = gr.Audio(elem_id="wb-audio-b", **player_opts)
            gate = gr.Markdown(GATE_LOCKED, elem_classes="wb-gate", elem_id="wb-gate")
            with gr.Row():
                vote_a = gr.Button("◀  A is better", elem_id="wb-vote-a", interactive=False, size="lg")
                vote_none = gr.Button("No preference", elem_id="wb-vote-none", interactive=False, size="lg")
                vote_b = gr.Button("B is better  ▶", elem_id="wb-vote-b", interactive=False, size="lg")
            reasons = gr.CheckboxGroup(
                list(REASONS), label="What made the difference? (optional, tick before voting)", elem_id="wb-reasons"
            )
            comment = gr.Textbox(
                label="Comment (optional)",
                placeholder="e.g. 'A stresses the wrong word'. Esc leaves the box so the keys work again.",
                lines=1,
                max_lines=4,
                max_length=2000,
                elem_id="wb-comment",
            )
            token = gr.Textbox(visible=False, elem_id="wb-token")
        with gr.Column(visible=False, elem_id="wb-done") as done_box:
            done_md = gr.Markdown("", elem_id="wb-done-text")
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

        with gr.Accordion("Admin: blind tests", open=False, visible=False) as admin_box:
            gr.Markdown(
                "Pick what to compare. Every pair is played on every reference and sentence; each rater gets "
                "their own order and sides. Compare presets by picking one checkpoint and two or more presets."
            )
            title = gr.Textbox(
                label="Title raters see (no checkpoint names)", max_lines=1, max_length=100, elem_id="wb-admin-title"
            )
            with gr.Row():
                checkpoints = gr.Dropdown(
                    label="Checkpoints", choices=[], multiselect=True, elem_id="wb-admin-checkpoints"
                )
                presets = gr.Dropdown(
                    label="Enhancement preset(s)", choices=[], multiselect=True, elem_id="wb-admin-presets"
                )
            with gr.Row():
                references = gr.Dropdown(
                    label="References", choices=[], multiselect=True, elem_id="wb-admin-references"
                )
                sentences = gr.Dropdown(label="Sentences", choices=[], multiselect=True, elem_id="wb-admin-sentences")
            with gr.Row():
                repeats = gr.Number(
                    label="Repeated trials per rater (sides swapped)",
                    value=0,
                    precision=0,
                    minimum=0,
                    elem_id="wb-admin-repeats",
                )
                per_rater = gr.Number(
                    label="Trials per rater (0 = all)", value=0, precision=0, minimum=0, elem_id="wb-admin-per-rater"
                )
                require_play = gr.Checkbox(
                    label="Voting unlocks after both clips were played", value=True, elem_id="wb-admin-require-play"
                )
            create_btn = gr.Button("Create test", variant="primary", elem_id="wb-admin-create")
            with gr.Accordion("…or load a plan file (YAML)", open=False):
                plan_file = gr.File(
                    label="Plan", file_types=[".yaml", ".yml"], type="filepath", elem_id="wb-admin-plan"
                )
                load_btn = gr.Button("Load plan", elem_id="wb-admin-load")
            tests_table = gr.Dataframe(
                headers=TEST_COLUMNS,
                interactive=False,
                wrap=True,
                column_widths=["13%", "17%", "9%", "47%", "7%", "7%"],
            )
            with gr.Row():
                admin_test = gr.Dropdown(label="Test", choices=[], scale=3, elem_id="wb-admin-test")
                open_btn = gr.Button("Open (render clips)", scale=1, variant="primary", elem_id="wb-admin-open")
                close_btn = gr.Button("Close", scale=1, variant="stop", elem_id="wb-admin-close")
            admin_msg = gr.Markdown("", elem_id="wb-admin-msg")

    view = [
        trial_box,
        done_box,
        done_md,
        progress,
        audio_a,
        audio_b,
        token,
        vote_a,
        vote_none,
        vote_b,
        gate,
        change_btn,
        reasons,
        comment,
        test,
    ]
    # Votes and player events take a few milliseconds: they skip the queue (one plain
    # request each, no event stream), so they never wait behind anything queued.
    direct = {"api_name": False, "queue": False}
    light = {"api_name": False, "concurrency_id": LIGHT_GROUP, "concurrency_limit": LIGHT_LIMIT}
    trial = {"api_name": False, "concurrency_id": TRIAL_GROUP, "concurrency_limit": TRIAL_LIMIT}

    demo.load(b(rater_load, ctx), [saved_name], [name, who, test], **light)
    refresh.click(b(refresh_tests, ctx), [name], [test], **light)
    start_btn.click(b(start, ctx), [session, name, test], [session, *view, status, saved_name], **trial)
    for comp, which in ((audio_a, "A"), (audio_b, "B")):
        outs = [vote_a, vote_none, vote_b, gate]
        comp.play(b(player_event, ctx, which, "play"), [session], outs, show_progress="hidden", **direct)
        comp.pause(b(player_event, ctx, which, "pause"), [session], outs, show_progress="hidden", **direct)
        comp.stop(b(player_event, ctx, which, "stop"), [session], outs, show_progress="hidden", **direct)
    for btn, choice in ((vote_a, "A"), (vote_b, "B"), (vote_none, "none")):
        btn.click(
            b(vote, ctx, choice),
            [session, token, reasons, comment],
            [status, vote_a, vote_none, vote_b, gate, token],
            show_progress="minimal",
            **direct,
        ).success(b(next_trial, ctx), [session], view, show_progress="hidden", **trial)
    change_btn.click(b(change_previous, ctx), [session], [*view, status], **trial)

    admin_outs = [admin_msg, tests_table, admin_test, test]
    demo.load(
        b(admin_load, ctx),
        None,
        [admin_box, checkpoints, references, sentences, presets, tests_table, admin_test],
        api_name=False,
    )
    create_btn.click(
        b(create_test, ctx),
        [title, checkpoints, references, sentences, presets, repeats, per_rater, require_play],
        admin_outs,
        api_name=False,
    )
    load_btn.click(b(load_plan_file, ctx), [plan_file], admin_outs, api_name=False)
    open_btn.click(
        b(open_test, ctx),
        [admin_test],
        admin_outs,
        api_name=False,
        concurrency_id=RENDER_GROUP,
        concurrency_limit=RENDER_LIMIT,
    )
    close_btn.click(b(close_test, ctx), [admin_test], admin_outs, api_name=False)
