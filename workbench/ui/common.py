"""What every tab shares: the app context (catalog, users, :class:`~workbench.services.Services`) and the role checks.

Roles decide what a person can reach. Without login the one local user is an admin.
With login, a rater reaches only the Blind A/B flow: Compare and Results handlers
call :func:`require_admin`, which refuses raters server-side (hiding a tab is not
authorization).
"""

from __future__ import annotations

import functools
import inspect
import logging
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from ..catalog import Catalog
from ..errors import WorkbenchError
from ..render import Renderer
from ..services import Services, build_services
from ..users import UserStore

if TYPE_CHECKING:
    from .guard import Guard, Limits  # guard imports this module

log = logging.getLogger(__name__)


@dataclass
class UiState:
    """What the tabs keep between events, for the life of the app (the services live in ``Services``).

    Fields are set by the module named beside them; folders are made on first use.
    """

    guard: Guard | None = None  # app.launch_options: the middleware's state (logins, sessions, quotas)
    temp_dir: Path | None = None  # guard.temp_dir: Gradio's cache and uploads for this data dir
    catalog_watch: threading.Thread | None = None  # compare.watch_catalog: the one watcher thread
    batch_cancel: threading.Event | None = None  # render_panel: the running batch's cancel switch
    # compare: each browser session's comparison on screen (zoom redraws from it), most recent last
    shown_comparisons: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    # results: summaries by (test, votes file state, include_admin), behind their lock
    results_cache: OrderedDict[tuple, Any] = field(default_factory=OrderedDict)
    results_lock: threading.Lock = field(default_factory=threading.Lock)
    _folders: dict[str, tempfile.TemporaryDirectory] = field(default_factory=dict, repr=False)
    _folders_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def folder(self, name: str) -> Path:
        """A private temporary folder for ``name`` (``compare``, ``results``), made once, removed at exit."""
        with self._folders_lock:
            if name not in self._folders:
                self._folders[name] = tempfile.TemporaryDirectory(prefix=f"workbench-{name}-")
            return Path(self._folders[name].name)


@dataclass
class AppContext:
    """Everything the UI needs, built once in ``app.py`` with :meth:`create`."""

    catalog: Catalog  # replaced by the live catalog on a good edit of the files
    votes_path: Path  # the vote CSV (system of record)
    data_dir: Path  # tests, served files, cache
    services: Services  # renderer, comparer, stores: one of each for the whole app
    users: UserStore | None = None  # None: no login, the local user is an admin
    device: str = "auto"
    share: bool = False  # behind the share tunnel, client addresses come in X-Forwarded-For
    limits: Limits | None = None  # idle logout, free-disk floor; None: the defaults
    state: UiState = field(default_factory=UiState)  # what the tabs keep between events

    @classmethod
    def create(
        cls,
        catalog: Catalog,
        *,
        votes_path: Path,
        data_dir: Path,
        users: UserStore | None = None,
        device: str = "auto",
        cluster: str | None = None,
        renderer: Renderer | None = None,
        **options: Any,
    ) -> AppContext:
        """Build the services (:func:`~workbench.services.build_services`) and the context around them.

        ``options`` are the remaining fields (``share``, ``limits``).
        """
        services = build_services(
            catalog, votes_path=votes_path, data_dir=data_dir, device=device, cluster=cluster, renderer=renderer
        )
        return cls(
            catalog=catalog,
            votes_path=Path(votes_path),
            data_dir=Path(data_dir),
            services=services,
            users=users,
            device=device,
            **options,
        )

    @property
    def auth_enabled(self) -> bool:
        return self.users is not None


def bind(fn: Callable, *bound) -> Callable:
    """``fn`` with its first arguments bound, as a handler gradio can inspect.

    Gradio injects ``gr.Request`` / ``gr.Progress`` by reading the handler's signature
    and type hints, which ``functools.partial`` hides (the request would arrive as None
    and, under login, every role check would refuse). Use ``bind(handler, ctx)``.
    """

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        return fn(*bound, *args, **kwargs)

    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[len(bound) :]
    handler.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]  # read by inspect
    return handler


def get_renderer(ctx: AppContext) -> Renderer:
    """The app's one :class:`~workbench.render.Renderer` (``ctx.services.renderer``)."""
    return ctx.services.renderer


def role_of(ctx: AppContext, request: gr.Request | None) -> str:
    """``admin`` or ``rater`` for the caller; raises ``gr.Error`` for an unknown caller."""
    if ctx.users is None:
        return "admin"
    name = getattr(request, "username", None) if request is not None else None
    role = ctx.users.role(name)
    if role is None:
        raise gr.Error("Please log in.")
    return role


def username(ctx: AppContext, request: gr.Request | None) -> str | None:
    """The logged-in user's name, or None when running without login."""
    if ctx.users is None:
        return None
    return getattr(request, "username", None) if request is not None else None


def require_admin(ctx: AppContext, request: gr.Request | None) -> None:
    """Refuse non-admins. Call first in every Compare/Results handler."""
    if role_of(ctx, request) != "admin":
        raise gr.Error("This part of the workbench is for admins; raters use the Blind A/B tab.")


def show_error(e: Exception) -> gr.Error:
    """Turn a workbench error into a ``gr.Error`` the user can act on (no traceback)."""
    if isinstance(e, WorkbenchError):
        # a routine mistake: one log line, not Gradio's default traceback on the console
        log.info("refused: %s", str(e).replace("\n", " | "))
        return gr.Error(str(e), print_exception=False)
    log.exception("unexpected error")
    return gr.Error(f"Unexpected error: {type(e).__name__}. The details are in the server log.")
