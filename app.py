"""Run the listening workbench: ``python app.py [--config PATH] [--share --auth users.json]``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DEFAULT_USERS = "users.json"
#: largest upload accepted (the only upload is an admin's plan YAML, a few KB); without a
#: limit any logged-in user could fill the server's disk through Gradio's upload route
MAX_UPLOAD = "1mb"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    return p.parse_args(argv)


def make_context(args: argparse.Namespace):
    """Load the catalog and users; raise a WorkbenchError with a clear message on problems."""
    from workbench.catalog import load_catalog
    from workbench.errors import AuthError
    from workbench.ui.common import AppContext
    from workbench.users import UserStore

    catalog = load_catalog(args.config)
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
    return AppContext(
        catalog=catalog,
        votes_path=Path(args.votes),
        data_dir=catalog.settings.data_dir,
        users=users,
        device=args.device or catalog.settings.device,
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
    try:
        ctypes.CDLL("libc.so.6").mallopt(m_arena_max, n)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from workbench.errors import WorkbenchError

    try:
        ctx = make_context(args)
    except WorkbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from workbench.ui import build_app

    demo = build_app(ctx)
    demo.queue(default_concurrency_limit=8)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options(ctx))
    return 0


def launch_options(ctx) -> dict:
    """``launch()`` arguments that follow from the context: login, and the one folder of
    anonymous audio copies the blind test hands to browsers (nothing else is served)."""
    from workbench.ui.blind import served_dir

    auth = (lambda u, p: ctx.users.verify(u, p)) if ctx.users else None
    return {
        "auth": auth,
        "auth_message": "Listening workbench: log in with the name and password you were given.",
        "show_error": False,
        "allowed_paths": [str(served_dir(ctx))],
        "max_file_size": MAX_UPLOAD,
    }


if __name__ == "__main__":
    sys.exit(main())
