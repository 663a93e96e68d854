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
    """Validate a catalog, print what each entry will use, read every reference and clip.

    Exit 1 when an audio file the catalog names cannot be used (each is listed).
    """
    from .catalog import audio_problems, catalog_summary, load_catalog

    cat = load_catalog(args.config)
    rows = catalog_summary(cat)
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        print(f"{r['kind']:<12} {r['id']:<{width}}  {r['status']:<11} {r['detail']}")
    bad = [r for r in rows if r["status"] == "unavailable" and r["kind"] in ("checkpoint", "reference")]
    print(
        f"\n{cat.path}: valid; {len(cat.checkpoints)} checkpoints, {len(cat.references)} references, "
        f"{len(cat.sentences)} sentences, {len(cat.enhancements)} enhancement presets"
    )
    if bad:
        print(f"{len(bad)} entries cannot be used now (see above)")
    problems = audio_problems(cat)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} audio file(s) cannot be used (see above); replace them and run check again")
        return 1
    print("every reference and clip reads as usable audio")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    """Manage the login users file."""
    from .security import check_password
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
    password = _read_password(args)
    check_password(args.name, password)
    store.add(args.name, password, args.role)
    print(f"{args.name} ({args.role}) saved to {args.file}")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    """The new password: ``--password-stdin`` (one line), ``--password`` (with a warning: it
    shows in the process list and the shell history), else asked twice at the terminal.
    """
    if args.password is not None:
        print(
            "warning: --password is visible to other users of this machine (process list) and stays "
            "in your shell history; prefer the prompt or --password-stdin",
            file=sys.stderr,
        )
        return args.password
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise WorkbenchError("the two passwords differ; nothing was saved")
    return first


def cmd_render(args: argparse.Namespace) -> int:
    """Render a checkpoints x references x sentences x presets x takes matrix to --out."""
    from tqdm import tqdm

    from .catalog import load_catalog
    from .render import Renderer, expand_matrix, render_batch
    from .synth import limit_loaded_models

    cat = load_catalog(args.config)
    limit_loaded_models(cat.settings.max_loaded_models)
    reqs = expand_matrix(
        cat,
        checkpoints=args.checkpoints,
        references=args.references,
        sentences=args.sentences,
        enhancements=args.enhance,
        takes=args.takes,
    )
    renderer = Renderer(cat, device=args.device, cluster=args.cluster)
    if args.cluster or cat.settings.cluster:
        print(f"rendering on {renderer.executor.describe()}", file=sys.stderr)
    with tqdm(total=len(reqs), unit="clip", dynamic_ncols=True) as bar:

        def progress(frac: float, label: str) -> None:
            bar.set_postfix_str(label[:60], refresh=False)

        def on_result(req, result) -> None:
            if not hasattr(result, "path"):
                tqdm.write(f"failed: {req.label()}: {result}", file=sys.stderr)
            bar.update(1)

        try:
            manifest, rows = render_batch(renderer, reqs, args.out, progress=progress, on_result=on_result)
        finally:
            renderer.close()
    failed = sum(r["status"] != "ok" for r in rows)
    cached = sum(r["from_cache"] is True for r in rows)
    print(f"{len(rows) - failed} of {len(rows)} clips in {args.out} ({cached} from the cache); manifest: {manifest}")
    if args.quality and failed < len(rows):
        from .quality import QualityStore, annotate_manifest

        print("measuring quality (DNSMOS, silences, clipping, duration, speaker similarity) ...", file=sys.stderr)
        try:
            _, flagged = annotate_manifest(manifest, QualityStore(renderer.cache_dir), cat, renderer)
        except WorkbenchError as e:  # the clips are fine; only their measurements are missing
            print(f"quality checks skipped: {e}", file=sys.stderr)
        else:
            if flagged:
                print(f"{flagged} flagged takes (see the flags column of {manifest})")
    if failed:
        print(f"{failed} items failed (see the error column of {manifest})", file=sys.stderr)
        return 1
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    """Print the Ray cluster's nodes and what each connected workbench is rendering."""
    from .catalog import load_catalog
    from .cluster import ClusterError, cluster_status, format_status

    address = args.cluster or load_catalog(args.config).settings.cluster
    if not address or address == "local":
        raise ClusterError(
            f"no cluster configured: give --cluster ray://HOST:PORT (or HOST:PORT, auto) or set settings.cluster "
            f"in {args.config}"
        )
    print(format_status(cluster_status(address)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Print the results of a vote CSV (text, markdown or JSON); --html also writes a self-contained report."""
    import json

    from .errors import VoteError
    from .report import build_summary, json_document, render_text, write_html

    kw = {"plans_dir": args.plans, "include_admin": args.include_admin}
    summary = build_summary(args.votes, args.test, **kw)
    if args.test and args.test not in summary.tests:
        known = ", ".join(summary.tests) or "none yet"
        raise VoteError(f"{args.votes}: no votes for test {args.test!r}; tests with votes: {known}")
    if args.json:
        print(json.dumps(json_document(args.votes, args.test, first=summary, **kw), indent=2, allow_nan=False))
    else:
        print(render_text(summary, markdown=args.markdown), end="")
    if args.html:
        print(f"wrote {write_html(summary, args.html)}", file=sys.stderr)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Validate a blind-test plan file against the catalog and print its design."""
    import json

    from .abtest import design_summary, load_plan_file, summary_lines
    from .catalog import load_catalog

    cat = load_catalog(args.config)
    plan = load_plan_file(cat, args.file, created_by="cli")
    summary = {**design_summary(plan), "test_id": None}  # not stored: the admin form creates the test
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print("\n".join(summary_lines(summary)))
    return 0


def cmd_fp16(args: argparse.Namespace) -> int:
    """Store a checkpoint's weights in float16, render the standard grid with both, print the verdict."""
    from pathlib import Path

    from tqdm import tqdm

    from .catalog import load_catalog
    from .fp16 import catalog_entry, format_report, fp16_check, register
    from .render import Renderer
    from .synth import limit_loaded_models

    cat = load_catalog(args.config)
    limit_loaded_models(cat.settings.max_loaded_models)
    ck = cat.checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else (ck.model_dir.parent / f"{ck.name}-fp16" if ck.model_dir else None)
    if out is None:
        raise WorkbenchError(f"checkpoint {ck.name} has no model_dir; pass --out DIR")
    with tqdm(total=100, unit="%", dynamic_ncols=True, file=sys.stderr) as bar:

        def progress(frac: float, label: str) -> None:
            bar.set_postfix_str(label[:60], refresh=False)
            bar.update(round(100 * frac) - bar.n)

        report = fp16_check(
            lambda c: Renderer(c, device=args.device),
            cat,
            args.checkpoint,
            out,
            references=args.references,
            sentences=args.sentences,
            progress=progress,
        )
    print(format_report(report), end="")
    if args.register:
        where = register(cat.path, report.derived)
        print(f"added checkpoint {report.derived.name} to {where}")
    else:
        print(f"\nto use it in the app, add to checkpoints: in {cat.path} (or rerun with --register):")
        print(catalog_entry(report.derived, cat.path.parent), end="")
    return 1 if report.failures else 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m workbench`` parser, one subcommand per job (README lists them all)."""
    p = argparse.ArgumentParser(prog="python -m workbench", description="Listening workbench command line.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="validate a catalog and show availability")
    c.add_argument("--config", default="checkpoints.yaml", help="catalog file (default: checkpoints.yaml)")
    c.set_defaults(func=cmd_check)

    u = sub.add_parser("users", help="manage login users (add | remove | list)")
    u.add_argument("action", choices=["add", "remove", "list"])
    u.add_argument("name", nargs="?")
    u.add_argument("--role", choices=["rater", "admin"], default="rater", help="role for add (default: rater)")
    u.add_argument("--password-stdin", action="store_true", help="read the password for add from one line of stdin")
    u.add_argument(
        "--password", default=None, help="password for add (discouraged: visible in the process list; default: prompt)"
    )
    u.add_argument("--file", default="users.json", help="users file (default: users.json)")
    u.set_defaults(func=cmd_users)

    rp = sub.add_parser("report", help="results tables from a vote CSV; --html writes a shareable report")
    rp.add_argument("votes", nargs="?", default="votes/votes.csv", help="vote CSV (default: votes/votes.csv)")
    rp.add_argument("--test", default=None, metavar="ID", help="only this test (default: all votes)")
    rp.add_argument("--html", default=None, metavar="FILE", help="also write a self-contained HTML report")
    rp.add_argument("--markdown", action="store_true", help="print markdown tables instead of plain text")
    rp.add_argument("--json", action="store_true", help="print one JSON document (per test: pairs, verdicts, tiers)")
    rp.add_argument(
        "--plans", default=".workbench/tests", metavar="DIR", help="stored plans, for planned sizes (%(default)s)"
    )
    rp.add_argument("--include-admin", action="store_true", help="count admins' votes too (left out by default)")
    rp.set_defaults(func=cmd_report)

    pl = sub.add_parser("plan", help="validate a blind-test plan file and print its design")
    pl.add_argument("file", metavar="PLAN.yaml", help="plan file (see README, Blind A/B tests)")
    pl.add_argument("--config", default="checkpoints.yaml", help="catalog file (default: checkpoints.yaml)")
    pl.add_argument("--json", action="store_true", help="print the design summary as JSON")
    pl.set_defaults(func=cmd_plan)

    f = sub.add_parser("fp16", help="store a checkpoint's weights in float16 and compare it with the original")
    f.add_argument("checkpoint", help="checkpoint name in the catalog (needs model files)")
    f.add_argument("--config", default="checkpoints.yaml", help="catalog file (default: checkpoints.yaml)")
    f.add_argument("--out", default=None, help="folder for the float16 copy (default: <model_dir>/../<name>-fp16)")
    f.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="default: settings.device")
    f.add_argument("--references", default="all", help="comma-separated reference ids or all (default: all)")
    f.add_argument("--sentences", default="all", help="comma-separated sentence ids or all (default: all)")
    f.add_argument("--register", action="store_true", help="add <name>-fp16 to the catalog's added checkpoints")
    f.set_defaults(func=cmd_fp16)

    r = sub.add_parser("render", help="render a matrix of clips with progress; writes clips + manifest.csv")
    r.add_argument("--config", default="checkpoints.yaml", help="catalog file (default: checkpoints.yaml)")
    r.add_argument("--checkpoints", default="all", help="comma-separated checkpoint names or all (default: all)")
    r.add_argument("--references", default="all", help="comma-separated reference ids or all (default: all)")
    r.add_argument("--sentences", default="all", help="comma-separated sentence ids or all (default: all)")
    r.add_argument("--enhance", default="none", help="comma-separated enhancement presets or all (default: none)")
    r.add_argument("--takes", type=int, default=1, help="takes per combination, seeds seed..seed+N-1 (default: 1)")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="default: settings.device")
    r.add_argument(
        "--no-quality",
        dest="quality",
        action="store_false",
        help="skip the quality estimates and bad-take flags in the manifest (DNSMOS costs ~0.1-0.3x real time)",
    )
    r.add_argument("--out", default="renders", help="folder for the clips and manifest.csv (default: renders)")
    r.add_argument(
        "--cluster",
        default=None,
        metavar="ADDR",
        help="render on a Ray cluster: ray://HOST:PORT, HOST:PORT or auto; local: in this process "
        "(default: settings.cluster)",
    )
    r.set_defaults(func=cmd_render)

    cl = sub.add_parser("cluster", help="the Ray cluster rendering for the workbench (status)")
    cl.add_argument("action", choices=["status"])
    cl.add_argument("--cluster", default=None, metavar="ADDR", help="cluster address (default: settings.cluster)")
    cl.add_argument("--config", default="checkpoints.yaml", help="catalog file (default: checkpoints.yaml)")
    cl.set_defaults(func=cmd_cluster)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; return the exit code (1 on a workbench error, printed without a traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WorkbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
