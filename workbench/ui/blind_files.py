"""The route that delivers blind-test audio to raters, and counts every delivery.

``GET /wb/clip/<name>`` answers a served copy (see :mod:`workbench.abtest.serve`) to the
rater it was made for, and only while its trial is on screen; each answer is counted,
so a vote can be refused when a clip never reached the rater, and the counts go into
the vote row. Anything else gets the same plain 404, whether the name never existed,
belongs to another login or was already answered, so the route tells nothing.

The route is added to Gradio's FastAPI app through ``launch(app_kwargs={"routes": ...})``
(see :func:`routes` and ``app.launch_options``).
"""

from __future__ import annotations

from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.routing import APIRoute
from starlette.requests import Request

from ..abtest.serve import CLIP_ROUTE
from .common import AppContext


def login_of(request: Request) -> str | None:
    """The user logged in to Gradio on this request (its login cookie), else None."""
    app = request.app
    cookie_id = getattr(app, "cookie_id", None)
    if cookie_id is None:
        return None
    token = request.cookies.get(f"access-token-{cookie_id}") or request.cookies.get(
        f"access-token-unsecure-{cookie_id}"
    )
    return getattr(app, "tokens", {}).get(token) if token else None


def routes(ctx: AppContext) -> list[APIRoute]:
    """The blind test's own routes, for ``FastAPI(routes=...)``."""
    from .blind import services

    def clip(name: str, request: Request):
        user = login_of(request) if ctx.auth_enabled else None
        if ctx.auth_enabled and user is None:
            return PlainTextResponse("Please log in.", status_code=401)
        path = services(ctx).served.deliver(name, user)
        if path is None:
            return PlainTextResponse("Not found.", status_code=404)
        return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "no-store"})

    return [APIRoute(f"/{CLIP_ROUTE}/{{name}}", clip, methods=["GET"], include_in_schema=False)]
