"""Run the listening workbench: ``python app.py [--config PATH] [--share --auth users.json]``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

DEFAULT_USERS = "users.json"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python app.py`` (README.md lists every option; tests/test_docs.py checks)."""
    p = argparse.ArgumentParser(description="Listening workbench: compare and blind-test voice-clone checkpoints.")
    p.add_argument("--config", default="checkpoints.yaml", help="catalog file (default: checkpoints.yaml)")
    p.add_argument("--host", default="127.0.0.1", help="interface to serve on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--share", action="store_true", help="open a public Gradio link (requires --auth users)")
    p.add_argument(
        "--auth",
        metavar="FILE",
        default=None,
        help=f"users file enabling login (manage with `python -m workbench users`); --share uses {DEFAULT_USERS}",
    )
    p.add_argument("--votes", default="votes/votes.csv", help="vote CSV (default: votes/votes.csv)")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="override settings.device")
    p.add_argument(
        "--no-auth-i-know",
        action="store_true",
        help="serve a non-loopback --host without login (everyone who can reach it is an admin)",
    )
    p.add_argument(
        "--idle-hours", type=float, default=12.0, help="log out a login unused this long (hours, default: 12)"
    )
    p.add_argument(
        "--min-free-gb",
        type=float,
        default=1.0,
        help="refuse to render or serve audio below this much free disk (GB, default: 1; votes still work)",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=500.0,
        help="largest file an admin may upload, e.g. a zip of old renders (MB, default: 500; raters cannot upload)",
    )
    p.add_argument(
        "--cluster",
        default=None,
        metavar="ADDR",
        help="render on a Ray cluster: ray://HOST:PORT, HOST:PORT or auto; local renders in this process "
        "(default: settings.cluster)",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options of ``python app.py`` (``argv``: None reads ``sys.argv``)."""
    return build_parser().parse_args(argv)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_context(args: argparse.Namespace):
    """Load the catalog and users and build the app's services; raise a WorkbenchError with a clear message."""
    from workbench.catalog import load_catalog
    from workbench.errors import AuthError
    from workbench.synth import limit_loaded_models
    from workbench.ui.common import AppContext
    from workbench.ui.guard import Limits
    from workbench.users import UserStore

    catalog = load_catalog(args.config)
    limit_loaded_models(catalog.settings.max_loaded_models)  # process-wide: one GPU, one budget of models
    users = None
    auth_file = args.auth or (DEFAULT_USERS if args.share else None)
    if auth_file:
        users = UserStore(auth_file)
        if not users.list():
            raise AuthError(
                f"{auth_file}: no users, so nobody could log in. Add one first: "
                f"python -m workbench users add NAME --role admin --file {auth_file}"
            )
    if args.share and users is None:
        raise AuthError("--share needs login: add users with `python -m workbench users add` and pass --auth FILE")
    if users is None and not is_loopback(args.host):
        if not args.no_auth_i_know:
            raise AuthError(
                f"--host {args.host} serves the network without login: everyone who can reach it would be an "
                "admin. Add users (python -m workbench users add NAME --role admin) and pass --auth users.json, "
                "or pass --no-auth-i-know if this network is trusted"
            )
        logging.getLogger("app").warning(
            "serving %s WITHOUT login (--no-auth-i-know): everyone who can reach it is an admin", args.host
        )
    return AppContext.create(
        catalog,
        votes_path=Path(args.votes),
        data_dir=catalog.settings.data_dir,
        users=users,
        device=args.device or catalog.settings.device,
        cluster=args.cluster,
        share=args.share,
        limits=Limits(
            idle_s=args.idle_hours * 3600,
            min_free_bytes=int(args.min_free_gb * 1e9),
            max_upload_bytes=int(args.max_upload_mb * 1e6),
        ),
    )


def limit_malloc_arenas(n: int = 2) -> None:
    """Cap glibc's heap arenas at ``n`` (call before the server starts its threads).

    glibc gives threads their own arenas (up to 8 per core) and keeps freed memory in
    each; a server rendering and answering votes on many threads then grows: resident
    memory rose 15-18% over 200 renders and 1,000 votes with the default, 4% with 2
    arenas (bench/bench_soak.py). A no-op where the C library is not glibc.
    """
    import ctypes

    m_arena_max = -8  # mallopt parameter number, from glibc's malloc.h
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").mallopt(m_arena_max, n)


def main(argv: list[str] | None = None) -> int:
    """Serve the app until interrupted; return the exit code (1: bad catalog, users or flags)."""
    limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from workbench.errors import WorkbenchError
    from workbench.security import restrict_new_files

    restrict_new_files()  # votes, schedules, users, temp files: 0600 in 0700 folders
    try:
        ctx = make_context(args)
    except WorkbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from workbench.security import make_private
    from workbench.ui import build_app

    make_private(ctx.votes_path.parent, ctx.votes_path, ctx.data_dir, Path(ctx.data_dir) / "tests")
    if ctx.users is not None:
        make_private(ctx.users.path)
    demo = build_app(ctx)
    from workbench.comparison import start_warm_up

    start_warm_up()  # first-use work (imports, JIT, speaker encoder, fonts) while the page opens
    demo.queue(default_concurrency_limit=8, api_open=False)  # no direct POSTs that skip the queue
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options(ctx))
    return 0


def launch_options(ctx) -> dict:
    """``launch()`` arguments that follow from the context: login (throttled, checked off
    the event loop), the guard middleware (:mod:`workbench.ui.guard`), and the route that
    delivers the blind test's anonymous audio copies (no folder is served as files).
    """
    from workbench.ui import CSS, blind, theme
    from workbench.ui.guard import Guard, Limits, launch_kwargs

    if ctx.state.guard is None:
        ctx.state.guard = Guard(ctx, ctx.limits, behind_tunnel=ctx.share)
    guard = ctx.state.guard
    options = {
        "auth": None,
        "auth_message": (
            "Listening workbench: log in with the name and password you were given. After 5 wrong "
            "passwords, logins for that name pause (1 s, doubling to at most 15 min) and the button "
            "does nothing until then."
        ),
        "show_error": False,
        # without a cap a logged-in admin's browser could fill the disk (raters cannot upload at all)
        "max_file_size": (ctx.limits or Limits()).max_upload_bytes,
        **launch_kwargs(ctx, guard),
        "css": CSS,
        "theme": theme(),
    }
    # blind-test audio is delivered (and each delivery counted) by the app's own route
    options.setdefault("app_kwargs", {})["routes"] = blind.routes(ctx)
    return options


if __name__ == "__main__":
    sys.exit(main())
