"""Results tab (admins only): statistics of the blind A/B votes, refreshed as votes arrive.

Only wiring: every number comes from :func:`workbench.report.build_summary` and every
table from :func:`workbench.report.report_tables`, the same functions behind
``python -m workbench report``, so the tab and the CLI agree.

The page config holds no test or checkpoint name: the test list and all content are
filled by handlers that call :func:`require_admin` first (the page-load handler returns
nothing for raters, without an error popup). A timer (every :data:`REFRESH_S` seconds,
started only for admins) re-reads the vote CSV when its size or modification time
changed and otherwise sends nothing.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from .. import report
from ..comparison import compare_link
from ..errors import WorkbenchError
from .common import AppContext, bind, require_admin, show_error

log = logging.getLogger(__name__)

#: seconds between checks of the vote file while live refresh is on
REFRESH_S = 5.0
#: summaries kept in memory (per file state and test)
_CACHE_SIZE = 8
_ALL = ""  # dropdown value for all votes

#: which tables each sub-tab shows (keys of report.report_tables)
SECTIONS = {
    "overview": ("pairs", "pairs_screened", "ranking", "heatmap"),
    "breakdowns": ("by_reference", "by_sentence", "by_clip", "by_rater"),
    "reasons": ("reasons", "reasons_by_reference"),
    "raters": ("raters", "position", "consistency", "controls", "agreement"),
}


# --------------------------------------------------------------------------- helpers


def compare_href(selection: dict) -> str:
    """Relative URL opening ``selection`` in the Compare tab (the query the Compare tab restores)."""
    return compare_link(
        selection["reference"], selection["sentence"], selection["checkpoints"], preset=selection["preset"], take=1
    )


def file_state(path: Path) -> tuple[int, int] | None:
    """``(mtime_ns, size)`` of the vote file, or None when it does not exist yet."""
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _cache(ctx: AppContext) -> tuple[threading.Lock, OrderedDict]:
    return ctx.state.results_lock, ctx.state.results_cache


def summary_for(ctx: AppContext, test_id: str | None, include_admin: bool = False):
    """The summary of the current vote file for one test (or all), cached per file state.

    A vote file that does not exist yet gives an empty summary (no votes so far).
    ``include_admin`` counts admins' votes too (left out by default).
    """
    test_id = test_id or None
    include_admin = bool(include_admin)
    key = (str(ctx.votes_path), file_state(ctx.votes_path), test_id, include_admin)
    lock, cache = _cache(ctx)
    with lock:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    summary = report.build_summary(
        ctx.votes_path,
        test_id,
        plans_dir=Path(ctx.data_dir) / "tests",
        include_admin=include_admin,
        missing_ok=True,
    )
    with lock:
        cache[key] = summary
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return summary


def test_choices(ctx: AppContext, summary) -> list[tuple[str, str]]:
    """Dropdown choices: all votes, then stored tests (newest first), then other tests seen in votes."""
    choices = [(report.ALL_VOTES, _ALL)]
    seen = set()
    try:
        for plan in ctx.services.plans.list():
            choices.append((f"{plan.title} ({plan.test_id})" if plan.title else plan.test_id, plan.test_id))
            seen.add(plan.test_id)
    except (WorkbenchError, OSError) as e:
        log.warning("cannot list stored tests: %s", e)
    choices += [(t, t) for t in summary.tests if t not in seen]
    return choices


def sections_html(summary) -> dict[str, str]:
    """HTML for each sub-tab: the report's tables with every linked cell opening Compare."""
    tables = {t.key: t for t in report.report_tables(summary)}
    out = {}
    for name, keys in SECTIONS.items():
        parts = []
        for key in keys:
            t = tables.get(key)
            if t is None:  # e.g. no rater flagged: no "without flagged raters" table
                continue
            parts.append(f"<h3>{_esc(t.title)}</h3>")
            parts.append(report.html_table(t, compare_href))
            if t.note:
                parts.append(f'<p class="wb-note">{_esc(t.note)}</p>')
        out[name] = "\n".join(parts)
    return out


def _esc(text: str) -> str:
    import html

    return html.escape(text)


def status_line(summary) -> str:
    """One line on what the tables show: the file, its rows, superseded rows, effective votes."""
    extra = summary.extra
    if not extra.get("rows"):
        return f"No votes in `{extra.get('path', '')}` yet."
    return (
        f"`{extra.get('path', '')}`: {extra.get('rows', 0)} rows, {extra.get('superseded', 0)} superseded; "
        f"showing {summary.n_votes} effective votes."
    )


def render(ctx: AppContext, test_id: str | None, include_admin: bool = False) -> list:
    """Every output of the tab for one selection, in the order of :attr:`ResultsView.outputs`."""
    summary = summary_for(ctx, test_id, include_admin)
    figs = report.figures(summary)
    html_parts = sections_html(summary)
    choices = test_choices(ctx, summary)
    value = test_id if test_id in {v for _, v in choices} else _ALL
    return [
        gr.Dropdown(choices=choices, value=value),
        status_line(summary),
        "\n".join(f"- {line}" for line in report.headline(summary)),
        figs["win_rates"],
        figs["ranking"],
        figs["heatmap"],
        figs["reasons"],
        html_parts["overview"],
        html_parts["breakdowns"],
        html_parts["reasons"],
        html_parts["raters"],
        _shown_key(ctx, test_id, include_admin),
    ]


def _shown_key(ctx: AppContext, test_id: str | None, include_admin: bool) -> tuple:
    """What a page has drawn: file, its state, selection (the timer redraws when it differs)."""
    return (str(ctx.votes_path), file_state(ctx.votes_path), test_id or _ALL, bool(include_admin))


_N_OUTPUTS = 12  # len(ResultsView.outputs): the handlers skip this many when nothing changed


# --------------------------------------------------------------------------- handlers


def on_load(ctx: AppContext, request: gr.Request):
    """Page load: fill the tab and start the timer for admins; nothing at all for raters."""
    try:
        require_admin(ctx, request)
    except gr.Error:
        return [gr.skip()] * (_N_OUTPUTS + 1)
    try:
        return [*render(ctx, _ALL), gr.Timer(active=True)]
    except WorkbenchError as e:
        raise show_error(e) from None


def on_select(ctx: AppContext, test_id: str | None, request: gr.Request, include_admin: bool = False):
    """A test was picked, admins' votes toggled or Refresh clicked: recompute and redraw."""
    require_admin(ctx, request)
    try:
        return render(ctx, test_id, include_admin)
    except WorkbenchError as e:
        raise show_error(e) from None


def on_tick(ctx: AppContext, test_id: str | None, shown, request: gr.Request, include_admin: bool = False):
    """Timer: redraw only when the vote file changed since this page last drew it.

    A file that cannot be read is reported once per change, not on every tick.
    """
    require_admin(ctx, request)
    now = _shown_key(ctx, test_id, include_admin)
    if now == (tuple(shown) if isinstance(shown, list) else shown):
        return [gr.skip()] * _N_OUTPUTS
    try:
        return render(ctx, test_id, include_admin)
    except WorkbenchError as e:
        gr.Warning(str(e))
        return [gr.skip()] * (_N_OUTPUTS - 1) + [now]


def on_live(ctx: AppContext, live: bool, request: gr.Request):
    """Turn live refresh on or off."""
    require_admin(ctx, request)
    return gr.Timer(active=bool(live))


def on_download(ctx: AppContext, test_id: str | None, request: gr.Request, include_admin: bool = False):
    """Write the self-contained HTML report of the current selection and offer it for download."""
    require_admin(ctx, request)
    try:
        summary = summary_for(ctx, test_id, include_admin)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_id or "all") or "all"
        path = report.write_html(summary, ctx.state.folder("results") / f"results-{name}.html")
    except WorkbenchError as e:
        raise show_error(e) from None
    return gr.File(value=str(path), visible=True)


# --------------------------------------------------------------------------- layout

#: table components: the report's table styles, scoped to the component; no click events
_HTML: dict[str, Any] = {"css_template": report.CSS_TABLES, "js_on_load": None, "padding": True}


@dataclass(frozen=True)
class ResultsView:
    """The Results tab's components by name: :func:`build` makes them, :func:`wire` connects them."""

    shown: gr.State  # the summary key on screen (redraw only when it changes)
    test: gr.Dropdown
    live: gr.Checkbox
    include: gr.Checkbox
    refresh: gr.Button
    make_report: gr.Button
    report_file: gr.File
    status: gr.Markdown
    headline: gr.Markdown
    win_plot: gr.Plot
    rank_plot: gr.Plot
    heat_plot: gr.Plot
    reason_plot: gr.Plot
    overview: gr.HTML
    breakdowns: gr.HTML
    reasons: gr.HTML
    raters: gr.HTML
    timer: gr.Timer

    @property
    def outputs(self) -> list[Any]:
        """What the view handlers return, in their order (see :func:`render`)."""
        return [
            self.test,
            self.status,
            self.headline,
            self.win_plot,
            self.rank_plot,
            self.heat_plot,
            self.reason_plot,
            self.overview,
            self.breakdowns,
            self.reasons,
            self.raters,
            self.shown,
        ]


def build() -> ResultsView:
    """Lay out the Results tab inside the current ``gr.Tab``; nothing is connected yet."""
    shown = gr.State(None)
    with gr.Row():
        # choices arrive from the load handler (admins only); custom values are checked by the handlers
        test = gr.Dropdown(label="Test", choices=[], value=None, interactive=True, allow_custom_value=True, scale=4)
        with gr.Column(scale=1, min_width=160):
            live = gr.Checkbox(label=f"Live refresh (every {REFRESH_S:g} s)", value=True)
            include = gr.Checkbox(label="Include admins' votes", value=False)
        refresh = gr.Button("Refresh", scale=0, min_width=100)
        make_report = gr.Button("HTML report", scale=0, min_width=150)  # one line in bold
    report_file = gr.File(label="Report (opens offline)", visible=False, interactive=False)
    status = gr.Markdown(elem_classes="wb-muted")
    headline = gr.Markdown()
    with gr.Row():
        win_plot = gr.Plot(label="Head to head", show_label=False)
        rank_plot = gr.Plot(label="Ranking", show_label=False)
    with gr.Row():
        heat_plot = gr.Plot(label="Score by reference", show_label=False)
        reason_plot = gr.Plot(label="Reason tags", show_label=False)
    with gr.Tabs():
        with gr.Tab("Head to head"):
            overview = gr.HTML(**_HTML)
        with gr.Tab("Breakdowns"):
            breakdowns = gr.HTML(**_HTML)
        with gr.Tab("Reasons"):
            reasons = gr.HTML(**_HTML)
        with gr.Tab("Raters"):
            raters = gr.HTML(**_HTML)
    timer = gr.Timer(REFRESH_S, active=False)
    return ResultsView(
        shown=shown,
        test=test,
        live=live,
        include=include,
        refresh=refresh,
        make_report=make_report,
        report_file=report_file,
        status=status,
        headline=headline,
        win_plot=win_plot,
        rank_plot=rank_plot,
        heat_plot=heat_plot,
        reason_plot=reason_plot,
        overview=overview,
        breakdowns=breakdowns,
        reasons=reasons,
        raters=raters,
        timer=timer,
    )


def wire(ctx: AppContext, demo: gr.Blocks, v: ResultsView) -> None:
    """Connect the Results tab's events to its handlers (all private, admins only)."""
    outputs = v.outputs
    private: dict[str, Any] = {"api_visibility": "private"}
    picked = [v.test, v.include]
    demo.load(bind(on_load, ctx), None, [*outputs, v.timer], show_progress="hidden", **private)
    v.test.input(bind(on_select, ctx), picked, outputs, **private)
    v.include.input(bind(on_select, ctx), picked, outputs, **private)
    v.refresh.click(bind(on_select, ctx), picked, outputs, **private)
    v.timer.tick(bind(on_tick, ctx), [v.test, v.shown, v.include], outputs, show_progress="hidden", **private)
    v.live.change(bind(on_live, ctx), v.live, v.timer, **private)
    v.make_report.click(bind(on_download, ctx), picked, v.report_file, **private)
