"""Batch render panel (admins): render a checkpoints x references x sentences x presets matrix.

Rendered clips land in the shared cache, so the Compare and Blind A/B tabs play them
without waiting. The selectors are filled by ``demo.load`` for admins only: a rater's
page never carries checkpoint names.
"""

from __future__ import annotations

import threading

import gradio as gr
import pandas as pd

from ..comparison import preset_offer
from ..errors import WorkbenchError
from ..quality import assess_many
from ..render import Clip, expand_matrix, manifest_row
from .common import AppContext, bind, get_renderer, require_admin, role_of, show_error
from .quality_panel import get_quality_store

COLUMNS = [
    "checkpoint",
    "reference",
    "sentence",
    "enhancement",
    "take",
    "status",
    "source",
    "duration_s",
    "flags",
    "error",
]
#: most clips one click may render (a bigger matrix belongs in ``python -m workbench render``)
MAX_BATCH = 2000


def panel_choices(ctx: AppContext, request: gr.Request):
    """Selector choices: everything in the catalog for admins, nothing for raters."""
    if role_of(ctx, request) != "admin":
        return tuple(gr.CheckboxGroup(choices=[], value=[]) for _ in range(4))
    cat = ctx.catalog
    return (
        gr.CheckboxGroup(choices=list(cat.checkpoints), value=list(cat.checkpoints)),
        gr.CheckboxGroup(choices=list(cat.references), value=list(cat.references)),
        gr.CheckboxGroup(choices=list(cat.sentences), value=list(cat.sentences)),
        gr.CheckboxGroup(choices=preset_offer(cat).choices, value=["none"]),  # only presets that can run
    )


def batch_render(
    ctx: AppContext,
    checkpoints: list[str],
    references: list[str],
    sentences: list[str],
    presets: list[str],
    takes: float | None,
    request: gr.Request,
    progress=gr.Progress(),
) -> tuple[str, pd.DataFrame]:
    """Render the selected matrix into the cache; one table row per clip, failures included."""
    require_admin(ctx, request)
    try:
        reqs = expand_matrix(
            ctx.catalog,
            checkpoints=list(checkpoints or []),
            references=list(references or []),
            sentences=list(sentences or []),
            enhancements=list(presets or []),
            takes=int(takes or 1),
        )
        if len(reqs) > MAX_BATCH:
            raise WorkbenchError(
                f"{len(reqs)} clips is more than {MAX_BATCH} at once; select fewer or use `python -m workbench render`"
            )
    except WorkbenchError as e:
        raise show_error(e) from None
    # one batch at a time (concurrency_id "render"), so one cancel switch serves the app
    cancel = ctx.state.batch_cancel = threading.Event()
    try:
        results = get_renderer(ctx).render_many(
            reqs, progress=lambda frac, label: progress(frac, desc=label), cancel=cancel
        )
    finally:
        if ctx.state.batch_cancel is cancel:
            ctx.state.batch_cancel = None
    rows = [manifest_row(req, res) for req, res in zip(reqs, results, strict=True)]
    ok_clips = [r for r in results if isinstance(r, Clip)]
    flags = {a.key: a.reasons for a in assess_many(get_quality_store(ctx), ctx.catalog, ok_clips)}
    for row in rows:
        row["flags"] = flags.get(row["key"], "")
    ok = sum(isinstance(r, Clip) for r in results)
    cached = sum(isinstance(r, Clip) and r.from_cache for r in results)
    skipped = sum(not isinstance(r, Clip) and "cancelled before it was rendered" in str(r) for r in results)
    summary = f"{ok} of {len(reqs)} clips ready ({cached} were already in the cache); {len(reqs) - ok} failed."
    if skipped:
        summary += f" Cancelled: {skipped} were not rendered."
    return summary, pd.DataFrame(rows, columns=COLUMNS)


def cancel_batch(ctx: AppContext, request: gr.Request) -> str:
    """Stop the running batch: clips being rendered now finish (one per worker), the rest are skipped."""
    require_admin(ctx, request)
    cancel = ctx.state.batch_cancel
    if cancel is None or cancel.is_set():
        return "No batch is running."
    cancel.set()
    return "Cancelling: the clips being rendered now finish, the rest are skipped."


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    """The batch render panel on the Compare tab."""
    with gr.Accordion("Batch render", open=False):
        gr.Markdown(
            "Render every combination into the cache (failures are listed, the rest goes on). "
            "Already rendered clips are reused.",
            elem_classes="wb-muted",
        )
        with gr.Row():
            cks = gr.CheckboxGroup(label="Checkpoints", choices=[])
            refs = gr.CheckboxGroup(label="References", choices=[])
        with gr.Row():
            sents = gr.CheckboxGroup(label="Sentences", choices=[])
            presets = gr.CheckboxGroup(label="Enhancement", choices=[])
        with gr.Row():
            takes = gr.Number(label="Takes", value=1, minimum=1, maximum=20, precision=0)
            go = gr.Button("Render batch", variant="primary")
            stop = gr.Button("Cancel batch", variant="secondary")
        summary = gr.Markdown()
        table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True)
    demo.load(bind(panel_choices, ctx), None, [cks, refs, sents, presets], api_visibility="private")
    go.click(
        bind(batch_render, ctx),
        [cks, refs, sents, presets, takes],
        [summary, table],
        api_visibility="private",
        concurrency_id="render",
        concurrency_limit=1,
    )
    # outside the render slot, so it runs while the batch holds it
    stop.click(bind(cancel_batch, ctx), None, summary, api_visibility="private", concurrency_id="render-cancel")
