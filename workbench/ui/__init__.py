"""The Gradio UI: one module per tab, each only wiring (layout + short handlers).

Tabs hold no catalog names in the page itself: choices are filled by ``demo.load``
handlers that check the caller's role, so a rater's page never carries them.
"""

from __future__ import annotations

import gradio as gr

from . import agreement_panel, blind, blind_admin, catalog_panel, compare, guard, quality_panel, render_panel, results
from .common import AppContext, role_of

TAB_IDS = ("compare", "blind", "results")


def theme() -> gr.themes.Base:
    """Gradio's default theme with its bold text drawn from complete font files.

    The semibold (weight 600: buttons, headings) Source Sans Pro and IBM Plex Mono files
    that Gradio bundles hold only a Cyrillic subset (plus "A" and "B" for the sans), so in
    semibold text those letters came from Source Sans Pro and every other letter from the
    system's fallback font. Declaring weights 400 and 700 draws it from the complete bold files.
    """
    return gr.themes.Default(
        font=(gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)), "ui-sans-serif", "system-ui", "sans-serif"),
        font_mono=(gr.themes.LocalFont("IBM Plex Mono", weights=(400, 700)), "ui-monospace", "Consolas", "monospace"),
    )


CSS = """
.wb-title h1 {margin-bottom: 0}
.wb-muted {opacity: .75; font-size: .9em}
.wb-error {border-left: 4px solid #d62728; padding: .3em .8em; background: rgba(214, 39, 40, .08)}
.wb-empty {border: 1px dashed var(--border-color-primary); border-radius: 8px; padding: 1.2em}
/* phones: tables scroll sideways instead of squeezing columns into letters; figures use the full
   width (and are drawn 4.2 inches wide for a phone, see workbench.plots.NARROW_IN) */
@media (max-width: 640px) {
  /* every table: columns keep a readable width (Gradio sets fitted widths inline) and scroll */
  .table-wrap th, .table-wrap td {min-width: 6em !important; max-width: 16em !important; width: auto !important}
  .table-wrap th .header.text {white-space: nowrap}
  .wb-figure img {width: 100% !important; height: auto !important; object-fit: contain}
  .wb-figure .image-container, .wb-figure .image-frame {height: auto !important}
  /* the fullscreen/download buttons get a line of their own instead of covering the title */
  .wb-figure .icon-button-wrapper {position: static !important; width: max-content; margin: 0 0 4px auto !important}
}
"""


def build_app(ctx: AppContext) -> gr.Blocks:
    """Build the whole app (not launched)."""
    guard.use_private_temp(ctx)  # Gradio's cache under the data dir, not the machine-wide temp folder
    with gr.Blocks(title="Listening workbench", analytics_enabled=False, delete_cache=(900, 3600)) as demo:
        gr.Markdown("# Listening workbench", elem_classes="wb-title")
        # With login, Compare and Results start hidden and the page opens on Blind A/B; the
        # load handler reveals them to admins. (Gradio 6 shows a tab that an update makes
        # visible, but does not hide one that an update makes invisible.)
        open_to_all = not ctx.auth_enabled  # no login: the one local user is an admin
        with gr.Tabs(selected=None if open_to_all else "blind") as tabs:
            with gr.Tab("Compare", id="compare", visible=open_to_all) as compare_tab:
                catalog_panel.build(ctx, demo)
                render_panel.build(ctx, demo)
                compare.wire(ctx, demo, compare.build())
                quality_panel.build(ctx, demo)
            with gr.Tab("Blind A/B", id="blind"), gr.Column(elem_id=blind.ROOT_ID):
                rater_view = blind.build()
                admin_view = blind_admin.build(rater_test=rater_view.test)
                blind_admin.wire(ctx, demo, admin_view)
                blind.wire(ctx, demo, rater_view)
            with gr.Tab("Results", id="results", visible=open_to_all) as results_tab:
                results.wire(ctx, demo, results.build())
                agreement_panel.build(ctx, demo)
        if ctx.auth_enabled:
            # A wrapper, not functools.partial: gradio finds gr.Request through the type hints.
            def admin_tabs(request: gr.Request):
                return _admin_tabs(ctx, request)

            demo.load(admin_tabs, None, [compare_tab, results_tab, tabs], api_visibility="private")
        guard.close_session_on_unload(ctx, demo)
    return demo


def _admin_tabs(ctx: AppContext, request: gr.Request):
    """Reveal Compare and Results to admins and open the tab the URL names (``?tab=``), else Compare."""
    if role_of(ctx, request) != "admin":
        return gr.Tab(visible=False), gr.Tab(visible=False), gr.Tabs(selected="blind")
    wanted = str(dict(getattr(request, "query_params", None) or {}).get("tab", ""))
    return gr.Tab(visible=True), gr.Tab(visible=True), gr.Tabs(selected=wanted if wanted in TAB_IDS else "compare")
