"""Catalog panel: what the catalog holds and whether each entry can be used now."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ..catalog import catalog_summary
from .common import AppContext, bind, role_of

COLUMNS = ["kind", "id", "status", "detail"]


def catalog_rows(ctx: AppContext, request: gr.Request) -> pd.DataFrame:
    """One row per checkpoint/reference/sentence/preset with its availability.

    Raters get an empty table: checkpoint names stay out of their pages.
    """
    if role_of(ctx, request) != "admin":
        return pd.DataFrame(columns=COLUMNS)
    return pd.DataFrame(catalog_summary(ctx.catalog), columns=COLUMNS)


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    """The catalog panel on the Compare tab (checkpoints, references, availability)."""
    with gr.Accordion("Catalog", open=False):
        gr.Markdown(f"`{ctx.catalog.path.name}` — rows marked **demo** play bundled demo clips.")
        table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True)
    demo.load(bind(catalog_rows, ctx), None, table, api_visibility="private")
