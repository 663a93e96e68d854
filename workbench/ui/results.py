"""Results tab (placeholder until its feature lands): shows the catalog it will use."""

from __future__ import annotations

import gradio as gr

from .common import AppContext


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    gr.Markdown("Coming soon.")
