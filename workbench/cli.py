"""``python -m workbench <command>``: a thin layer over the library.

Each command calls one library function and turns a :class:`WorkbenchError` into a
message on stderr and exit status 1 (2 for usage errors, from argparse).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from .errors import WorkbenchError


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a catalog and print what each entry will use."""
    from .catalog import catalog_summary, load_catalog

    cat = load_catalog(args.config)
    rows = catalog_summary(cat)
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        print(f"{r['kind']:<12} {r['id']:<{width}}  {r['status']:<11} {r['detail']}")
    bad = [r for r in rows if r["status"] == "unavailable" and r["kind"] in ("checkpoint", "reference")]
    print(f"\n{cat.path}: valid; {len(cat.checkpoints)} checkpoints, {len(cat.references)} references, "
          f"{len(cat.sentences)} sentences, {len(cat.enhancements)} enhancement presets")
    if bad:
        print(f"{len(bad)} entries cannot be used now (see above)")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    """Manage the login users file."""
    from .users import UserStore

    store = UserStore(args.file)
    if args.action == "list":
        for u in store.list():
            print(f"{u.name}\t{u.role}")
        return 0
    if not args.name:
        raise WorkbenchError(f"users {args.action} needs a NAME")
    if args.action == "remove":
        store.remove(args.name)
        print(f"removed {args.name}")
        return 0
    password = args.password
    if password is None:
        password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass("password: ")
    store.add(args.name, password, args.role)
    print(f"{args.name} ({args.role}) saved to {args.file}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m workbench", description="Listening workbench command line.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="validate a catalog and show availability")
    c.add_argument("--config", default="checkpoints.yaml", help="catalog file (default: checkpoints.yaml)")
    c.set_defaults(func=cmd_check)

    u = sub.add_parser("users", help="manage login users (add | remove | list)")
    u.add_argument("action", choices=["add", "remove", "list"])
    u.add_argument("name", nargs="?")
    u.add_argument("--role", choices=["rater", "admin"], default="rater", help="role for add (default: rater)")
    u.add_argument("--password", default=None, help="password for add (default: prompt, or read one line of stdin)")
    u.add_argument("--file", default="users.json", help="users file (default: users.json)")
    u.set_defaults(func=cmd_users)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WorkbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
