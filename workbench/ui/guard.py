"""The app's guard on a public link: one ASGI middleware in front of Gradio, and the login check.

What it does (the mechanisms live in :mod:`workbench.security`):

- **Login** (``auth`` given to ``launch``): refused with HTTP 429 "try again in N s"
  while the user name or the client address is locked out (:class:`LoginThrottle`),
  otherwise the scrypt check runs in a small thread pool (:class:`PasswordChecker`),
  never on the event loop that answers votes and pages.
- **Every request with a login cookie**: the cookie is dropped (Gradio then answers 401
  on every route: config, files, uploads, queue) once its user is removed, its password
  changed, or it was idle longer than ``idle_s`` (default 12 h).
- **Session binding**: a browser session (Gradio's ``session_hash``) belongs to the
  login that used it first; another login naming it gets 403 (queue, results stream,
  heartbeat, deep links). Deep links are off altogether (the app has none).
- **Raters**: no uploads, no API pages. Nobody may call a queued handler directly
  (``/gradio_api/run/predict`` would skip the queue's limits).
- **Quotas** on handlers that write to disk (:data:`QUOTAS`): token buckets per browser
  session and per user, and a free-space floor below which serving audio and rendering
  refuse (votes, a few hundred bytes, still go through).
- **Temp files**: Gradio's cache lives in the app's own private folder (:func:`temp_dir`,
  not the machine-wide ``gradio`` folder), swept by age and total size; when a page
  closes, its rater session's served copies (and Gradio's copies of them) are deleted
  at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import ipaddress
import json
import logging
import os
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import gradio as gr
from starlette.requests import cookie_parser

from .. import security
from ..errors import WorkbenchError
from ..security import LoginRefused, LoginThrottle, PasswordChecker, RateLimiter, SessionBook
from .common import AppContext

log = logging.getLogger(__name__)

API = "/gradio_api"
#: a refused login is answered after this long (s, or the lock's remaining time if shorter):
#: it costs the server nothing (a sleeping coroutine) and holds each attacking connection to
#: about one attempt per second instead of hundreds
TARPIT_S = 1.0
#: the client address of the request being handled (set by the middleware, read by the login check)
CLIENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("workbench_client", default=None)

#: handler name -> what it writes: ``start`` (a schedule and the first served copies),
#: ``serve`` (anonymous audio copies), ``vote`` (a CSV row); ``admin_*`` (plans, clips) only
#: meet the free-space floor. Limits per category in :class:`Limits`.
QUOTAS = {
    "start": "start",
    "next_trial": "serve",
    "change_previous": "serve",
    "vote": "vote",
    # admin-only handlers (a rater is refused by role before anything is written): only the
    # free-space floor, no rate limit, so an admin setting up several tests is never throttled
    "create_test": "admin_plan",
    "load_plan_file": "admin_plan",
    "open_test": "admin_render",
    "close_test": "admin_plan",
    "archive_test": "admin_plan",
    "delete_test": "admin_plan",
    "compare": "admin_render",
    "compare_from_link": "admin_render",
    "enhancement_diff": "admin_render",
    "batch_render": "admin_render",
    "regenerate_flagged": "admin_render",
    "add_old_renders": "admin_render",  # a zip unpacks to up to 2 GB
}
#: categories refused below the free-space floor
NEEDS_SPACE = {"start", "serve", "render", "admin_render"}


@dataclass
class Limits:
    """Quota settings. Buckets are (refill per second, burst). A person needs about 10 s per
    trial and starts a test a few times an hour; the serve and vote buckets are far above
    that (simulated raters in bench/ vote back to back), they stop scripted floods. Disk
    stays bounded anyway: a session's served copies are replaced trial by trial and the
    temp folder is swept by size.
    """

    idle_s: float = 12 * 3600.0  # a login cookie unused this long (s) is dropped
    min_free_bytes: int = security.MIN_FREE_BYTES
    max_upload_bytes: int = security.MAX_UPLOAD_BYTES  # admins only; raters cannot upload at all
    temp_max_bytes: int = security.TEMP_MAX_BYTES
    temp_max_age_s: float = security.TEMP_MAX_AGE_S
    sweep_every_s: float = 60.0
    per_session: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {
            "start": (1 / 10, 6),
            "serve": (5.0, 60),
            "vote": (10.0, 60),
        }
    )
    per_user: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {
            "start": (1 / 30, 12),
            "serve": (10.0, 120),
            "vote": (20.0, 120),
        }
    )


def temp_dir(ctx: AppContext) -> Path:
    """The app's own temp folder (Gradio's cache and uploads), private to this user.

    ``<system temp>/workbench-<uid>/<hash of the data dir>``: one folder per data dir,
    kept across restarts, 0700, not shared with other Gradio apps on the machine. Not
    under the data dir itself: every audio URL a rater gets contains this path, and the
    data dir's absolute path says where the server keeps its catalog.
    """
    if ctx.state.temp_dir is None:
        key = hashlib.sha256(str(Path(ctx.data_dir).resolve()).encode()).hexdigest()[:16]
        ctx.state.temp_dir = Path(tempfile.gettempdir()) / f"workbench-{os.getuid()}" / key
    return ctx.state.temp_dir


def use_private_temp(ctx: AppContext) -> Path:
    """Point Gradio's cache at :func:`temp_dir` (call before building the Blocks)."""
    folder = temp_dir(ctx)
    parent = folder.parent
    parent.mkdir(mode=0o700, exist_ok=True)
    st = parent.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():  # someone else's folder or a link
        raise WorkbenchError(f"{parent} is not a folder of this user; remove it or set TMPDIR elsewhere")
    parent.chmod(0o700)
    folder.mkdir(mode=0o700, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


class Guard:
    """The security state of one app: throttle, password pool, logins, sessions, quotas."""

    def __init__(self, ctx: AppContext, limits: Limits | None = None, *, behind_tunnel: bool = False):
        self.ctx = ctx
        self.limits = limits or Limits()
        self.behind_tunnel = behind_tunnel  # --share: every connection comes from the local tunnel client
        self.throttle = LoginThrottle()
        self.checker = PasswordChecker(self._verify) if ctx.users else None
        self.book = SessionBook(ctx.users.fingerprint if ctx.users else (lambda u: u), idle_s=self.limits.idle_s)
        self.session_buckets = {k: RateLimiter(*v) for k, v in self.limits.per_session.items()}
        self.user_buckets = {k: RateLimiter(*v) for k, v in self.limits.per_user.items()}
        self._last_sweep = 0.0
        self._sweeping = threading.Lock()
        self.counts = {"logins_checked": 0, "logins_refused": 0}  # for benchmarks

    @property
    def auth_on(self) -> bool:
        return self.ctx.users is not None

    def _verify(self, name: str, password: str) -> bool:
        assert self.ctx.users is not None  # the checker exists only with login on
        return self.ctx.users.verify(name, password)

    async def login(self, username: str, password: str) -> bool:
        """Gradio's ``auth`` callable: throttled, checked in the pool."""
        address = CLIENT.get()
        wait = self.throttle.wait_s(username, address)
        if wait > 0:
            self.counts["logins_refused"] += 1
            await asyncio.sleep(min(wait, TARPIT_S))
            raise _http_error(429, security.too_many(self.throttle.wait_s(username, address)))
        assert self.checker is not None  # Gradio calls login() only when auth is on
        try:
            ok = await self.checker.check(username, password)
        except LoginRefused as e:
            self.counts["logins_refused"] += 1
            raise _http_error(429, e) from None
        self.counts["logins_checked"] += 1
        if ok:
            self.throttle.succeeded(username, address)
            log.info("login: %r from %s", username, address or "?")
            return True
        lock_s = self.throttle.failed(username, address)
        if lock_s:
            log.warning(
                "login: failed attempt for user %r from %s; this user name and address are locked for %.0f s",
                username,
                address or "?",
                lock_s,
            )
        return False

    def maybe_sweep(self) -> None:
        """Sweep the temp folder in a thread, at most every ``sweep_every_s`` seconds."""
        now = time.monotonic()
        if now - self._last_sweep < self.limits.sweep_every_s or not self._sweeping.acquire(blocking=False):
            return
        self._last_sweep = now

        def work():
            try:
                n = security.sweep_folder(temp_dir(self.ctx), self.limits.temp_max_bytes, self.limits.temp_max_age_s)
                if n:
                    log.info("temp sweep: deleted %d files from %s", n, temp_dir(self.ctx))
            finally:
                self._sweeping.release()

        threading.Thread(target=work, name="temp-sweep", daemon=True).start()

    def quota(self, category: str, session_hash: str | None, user: str | None) -> str | None:
        """None if a call in ``category`` may go ahead, else the message to refuse it with."""
        if category in NEEDS_SPACE:
            free = min(security.free_bytes(self.ctx.data_dir), security.free_bytes(temp_dir(self.ctx)))
            if free < self.limits.min_free_bytes:
                log.error("disk: %.0f MB free under %s; refusing to serve or render", free / 1e6, self.ctx.data_dir)
                return (
                    "The server is almost out of disk space, so it cannot prepare audio right now. "
                    "Votes already given are safe; please tell the organiser and try again later."
                )
        waits = []
        if session_hash and category in self.session_buckets:
            waits.append(self.session_buckets[category].take(session_hash))
        if user and category in self.user_buckets:
            waits.append(self.user_buckets[category].take(user))
        wait = max([0.0, *waits])
        if wait > 0:
            return f"Too many requests from this page: please wait {max(1, round(wait))} s and try again."
        return None


def _http_error(status: int, e: LoginRefused):
    from fastapi import HTTPException

    return HTTPException(status_code=status, detail=str(e), headers={"Retry-After": str(int(e.retry_s))})


# ---------------------------------------------------------------------------- the middleware


def _is_loopback(host: str | None) -> bool:
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _reply(send, status: int, detail: str, headers: dict | None = None) -> None:
    body = json.dumps({"detail": detail, "error": detail}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


#: routes whose JSON body names a session (and, for the first three, a handler)
_BODY_ROUTES = (
    f"{API}/queue/join",
    f"{API}/run/",
    f"{API}/api/",
    f"{API}/call/",
    f"{API}/cancel",
    f"{API}/component_server",
)
_MAX_BODY = 4 << 20  # bytes of JSON we are willing to buffer to read its session hash
TOO_LARGE = (
    "This request is too large: the server takes at most 4 MB per request (a comment is at most 2000 characters)."
)


class GuardMiddleware:
    """Pure ASGI middleware (no Starlette base class: streaming responses pass through as is)."""

    def __init__(self, app, guard: Guard):
        self.app = app
        self.guard = guard

    def client_address(self, scope) -> str | None:
        """The caller's address. Uvicorn already replaced a loopback peer's address with the
        last one in ``X-Forwarded-For`` (what the share tunnel's proxy appends); a loopback
        address left behind the tunnel means the tunnel named nobody: no address then, so
        one locked "address" does not lock out everyone on the link.
        """
        peer = (scope.get("client") or (None,))[0]
        if self.guard.behind_tunnel and _is_loopback(peer):
            return None
        return peer

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        g = self.guard
        headers = _headers(scope)
        CLIENT.set(self.client_address(scope))
        path = scope.get("path", "")
        gapp = scope.get("app")
        g.maybe_sweep()
        if not g.auth_on:
            return await self._quotas_only(scope, receive, send, path, gapp, None)

        user, token = self._current_user(gapp, headers)
        if path.rstrip("/") == "/login" and scope.get("method") == "POST":
            address = CLIENT.get()
            wait = g.throttle.wait_s(None, address) if address else 0.0
            if wait > 0:  # a locked address: answer before reading the form, and slowly
                g.counts["logins_refused"] += 1
                await asyncio.sleep(min(wait, TARPIT_S))
                e = security.too_many(g.throttle.wait_s(None, address))
                return await _reply(send, 429, str(e), {"Retry-After": int(e.retry_s)})
            return await self.app(scope, receive, self._capture_login(gapp, send))
        role = g.ctx.users.role(user) if user and g.ctx.users is not None else None
        if path.startswith(f"{API}/deep_link"):
            return await _reply(send, 404, "Deep links are turned off on this server.")
        if role != "admin" and (
            path.startswith((f"{API}/info", f"{API}/openapi.json", "/docs", "/redoc", f"{API}/upload"))
            or path in ("/openapi.json",)
        ):
            what = "Uploads" if "upload" in path else "The API pages"
            status = 401 if user is None else 403
            return await _reply(send, status, f"{what} are for admins on this server.")
        # session binding: routes that name a session in the path or the query
        session_hash = None
        if path.startswith(f"{API}/heartbeat/"):
            session_hash = path.rsplit("/", 1)[-1]
        elif path.startswith(f"{API}/stream/"):
            session_hash = path[len(f"{API}/stream/") :].split("/")[0]
        elif path.startswith(f"{API}/queue/data"):
            session_hash = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash", [None])[0]
        if session_hash is not None:
            if user is None:
                return await _reply(send, 401, "Please log in.")
            if not g.book.claim(session_hash, user):
                return await _reply(send, 403, "This page session belongs to another login; reload the page.")
            return await self.app(scope, receive, send)
        if path.startswith(_BODY_ROUTES) and scope.get("method") == "POST":
            return await self._body_route(scope, receive, send, path, gapp, user)
        return await self.app(scope, receive, send)

    def _current_user(self, gapp, headers) -> tuple[str | None, str | None]:
        """The logged-in user of this request (None if none); drops a revoked or idle cookie."""
        cookies = cookie_parser(headers.get("cookie", ""))  # Starlette's parser, as Gradio reads them
        cookie_id = getattr(gapp, "cookie_id", None)
        tokens = getattr(gapp, "tokens", None)
        if cookie_id is None or tokens is None:
            return None, None
        for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            token = cookies.get(name)
            user = tokens.get(token) if token else None
            if token is None or user is None:
                continue
            why = self.guard.book.check(token, user)
            if why is None:
                return user, token
            tokens.pop(token, None)
            log.warning("login of %r ended: %s", user, why)
            return None, None
        return None, None

    def _capture_login(self, gapp, send):
        """Wrap ``send`` to note the cookie a successful login issues."""
        book = self.guard.book

        async def wrapped(message):
            if message["type"] == "http.response.start" and message.get("status") == 200:
                for k, v in message.get("headers", []):
                    if k.lower() != b"set-cookie":
                        continue
                    name, _, value = v.decode("latin-1").split(";")[0].partition("=")
                    user = getattr(gapp, "tokens", {}).get(value.strip())
                    if name.strip().startswith("access-token-") and user:
                        book.logged_in(value.strip(), user)
            await send(message)

        return wrapped

    async def _read_body(self, receive) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > _MAX_BODY:
                return None
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _body_route(self, scope, receive, send, path, gapp, user):
        body = await self._read_body(receive)
        if body is None:
            return await _reply(send, 413, TOO_LARGE)
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        session_hash = data.get("session_hash")
        if user is None:
            return await _reply(send, 401, "Please log in.")
        if isinstance(session_hash, str) and not self.guard.book.claim(session_hash, user):
            return await _reply(send, 403, "This page session belongs to another login; reload the page.")
        refusal = self._check_handler(path, gapp, data, user)
        if refusal:
            return await _reply(send, *refusal)
        return await self.app(scope, _replay(body), send)

    def _check_handler(self, path, gapp, data, user) -> tuple[int, str] | None:
        """Queue-skipping and quotas for the handler a join/predict body names."""
        if path.startswith((f"{API}/cancel", f"{API}/component_server")):
            return None
        fn = _handler(gapp, data)
        if fn is None:
            return None
        if path.startswith((f"{API}/run/", f"{API}/api/")) and getattr(fn, "queue", False):
            return 403, "This action goes through the queue; use the page."
        category = QUOTAS.get(getattr(fn, "name", None) or "")
        if category is None:
            return None
        message = self.guard.quota(category, data.get("session_hash"), user)
        if message is None:
            return None
        return (507 if "disk space" in message else 429), message

    async def _quotas_only(self, scope, receive, send, path, gapp, user):
        """Without login (one local user): only the queue rule and the disk floor."""
        if path.startswith(_BODY_ROUTES) and scope.get("method") == "POST":
            body = await self._read_body(receive)
            if body is None:
                return await _reply(send, 413, TOO_LARGE)
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                data = {}
            if isinstance(data, dict):
                refusal = self._check_handler(path, gapp, data, None)
                if refusal:
                    return await _reply(send, *refusal)
            return await self.app(scope, _replay(body), send)
        return await self.app(scope, receive, send)


def _handler(gapp, data: dict):
    idx = data.get("fn_index")
    blocks = gapp.get_blocks() if gapp is not None and hasattr(gapp, "get_blocks") else None
    if blocks is None or not isinstance(idx, int):
        return None
    return blocks.fns.get(idx)


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # like a client that sent everything and waits

    return receive


# ---------------------------------------------------------------------------- wiring


def close_session_on_unload(ctx: AppContext, demo: gr.Blocks) -> None:
    """When a page closes (Gradio's heartbeat ends), close its rater sessions: their served
    copies, and Gradio's cached copies of them, are deleted at once.
    """
    from ..abtest import RaterSession

    def on_unload(request: gr.Request):
        app = getattr(demo, "server_app", None)
        h = getattr(request, "session_hash", None)
        holder = getattr(app, "state_holder", None)
        if holder is None or h is None or h not in holder:
            return
        for value in list(holder[h].state_data.values()):
            if isinstance(value, RaterSession):
                names = [str(n) for n in dict(getattr(value, "names", None) or {}).values()]
                value.close()  # deletes the served copies of its current trial
                for name in names:
                    for copy in temp_dir(ctx).glob(f"*/{name}"):
                        copy.unlink(missing_ok=True)

    demo.unload(on_unload)


def launch_kwargs(ctx: AppContext, guard: Guard) -> dict:
    """``launch()`` arguments for the guard: login check, middleware, API link hidden under login."""
    from starlette.middleware import Middleware

    out: dict = {"app_kwargs": {"middleware": [Middleware(GuardMiddleware, guard=guard)]}}
    if ctx.users is not None:
        out["auth"] = guard.login
        out["footer_links"] = ["gradio", "settings"]  # no "Use via API" link (raters are refused it anyway)
    return out
