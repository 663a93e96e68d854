"""Compare tab: render 2-4 checkpoints for one reference and sentence, listen, diff and measure.

Wiring only: :class:`workbench.comparison.Comparer` renders, measures and draws (through
:mod:`workbench.render`, :mod:`workbench.analysis`, :mod:`workbench.plots`). :func:`build`
lays out the components and returns them by name (:class:`CompareView`); :func:`wire`
connects them. Every handler is a module-level function that takes the
:class:`AppContext` (and the view) first, calls :func:`require_admin` before anything
else and returns ``{component: value}``; the selection form arrives as one
:class:`CompareInputs`. The initial page carries no catalog names (choices arrive
through ``demo.load`` for admins).

A comparison can be linked: ``?tab=compare&reference=..&sentence=..&checkpoints=a,b
&preset=..&take=n`` (see :func:`compare_link`) reopens and renders it on page load.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ..catalog import Catalog
from ..catalog_live import LiveCatalog, add_prerendered
from ..comparison import (  # noqa: F401 - compare_link and parse_link are this tab's public link API
    ALIGN_CHOICES,
    MAX_CLIPS,
    MIN_CLIPS,
    Comparer,
    Comparison,
    Selection,
    compare_link,
    deltas_for_display,
    enhancement_caption,
    make_selection,
    metrics_for_display,
    pairs_for_display,
    parse_link,
    player_entries,
    player_label,
    preset_offer,
    status_markdown,
    verdict_markdown,
)
from ..errors import WorkbenchError
from .common import AppContext, bind, require_admin, role_of

log = logging.getLogger(__name__)

#: files written for downloads are removed after this long (s); gradio keeps its own copies
OUTPUT_TTL_S = 3600

#: an absolute path (two or more folders deep) inside a message
_ABS_PATH = re.compile(r"(?<![\w.~])/(?:[^\s/:'\"(),;]+/)+([^\s/:'\"(),;]*)")


def tidy_message(ctx: AppContext, text: str) -> str:
    """A message fit for the page: paths relative to the catalog's folder, other absolute paths
    shortened to their last part (the browser need not learn the server's layout).
    """
    base = str(ctx.catalog.path.parent).rstrip("/") + "/"
    text = text.replace(base, "")
    return _ABS_PATH.sub(lambda m: "…/" + m.group(1), text)


def failure(ctx: AppContext, what: str, e: Exception, *, kept: bool = True) -> str:
    """Markdown for a failed action, logged as one line (a routine user error is no traceback).

    Unexpected exceptions (bugs) are logged with their traceback and shown without details.
    """
    if isinstance(e, WorkbenchError):
        log.info("%s refused: %s", what, str(e).replace("\n", " | "))
        message = tidy_message(ctx, str(e))
    else:
        log.exception("%s failed unexpectedly", what)
        message = f"unexpected error ({type(e).__name__}); the details are in the server log"
    body = message.replace("\n", "  \n")
    tail = f"  \nThe results below are from the last {what} that worked." if kept else ""
    return f"**Could not {what}:** {body}{tail}"


# ---------------------------------------------------------------------------- live catalog

#: seconds between checks of the catalog files for edits
WATCH_INTERVAL_S = 2.0


def sync_catalog(ctx: AppContext, *, force: bool = False) -> LiveCatalog:
    """Pick up edits of the catalog files: a good edit becomes the app's catalog (context,
    renderer, comparer); a bad one leaves the last good catalog in use (``live.error`` says why).
    """
    live = ctx.services.live_catalog
    if live.refresh(force=force):
        ctx.catalog = live.current
        ctx.services.renderer.catalog = live.current
        ctx.services.comparer.catalog = live.current
    return live


def watch_catalog(ctx: AppContext, interval_s: float = WATCH_INTERVAL_S) -> None:
    """Check the catalog files every ``interval_s`` in a daemon thread (once per app)."""
    if ctx.state.catalog_watch is not None:
        return

    def loop() -> None:
        while True:
            time.sleep(interval_s)
            try:
                sync_catalog(ctx)
            except Exception:  # the watcher must outlive any surprise; the next tick tries again
                log.exception("catalog watch failed")

    thread = threading.Thread(target=loop, name="catalog-watch", daemon=True)
    ctx.state.catalog_watch = thread
    thread.start()


def catalog_note(ctx: AppContext, request: gr.Request):
    """The catalog's state for admins: hidden when the files on disk are in use, else the error."""
    if role_of(ctx, request) != "admin":
        return gr.skip()
    live = sync_catalog(ctx)
    if live.error is None:
        return gr.update(value="", visible=False)
    return gr.update(
        value="**The catalog file has a mistake; the last good catalog stays in use until it is fixed.**  \n"
        + tidy_message(ctx, live.error).replace("\n", "  \n"),
        visible=True,
    )


def _comparer(ctx: AppContext) -> Comparer:
    """The app's one :class:`Comparer` (its analysis memo is shared by every session)."""
    return ctx.services.comparer


def _progress(progress):
    """Adapt a ``gr.Progress`` (or None) to the ``(fraction, label)`` callback of the modules."""
    if progress is None:
        return None
    return lambda frac, label: progress(frac, desc=label)


def _output_dir(ctx: AppContext) -> Path:
    """A fresh folder for one comparison's downloads; folders older than an hour are removed."""
    base = ctx.state.folder("compare")
    now = time.time()
    for old in base.iterdir():
        try:
            if now - old.stat().st_mtime > OUTPUT_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return Path(tempfile.mkdtemp(dir=base))


# ---------------------------------------------------------------------------- the view and the form

N_PLAYERS = 1 + MAX_CLIPS  # the reference and up to four checkpoints
#: what the Compare page shows before the first comparison
EMPTY_STATE = (
    "**Nothing compared yet.** Pick a reference, a sentence and 2-4 checkpoints, then press "
    "**Render and compare**: players, the differences in words, figures and metrics appear here."
)
_JS_SET_URL = "(q) => { if (q) { window.history.replaceState(null, '', q); } return []; }"


@dataclass(frozen=True)
class Player:
    """One player slot: a column holding the audio and its caption (hidden when unused)."""

    column: gr.Column
    audio: gr.Audio
    caption: gr.Markdown


@dataclass(frozen=True)
class CompareView:
    """The Compare tab's components by name: :func:`build` makes them, :func:`wire` connects them.

    Handlers return ``{component: value}`` dicts; a component left out keeps what it shows.
    """

    # the selection form
    reference: gr.Dropdown
    sentence: gr.Dropdown
    custom_text: gr.Textbox
    checkpoints: gr.Dropdown
    preset: gr.Dropdown  # for all clips
    take: gr.Number
    retake: gr.Number  # the first checkpoint again at this take (0: no)
    per_side: gr.Checkbox  # a preset per checkpoint instead
    side_row: gr.Row
    side: tuple[gr.Dropdown, ...]  # the per-checkpoint presets, one per checkpoint slot
    preset_note: gr.Markdown  # presets not offered, and why
    align: gr.Radio
    run: gr.Button
    # messages
    status: gr.Markdown
    catalog_box: gr.Markdown
    catalog_timer: gr.Timer
    error_box: gr.Markdown
    link_box: gr.Textbox  # hidden; the page URL is set from it
    empty: gr.Markdown
    # the results
    results_col: gr.Column
    verdict: gr.Markdown
    players: tuple[Player, ...]  # the reference first, then the clips
    overlay: gr.Image
    zoom_from: gr.Number
    zoom_to: gr.Number
    zoom_run: gr.Button
    zoom_all: gr.Button
    difference: gr.Image
    spectrum: gr.Image
    spectrograms: gr.Image
    pitch: gr.Image
    energy: gr.Image
    metrics: gr.Dataframe
    pairwise: gr.Dataframe
    files: gr.File
    # add old renders
    add_name: gr.Textbox
    add_folder: gr.Textbox
    add_zip: gr.File
    add_notes: gr.Textbox
    add_run: gr.Button
    add_result: gr.Markdown
    # enhancement diff
    enh_checkpoint: gr.Dropdown
    enh_preset: gr.Dropdown
    enh_run: gr.Button
    enh_error: gr.Markdown
    enh_results: gr.Column
    enh_plain: gr.Audio
    enh_enhanced: gr.Audio
    enh_caption: gr.Markdown
    enh_figure: gr.Image
    enh_table: gr.Dataframe
    enh_files: gr.File

    @property
    def form(self) -> set[Any]:
        """The selection widgets, as a set: Gradio then hands the handler one ``{component: value}``
        dict, which :meth:`read` turns into a :class:`CompareInputs`.
        """
        return {*self._selection, self.align}

    @property
    def _selection(self) -> list[Any]:
        """The widgets that say what to compare (a link fills them; the form reads them)."""
        return [
            self.reference,
            self.sentence,
            self.custom_text,
            self.checkpoints,
            self.preset,
            self.per_side,
            *self.side,
            self.take,
            self.retake,
        ]

    def read(self, values: dict) -> CompareInputs:
        """The form's values (``{component: value}``, as Gradio passes them) by name."""
        return CompareInputs(
            reference=values[self.reference],
            sentence=values[self.sentence],
            custom_text=values[self.custom_text],
            checkpoints=values[self.checkpoints],
            preset=values[self.preset],
            per_side=bool(values[self.per_side]),
            side=tuple(values[d] for d in self.side),
            take=values[self.take],
            retake=values[self.retake],
            align=values[self.align],
        )

    @property
    def compare_outputs(self) -> list[Any]:
        """Everything a comparison changes (see :func:`compare_outputs`)."""
        players = [c for p in self.players for c in (p.column, p.audio, p.caption)]
        figures = [self.overlay, self.difference, self.spectrum, self.spectrograms, self.pitch, self.energy]
        tables = [self.metrics, self.pairwise, self.files]
        shown = [self.enh_checkpoint, self.results_col, self.empty, self.error_box]
        return [self.status, self.link_box, *players, self.verdict, *figures, *tables, *shown]

    @property
    def load_outputs(self) -> list[Any]:
        """Everything :func:`load_page` fills."""
        return [*self._selection, self.enh_checkpoint, self.enh_preset, self.preset_note]

    @property
    def enh_outputs(self) -> list[Any]:
        """Everything :func:`enhancement_diff` changes."""
        return [
            self.enh_plain,
            self.enh_enhanced,
            self.enh_caption,
            self.enh_figure,
            self.enh_table,
            self.enh_files,
            self.enh_results,
            self.enh_error,
        ]


@dataclass(frozen=True)
class CompareInputs:
    """The selection form's values as the page holds them (unchecked: :meth:`selection` checks them).

    The one input of both :func:`compare` (the button) and :func:`compare_from_link` (page load).
    """

    reference: str | None
    sentence: str | None
    custom_text: str | None = ""
    checkpoints: list[str] | None = None
    preset: str | None = "none"  # for all clips, unless per_side
    per_side: bool = False
    side: tuple[str | None, ...] = ()  # per-checkpoint presets, used only when per_side
    take: float | None = 1  # a Number widget gives floats
    retake: float | None = 0  # 0 or None: no retake
    align: str | None = "trimmed"  # a value of ALIGN_CHOICES

    def selection(self, catalog: Catalog) -> Selection:
        """The validated :class:`~workbench.comparison.Selection`; raises a :class:`WorkbenchError` naming the field."""
        side = list(self.side) if self.per_side else None
        return make_selection(
            catalog,
            self.reference,
            self.sentence,
            self.custom_text,
            self.checkpoints,
            self.preset,
            side,
            self.take,
            self.retake,
        )


# ---------------------------------------------------------------------------- handlers


def _error(box: gr.Markdown, message: str) -> dict:
    """The outputs of a failed action: the message in its error box, every other output as it was."""
    return {box: gr.update(value=message, visible=True)}


def compare_outputs(ctx: AppContext, view: CompareView, c: Comparison) -> dict:
    """Widget values for a finished comparison, by component."""
    entries = player_entries(ctx.catalog, c)
    out: dict = {}
    for i, player in enumerate(view.players):
        if i < len(entries):
            path, label, caption = entries[i]
            out[player.column] = gr.update(visible=True)
            out[player.audio] = gr.update(value=path, label=label)
            out[player.caption] = gr.update(value=caption)
        else:
            out[player.column] = gr.update(visible=False)
            out[player.audio] = gr.update(value=None)
            out[player.caption] = gr.update(value="")
    fig = c.figures
    checkpoints = list(dict.fromkeys(m.clip.request.checkpoint for m in c.clips if m.clip))
    return {
        view.status: status_markdown(c, functools.partial(tidy_message, ctx)),
        view.link_box: c.selection.link(),
        **out,
        view.verdict: verdict_markdown(c),
        view.overlay: str(fig["overlay"]),
        view.difference: (
            gr.update(value=str(fig["difference"]), visible=True) if "difference" in fig else gr.update(visible=False)
        ),
        view.spectrum: str(fig["spectrum"]),
        view.spectrograms: str(fig["spectrograms"]),
        view.pitch: str(fig["pitch"]),
        view.energy: str(fig["energy"]),
        view.metrics: metrics_for_display(c.metrics, c.clips[0].label),
        view.pairwise: pairs_for_display(c.pairwise),
        view.files: [str(p) for p in c.files],
        view.enh_checkpoint: gr.update(choices=checkpoints, value=checkpoints[0]),
        view.results_col: gr.update(visible=True),
        view.empty: gr.update(visible=False),
        view.error_box: gr.update(value="", visible=False),
    }


def on_phone(request: gr.Request | None) -> bool:
    """True when the browser says it is a phone ("Mobi" in its User-Agent, as MDN advises).

    Phones get figures drawn for their width (:data:`workbench.plots.NARROW_IN`); a
    desktop browser in a narrow window keeps the desktop figures (scaled down).
    """
    headers = getattr(request, "headers", None) or {}
    return "Mobi" in str(headers.get("user-agent", ""))


def compare(
    ctx: AppContext, view: CompareView, form: CompareInputs, request: gr.Request, progress=gr.Progress()
) -> dict:
    """Render and compare the selection (the "Render and compare" button).

    A failure changes only the error box: the last good results stay on screen.
    """
    require_admin(ctx, request)
    sync_catalog(ctx)
    try:
        c = _comparer(ctx).compare(
            form.selection(ctx.catalog),
            out_dir=_output_dir(ctx),
            align_mode=form.align or "trimmed",
            progress=_progress(progress),
            narrow=on_phone(request),
        )
        _remember(ctx, request, c)
        return compare_outputs(ctx, view, c)
    except Exception as e:  # one message in one place; the last good results stay on screen
        return _error(view.error_box, failure(ctx, "compare", e))


def compare_from_link(
    ctx: AppContext, view: CompareView, form: CompareInputs, request: gr.Request, progress=gr.Progress()
):
    """On page load: when the URL names checkpoints (a Compare link), run that comparison.

    The widgets already hold the link's values (:func:`load_page` ran first). Raters and
    plain page loads get no change.
    """
    if role_of(ctx, request) != "admin" or not _query(request).get("checkpoints"):
        return gr.skip()
    return compare(ctx, view, form, request, progress)


def _form_handler(ctx: AppContext, view: CompareView, fn: Callable) -> Callable:
    """``fn(ctx, view, form, request, progress)`` as a Gradio handler of :attr:`CompareView.form`.

    Gradio passes the form (a set of inputs) as one ``{component: value}`` dict, read here
    into a :class:`CompareInputs`. The handler keeps ``fn``'s name: the guard finds the
    quota category by it (``guard.QUOTAS``).
    """

    def handler(values: dict, request: gr.Request, progress=gr.Progress()):
        return fn(ctx, view, view.read(values), request, progress)

    handler.__name__ = handler.__qualname__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


#: comparisons kept for zooming, one per browser session (the most recent sessions)
KEPT_COMPARISONS = 16


def _remember(ctx: AppContext, request: gr.Request | None, c: Comparison) -> None:
    """Keep ``c`` as this session's comparison on screen (zooming redraws from it)."""
    kept = ctx.state.shown_comparisons
    key = getattr(request, "session_hash", None) or "local"
    kept[key] = c
    kept.move_to_end(key)
    while len(kept) > KEPT_COMPARISONS:
        kept.popitem(last=False)


def zoom_overlay(ctx: AppContext, t0: float | None, t1: float | None, request: gr.Request):
    """Redraw the overlay of this session's comparison for ``t0``..``t1`` s (both empty: everything)."""
    require_admin(ctx, request)
    c = ctx.state.shown_comparisons.get(getattr(request, "session_hash", None) or "local")
    if c is None:
        gr.Warning("Compare first; then zoom into its waveform overlay.")
        return gr.skip()
    whole = t0 in (None, "") and t1 in (None, "")
    try:
        return str(_comparer(ctx).zoom(c, None if whole else t0, None if whole else t1, out_dir=_output_dir(ctx)))
    except WorkbenchError as e:
        log.info("zoom refused: %s", e)
        gr.Warning(str(e))
        return gr.skip()


def _query(request: gr.Request | None) -> dict[str, str]:
    q = getattr(request, "query_params", None) if request is not None else None
    return {str(k): str(v) for k, v in dict(q or {}).items()}


def load_page(ctx: AppContext, view: CompareView, request: gr.Request):
    """Fill the selection widgets for admins: defaults, overridden by a Compare link in the URL.

    Raters get no change at all, so their page never carries catalog names. Only presets
    that can run are offered (:func:`preset_offer`); the note says why the others are not.
    """
    if role_of(ctx, request) != "admin":
        return gr.skip()
    require_admin(ctx, request)
    sync_catalog(ctx)
    cat = ctx.catalog
    values, problems = parse_link(_query(request), cat)
    refs, sents, cks = list(cat.references), list(cat.sentences), list(cat.checkpoints)
    chosen = values.get("checkpoints") or cks[:MIN_CLIPS]
    offer = preset_offer(cat, chosen)
    presets = offer.choices
    link_presets = values.get("presets") or ["none"]
    for p in dict.fromkeys(link_presets):
        if p in offer.unavailable:
            problems.append(f"link: preset {p!r} cannot run here ({offer.unavailable[p]}); 'none' is used instead")
    if problems:  # one toast for the whole link, not one per parameter
        gr.Warning(tidy_message(ctx, "This link was partly ignored:\n" + "\n".join(problems)))
    link_presets = [p if p in offer.names else "none" for p in link_presets]
    per_side = len(link_presets) > 1
    side = (link_presets if per_side else ["none"]) + ["none"] * MAX_CLIPS
    enh_ck = (chosen or cks or [None])[0]
    enh_presets = [c for c in preset_offer(cat, [enh_ck] if enh_ck else None).choices if c[1] != "none"]
    return {
        view.reference: gr.update(choices=refs, value=values.get("reference", refs[0] if refs else None)),
        view.sentence: gr.update(choices=sents, value=values.get("sentence", sents[0] if sents else None)),
        view.custom_text: gr.update(value=values.get("text", "")),
        view.checkpoints: gr.update(choices=cks, value=chosen),
        view.preset: gr.update(choices=presets, value="none" if per_side else link_presets[0]),
        view.per_side: gr.update(value=per_side),
        **{d: gr.update(choices=presets, value=side[i]) for i, d in enumerate(view.side)},
        view.take: gr.update(value=values.get("take", 1)),
        view.retake: gr.update(value=values.get("retake", 0)),
        view.enh_checkpoint: gr.update(choices=chosen or cks, value=enh_ck),
        view.enh_preset: gr.update(choices=enh_presets, value=enh_presets[0][1] if enh_presets else None),
        view.preset_note: gr.update(value=tidy_message(ctx, offer.note()), visible=bool(offer.unavailable)),
    }


def offer_presets(
    ctx: AppContext,
    view: CompareView,
    checkpoints: list[str] | None,
    preset: str | None,
    preset_1: str | None,
    preset_2: str | None,
    preset_3: str | None,
    preset_4: str | None,
    request: gr.Request,
) -> dict:
    """Offer the presets that can run for the chosen checkpoints; keep a choice that still runs.

    ``preset_1`` .. ``preset_4`` are the per-checkpoint pickers. Updates the all-clips
    preset, the per-checkpoint pickers and the note.
    """
    require_admin(ctx, request)
    offer = preset_offer(ctx.catalog, [c for c in (checkpoints or []) if c in ctx.catalog.checkpoints] or None)

    def keep(value):
        return value if value in offer.names else "none"

    side = (preset_1, preset_2, preset_3, preset_4)
    return {
        view.preset: gr.update(choices=offer.choices, value=keep(preset)),
        **{d: gr.update(choices=offer.choices, value=keep(v)) for d, v in zip(view.side, side, strict=True)},
        view.preset_note: gr.update(value=tidy_message(ctx, offer.note()), visible=bool(offer.unavailable)),
    }


def offer_enh_presets(ctx: AppContext, checkpoint: str | None, preset: str | None, request: gr.Request):
    """The enhancement diff's presets: those (other than none) that run for ``checkpoint``."""
    require_admin(ctx, request)
    if not checkpoint or checkpoint not in ctx.catalog.checkpoints:
        return gr.update()
    choices = [c for c in preset_offer(ctx.catalog, [checkpoint]).choices if c[1] != "none"]
    names = [v for _, v in choices]
    return gr.update(choices=choices, value=preset if preset in names else (names[0] if names else None))


def toggle_per_side(ctx: AppContext, per_side: bool, request: gr.Request):
    """Show the per-checkpoint preset pickers only when asked for."""
    require_admin(ctx, request)
    return gr.update(visible=bool(per_side))


def side_pickers(ctx: AppContext, view: CompareView, checkpoints: list[str] | None, request: gr.Request) -> dict:
    """Name the per-checkpoint preset pickers after the chosen checkpoints; hide the unused ones."""
    require_admin(ctx, request)
    cks = list(checkpoints or [])
    return {
        d: gr.update(label=f"Preset for {cks[i]}", visible=True)
        if i < len(cks)
        else gr.update(label=f"Preset for checkpoint {i + 1}", visible=not cks)
        for i, d in enumerate(view.side)
    }


def add_old_renders(
    ctx: AppContext,
    view: CompareView,
    name: str,
    folder: str,
    upload: str | None,
    notes: str,
    checkpoints: list[str] | None,
    request: gr.Request,
) -> dict:
    """Add a folder or zip of existing clips as a new prerendered checkpoint (kept across restarts)."""
    require_admin(ctx, request)
    try:
        added = add_prerendered(
            ctx.catalog, name, folder=(folder or "").strip() or None, zip_path=upload or None, notes=notes or ""
        )
    except Exception as e:
        return _error(view.add_result, failure(ctx, "add the checkpoint", e, kept=False))
    sync_catalog(ctx, force=True)
    gaps = f" ({len(added.missing)} reference/sentence pairs have no clip)" if added.missing else ""
    msg = (
        f"Added checkpoint **{added.name}**: {added.clips} clips{gaps}, kept in "
        f"`{tidy_message(ctx, str(ctx.catalog.overlay))}`. Pick it under Checkpoints to compare."
    )
    chosen = [c for c in (checkpoints or []) if c in ctx.catalog.checkpoints]
    return {
        view.add_result: gr.update(value=msg, visible=True),
        view.checkpoints: gr.update(choices=list(ctx.catalog.checkpoints), value=chosen),
    }


def enhancement_diff(
    ctx: AppContext,
    view: CompareView,
    reference: str | None,
    sentence: str | None,
    custom_text: str | None,
    checkpoint: str | None,
    preset: str | None,
    take: float | None,
    request: gr.Request,
    progress=gr.Progress(),
) -> dict:
    """The same clip without and with a preset: players, overlay, metric deltas, downloads.

    A failure changes only the diff's error box: the last diff stays on screen.
    """
    require_admin(ctx, request)
    try:
        d = _comparer(ctx).enhancement_diff(
            reference,
            sentence,
            custom_text,
            checkpoint,
            preset,
            take,
            out_dir=_output_dir(ctx),
            progress=_progress(progress),
            narrow=on_phone(request),
        )
    except Exception as e:  # one message in one place; the last diff stays on screen
        return _error(view.enh_error, failure(ctx, "diff", e))
    plain, enhanced = d.plain.clip, d.enhanced.clip
    assert plain is not None and enhanced is not None  # rendered clips (only a reference has none)
    return {
        view.enh_plain: gr.update(value=str(plain.path), label=player_label(plain)),
        view.enh_enhanced: gr.update(value=str(enhanced.path), label=player_label(enhanced)),
        view.enh_caption: enhancement_caption(d),
        view.enh_figure: str(d.figure),
        view.enh_table: deltas_for_display(d),
        view.enh_files: [str(p) for p in d.files],
        view.enh_results: gr.update(visible=True),
        view.enh_error: gr.update(value="", visible=False),
    }


# ---------------------------------------------------------------------------- layout


def build() -> CompareView:
    """Lay out the Compare tab inside the current ``gr.Tab``; nothing is connected yet (:func:`wire`)."""
    gr.Markdown(
        "Render 2-4 checkpoints for one reference and sentence, then listen side by side and diff them. "
        "Renders are cached, so comparing again is quick.",
        elem_classes="wb-muted",
    )
    with gr.Row():
        reference = gr.Dropdown(label="Reference clip", choices=[], value=None, scale=2)
        sentence = gr.Dropdown(label="Sentence", choices=[], value=None, scale=2)
        custom_text = gr.Textbox(label="Custom text (instead of the sentence; needs model files)", scale=3)
    with gr.Row():
        checkpoints = gr.Dropdown(
            label=f"Checkpoints ({MIN_CLIPS}-{MAX_CLIPS})",
            choices=[],
            value=[],
            multiselect=True,
            max_choices=MAX_CLIPS,
            scale=3,
        )
        preset = gr.Dropdown(label="Enhancement preset (all clips)", choices=[], value=None, scale=2)
        take = gr.Number(label="Take", value=1, precision=0, minimum=1, maximum=1000, scale=1, min_width=80)
        retake = gr.Number(
            label="and the first checkpoint again at take (0: no)",
            value=0,
            precision=0,
            minimum=0,
            maximum=1000,
            scale=1,
            min_width=120,
        )
        per_side = gr.Checkbox(label="A preset per checkpoint", value=False, scale=1)
    with gr.Row(visible=False) as side_row:
        side = tuple(
            gr.Dropdown(label=f"Preset for checkpoint {i + 1}", choices=[], value=None) for i in range(MAX_CLIPS)
        )
    preset_note = gr.Markdown(visible=False, elem_classes="wb-muted")
    with gr.Row():
        align = gr.Radio(ALIGN_CHOICES, value="trimmed", label="Overlay alignment", scale=3)
        run = gr.Button("Render and compare", variant="primary", scale=1)
    status = gr.Markdown()
    catalog_box = gr.Markdown(visible=False, elem_classes="wb-error")
    catalog_timer = gr.Timer(5.0)
    error_box = gr.Markdown(visible=False, elem_classes="wb-error")
    link_box = gr.Textbox(visible=False)
    empty = gr.Markdown(EMPTY_STATE, elem_classes="wb-empty")
    # figures carry their own titles; a label badge would cover them
    image = functools.partial(
        gr.Image,
        type="filepath",
        interactive=False,
        show_label=False,
        buttons=["download", "fullscreen"],
        elem_classes="wb-figure",
    )
    # results stay hidden until the first comparison (no wall of empty frames)
    with gr.Column(visible=False) as results_col:
        verdict = gr.Markdown()
        players = []
        with gr.Row(equal_height=False):
            for i in range(N_PLAYERS):
                with gr.Column(min_width=220, visible=False) as column:
                    audio = gr.Audio(label=f"clip {i + 1}", type="filepath", interactive=False)
                    players.append(Player(column, audio, gr.Markdown(elem_classes="wb-muted")))
        overlay = image(label="Waveform overlay (min/max envelopes)")
        with gr.Row():
            zoom_from = gr.Number(label="Zoom from (s)", value=None, minimum=-3600, maximum=3600, min_width=100)
            zoom_to = gr.Number(label="to (s)", value=None, minimum=-3600, maximum=3600, min_width=100)
            zoom_run = gr.Button("Zoom overlay", size="sm")
            zoom_all = gr.Button("Whole clips", size="sm")
        difference = image(label="Difference of the first two checkpoints")
        spectrum = image(label="Long-term average spectrum and difference to the first checkpoint")
        spectrograms = image(label="Log-mel spectrograms (one colour scale)")
        pitch = image(label="Pitch (F0): Hz and semitones, voiced regions as bars")
        energy = image(label="Energy (RMS level)")
        metrics = gr.Dataframe(
            label="Metrics (st = semitones; the CSV download has one row per clip)",
            interactive=False,
            max_height=720,
            elem_classes="wb-table",
        )
        pairwise = gr.Dataframe(
            label="Pairs: spectral distance after time alignment, exact match",
            interactive=False,
            elem_classes="wb-table",
        )
        files = gr.File(label="Downloads: figures (PNG) and metrics (CSV)", file_count="multiple", interactive=False)

    with gr.Accordion("Add old renders as a checkpoint (a revert to check, clips rendered elsewhere)", open=False):
        gr.Markdown(
            "A folder laid out `<reference>/<sentence>.flac` (wav/mp3/ogg too), on the server or as a zip. "
            "It becomes a checkpoint that plays those clips, kept in `checkpoints.added.yaml` beside the "
            "catalog (survives a restart). Compare it with the checkpoint it should match.",
            elem_classes="wb-muted",
        )
        with gr.Row():
            add_name = gr.Textbox(label="New checkpoint name", placeholder="e.g. name-old", scale=1)
            add_folder = gr.Textbox(label="Folder on the server", placeholder="e.g. renders/old", scale=2)
            add_zip = gr.File(label="or a zip", file_types=[".zip"], type="filepath", scale=1)
        add_notes = gr.Textbox(label="Notes (optional)", placeholder="e.g. renders from March, before the revert")
        add_run = gr.Button("Add checkpoint")
        add_result = gr.Markdown(visible=False)

    with gr.Accordion("Enhancement diff: one clip without and with a preset", open=False):
        with gr.Row():
            enh_checkpoint = gr.Dropdown(label="Checkpoint", choices=[], value=None)
            enh_preset = gr.Dropdown(label="Preset", choices=[], value=None)
            enh_run = gr.Button("Render both and diff")
        enh_error = gr.Markdown(visible=False, elem_classes="wb-error")
        with gr.Column(visible=False) as enh_results:
            with gr.Row():
                enh_plain = gr.Audio(label="without preset", type="filepath", interactive=False)
                enh_enhanced = gr.Audio(label="with preset", type="filepath", interactive=False)
            enh_caption = gr.Markdown()
            enh_figure = image(label="Waveforms and long-term spectra")
            enh_table = gr.Dataframe(label="Metric deltas (after - before)", interactive=False, elem_classes="wb-table")
            enh_files = gr.File(label="Downloads", file_count="multiple", interactive=False)

    return CompareView(
        reference=reference,
        sentence=sentence,
        custom_text=custom_text,
        checkpoints=checkpoints,
        preset=preset,
        take=take,
        retake=retake,
        per_side=per_side,
        side_row=side_row,
        side=side,
        preset_note=preset_note,
        align=align,
        run=run,
        status=status,
        catalog_box=catalog_box,
        catalog_timer=catalog_timer,
        error_box=error_box,
        link_box=link_box,
        empty=empty,
        results_col=results_col,
        verdict=verdict,
        players=tuple(players),
        overlay=overlay,
        zoom_from=zoom_from,
        zoom_to=zoom_to,
        zoom_run=zoom_run,
        zoom_all=zoom_all,
        difference=difference,
        spectrum=spectrum,
        spectrograms=spectrograms,
        pitch=pitch,
        energy=energy,
        metrics=metrics,
        pairwise=pairwise,
        files=files,
        add_name=add_name,
        add_folder=add_folder,
        add_zip=add_zip,
        add_notes=add_notes,
        add_run=add_run,
        add_result=add_result,
        enh_checkpoint=enh_checkpoint,
        enh_preset=enh_preset,
        enh_run=enh_run,
        enh_error=enh_error,
        enh_results=enh_results,
        enh_plain=enh_plain,
        enh_enhanced=enh_enhanced,
        enh_caption=enh_caption,
        enh_figure=enh_figure,
        enh_table=enh_table,
        enh_files=enh_files,
    )


def wire(ctx: AppContext, demo: gr.Blocks, v: CompareView) -> None:
    """Connect the Compare tab's events to its handlers (all private, admins only) and start the catalog watch."""
    private: dict[str, Any] = {"api_visibility": "private"}
    render_slot: dict[str, Any] = {"concurrency_id": "render", "concurrency_limit": 1}

    v.run.click(_form_handler(ctx, v, compare), v.form, v.compare_outputs, **private, **render_slot).success(
        None, v.link_box, None, js=_JS_SET_URL
    )
    v.per_side.change(bind(toggle_per_side, ctx), v.per_side, v.side_row, **private)
    v.checkpoints.change(bind(side_pickers, ctx, v), v.checkpoints, list(v.side), **private)
    v.checkpoints.input(
        bind(offer_presets, ctx, v),
        [v.checkpoints, v.preset, *v.side],
        [v.preset, *v.side, v.preset_note],
        **private,
    )
    v.enh_checkpoint.input(bind(offer_enh_presets, ctx), [v.enh_checkpoint, v.enh_preset], v.enh_preset, **private)
    v.add_run.click(
        bind(add_old_renders, ctx, v),
        [v.add_name, v.add_folder, v.add_zip, v.add_notes, v.checkpoints],
        [v.add_result, v.checkpoints],
        **private,
    )
    v.zoom_run.click(bind(zoom_overlay, ctx), [v.zoom_from, v.zoom_to], v.overlay, **private)
    v.zoom_all.click(lambda: (None, None), None, [v.zoom_from, v.zoom_to], queue=False, **private).then(
        bind(zoom_overlay, ctx), [v.zoom_from, v.zoom_to], v.overlay, **private
    )
    demo.load(bind(catalog_note, ctx), None, v.catalog_box, **private)
    v.catalog_timer.tick(bind(catalog_note, ctx), None, v.catalog_box, show_progress="hidden", **private)
    watch_catalog(ctx)
    demo.load(bind(load_page, ctx, v), None, v.load_outputs, **private).then(
        _form_handler(ctx, v, compare_from_link), v.form, v.compare_outputs, **private, **render_slot
    ).success(None, v.link_box, None, js=_JS_SET_URL)
    v.enh_run.click(
        bind(enhancement_diff, ctx, v),
        [v.reference, v.sentence, v.custom_text, v.enh_checkpoint, v.enh_preset, v.take],
        v.enh_outputs,
        **private,
        **render_slot,
    )
