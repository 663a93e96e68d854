"""Results panel (admins): whether the measurements agree with the ears.

For the votes of a test (or all votes), the share of decisive votes where the clip with
the better DNSMOS OVRL, and separately the better speaker similarity, was the one the
rater preferred, per pair with enough votes and overall, with Wilson intervals
(:mod:`workbench.agreement`), and a note on whether the metric could stand in for
listening. Clips are measured the first time (DNSMOS about 0.1-0.2x real time each), then
read from the quality store.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from .. import agreement
from ..errors import WorkbenchError
from ..quality import clip_metrics
from ..votes import effective_votes, read_votes
from .common import AppContext, bind, get_renderer, require_admin, role_of, show_error
from .quality_panel import get_quality_store

ALL = "all votes"


def _votes(ctx: AppContext) -> pd.DataFrame:
    if not ctx.votes_path.is_file():
        return pd.DataFrame()
    return effective_votes(read_votes(ctx.votes_path))


def test_choices(ctx: AppContext, request: gr.Request):
    """Handler: the tests that have votes (admins only; raters get nothing, and no error on their page)."""
    if role_of(ctx, request) != "admin":
        return gr.Dropdown(choices=[], value=None)
    try:
        df = _votes(ctx)
    except WorkbenchError as e:
        raise show_error(e) from None
    tests = sorted(set(df["test_id"])) if len(df) else []
    return gr.Dropdown(choices=[ALL, *tests], value=ALL)


def measure_agreement(
    ctx: AppContext, test_id: str | None, include_admin: bool, request: gr.Request, progress=gr.Progress()
):
    """Handler: agreement of DNSMOS OVRL and speaker similarity with the votes, as markdown and a table."""
    require_admin(ctx, request)
    try:
        df = _votes(ctx)
        if len(df) and test_id and test_id != ALL:
            df = df[df["test_id"] == test_id]
        progress(0.1, desc="measuring the voted clips")
        lookup = clip_metrics(get_quality_store(ctx), get_renderer(ctx))
        parts = agreement.agreement_report(df, lookup, include_admin=bool(include_admin))
    except WorkbenchError as e:
        raise show_error(e) from None
    notes = "\n".join(f"- {note}" for _, _, note in parts)
    tables = [t.assign(metric=name) for name, t, _ in parts]
    table = pd.concat(tables, ignore_index=True)[["metric", *agreement.AGREEMENT_COLUMNS]].round(3)
    return (
        f"{notes}\n\n<span class='wb-muted'>Decisive votes whose two clips were both measured and differ; pairs "
        f"with fewer than {agreement.MIN_VOTES} such votes count only in 'all pairs'.</span>",
        table,
    )


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    """The metric-vote agreement panel on the Results tab."""
    with gr.Accordion("Do the measurements agree with the ears? (DNSMOS, speaker similarity vs votes)", open=False):
        with gr.Row():
            test = gr.Dropdown(label="Votes of", choices=[], value=None, scale=3)
            include = gr.Checkbox(label="Include admins' votes", value=False, scale=1)
            go = gr.Button("Measure agreement", scale=1)
        notes = gr.Markdown()
        table = gr.Dataframe(interactive=False, wrap=True, elem_classes="wb-table")
    demo.load(bind(test_choices, ctx), None, test, api_visibility="private", show_progress="hidden")
    go.click(
        bind(measure_agreement, ctx),
        [test, include],
        [notes, table],
        api_visibility="private",
        concurrency_id="render",
        concurrency_limit=1,
    )
