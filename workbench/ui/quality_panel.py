"""Flagged takes panel (admins): takes the quality checks flag, and one click for the next take.

Lists every measured clip that :mod:`workbench.quality` flags against its checkpoint's
other clips (a long silence, clipping, a duration far from the expected, low DNSMOS or
speaker similarity), with the reasons. **Regenerate** renders the lowest free take of
that request with the next seed and shows whether the new take is flagged too. Clips
are measured when they are compared or rendered in a batch, so the list grows as the
team works.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ..errors import WorkbenchError
from ..quality import Assessment, QualityStore, regenerate
from ..render import RenderRequest
from .common import AppContext, bind, get_renderer, require_admin, show_error

COLUMNS = ["checkpoint", "reference", "sentence", "preset", "take", "why flagged", "takes rendered"]


def get_quality_store(ctx: AppContext) -> QualityStore:
    """The app's one :class:`QualityStore`, beside the renderer's cache (``ctx.services.quality``)."""
    return ctx.services.quality


def _label(a: Assessment) -> str:
    r = a.request
    what = r.get("sentence") or "custom text"
    return f"{r['checkpoint']} · {r['reference']} · {what} · {r['enhancement']} · take {r['take']}"


def _takes(ctx: AppContext, a: Assessment) -> str:
    try:
        return str(len(get_renderer(ctx).takes(RenderRequest.from_dict(a.request))))
    except WorkbenchError:  # the checkpoint or sentence left the catalog
        return "not in the catalog now"


def flagged_view(ctx: AppContext) -> tuple[str, pd.DataFrame, gr.Dropdown]:
    """Summary, table and picker of every flagged take in the store."""
    flagged = get_quality_store(ctx).flagged()
    rows = [
        {
            "checkpoint": a.request["checkpoint"],
            "reference": a.request["reference"],
            "sentence": a.request.get("sentence") or "custom text",
            "preset": a.request["enhancement"],
            "take": a.request["take"],
            "why flagged": a.reasons,
            "takes rendered": _takes(ctx, a),
        }
        for a in flagged
    ]
    summary = (
        f"{len(flagged)} flagged take(s) among the measured clips. Pick one and regenerate it to hear a new take."
        if flagged
        else "No flagged takes among the measured clips (clips are measured when compared or batch-rendered)."
    )
    picker = gr.Dropdown(choices=[(_label(a), a.key) for a in flagged], value=flagged[0].key if flagged else None)
    return summary, pd.DataFrame(rows, columns=COLUMNS), picker


def list_flagged(ctx: AppContext, request: gr.Request):
    """Handler: refresh the flagged-takes list."""
    require_admin(ctx, request)
    return flagged_view(ctx)


def regenerate_flagged(ctx: AppContext, key: str | None, request: gr.Request, progress=gr.Progress()):
    """Handler: render the next take of the flagged clip ``key`` and say whether it is flagged too."""
    require_admin(ctx, request)
    store = get_quality_store(ctx)
    chosen = next((a for a in store.flagged() if a.key == key), None)
    if chosen is None:
        raise gr.Error("Pick a flagged take first (refresh the list if it changed).")
    progress(0.1, desc=f"rendering the next take of {_label(chosen)}")
    try:
        clip, new = regenerate(store, get_renderer(ctx), chosen)
    except WorkbenchError as e:
        raise show_error(e) from None
    verdict = f"flagged too: {new.reasons}" if new.flagged else "not flagged"
    ovrl = new.metrics.get("dnsmos_ovrl")
    score = f" (DNSMOS OVRL {ovrl:.2f})" if ovrl is not None and ovrl == ovrl else ""
    result = f"Rendered **take {clip.request.take}** of {_label(chosen).rsplit(' · take', 1)[0]}: {verdict}{score}."
    summary, table, picker = flagged_view(ctx)
    return result, clip.path, summary, table, picker


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    """The Flagged takes panel on the Compare tab: list bad-take flags, regenerate the next take."""
    with gr.Accordion("Flagged takes (quality checks)", open=False):
        gr.Markdown(
            "Takes whose measurements fall outside their checkpoint's normal range: long silences, clipping, "
            "a duration far from the expected, DNSMOS or speaker similarity well below the checkpoint's other "
            "clips. **Regenerate** renders the next take (next seed) beside the old ones.",
            elem_classes="wb-muted",
        )
        with gr.Row():
            refresh = gr.Button("Refresh list", scale=1)
            pick = gr.Dropdown(label="Flagged take", choices=[], value=None, scale=4)
            go = gr.Button("Regenerate (next take)", variant="primary", scale=1)
        summary = gr.Markdown()
        table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, elem_classes="wb-table")
        result = gr.Markdown()
        player = gr.Audio(label="new take", type="filepath", interactive=False)
    refresh.click(bind(list_flagged, ctx), None, [summary, table, pick], api_visibility="private")
    go.click(
        bind(regenerate_flagged, ctx),
        pick,
        [result, player, summary, table, pick],
        api_visibility="private",
        concurrency_id="render",
        concurrency_limit=1,
    )
