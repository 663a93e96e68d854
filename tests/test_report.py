"""Reports from a vote CSV: the summary path, text/markdown/HTML output, charts and the CLI."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.test_plots import assert_drawn_inside
from tests.test_stats import VOTE_HEADER, simulate_votes, vote, vote_rows, write_votes_csv
from workbench import report, stats
from workbench.cli import main
from workbench.errors import VoteError
from workbench.votes import effective_votes, read_votes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def votes_csv(tmp_path, rng) -> Path:
    """Two tests; test t1 has a biased rater and one vote changed twice."""
    t1 = simulate_votes(rng, test_id="t1")
    t1 = pd.concat([t1, simulate_votes(rng, raters=("zed",), a_bias={"zed": 0.9}, start=5000)], ignore_index=True)
    t2 = simulate_votes(rng, test_id="t2", raters=("ann",), start=8000)
    df = pd.concat([t1, t2], ignore_index=True)
    first = df.iloc[0].to_dict()
    changed = []
    prev = first["vote_id"]
    for k, choice in enumerate(("none", "B" if first["choice"] == "A" else "A")):
        row = {**first, "vote_id": f"v9{k:04d}", "choice": choice, "supersedes": prev}
        row["winner"] = vote(0, a=row["checkpoint_a"], b=row["checkpoint_b"], a_side=row["a_side"], choice=choice)[
            "winner"
        ]
        changed.append(row)
        prev = row["vote_id"]
    df = pd.concat([df, pd.DataFrame(changed)], ignore_index=True)
    return write_votes_csv(df, tmp_path / "votes" / "votes.csv")


def test_build_summary_reads_effective_votes(votes_csv):
    s = report.build_summary(votes_csv, "t1")
    raw = read_votes(votes_csv)
    eff = effective_votes(raw)
    direct = stats.summarize(eff, "t1", n_boot=report.N_BOOT, seed=report.SEED)
    pd.testing.assert_frame_equal(s.pairs, direct.pairs)
    pd.testing.assert_frame_equal(s.ranking, direct.ranking)
    assert s.extra["rows"] == len(raw) and s.extra["superseded"] == 2
    assert s.tests == ["t1", "t2"]


def test_superseded_votes_count_once(tmp_path):
    rows = [
        vote(0, a_side="A", choice="A"),  # feb1 ...
        vote(1, a_side="A", choice="A", trial_id="tr0000", supersedes="v00000"),  # changed to feb1 again
        vote(2, a_side="A", choice="B", trial_id="tr0000", supersedes="v00001"),  # ... finally apr27
        vote(3, a_side="B", choice="A", rater="bob"),  # apr27
    ]
    path = write_votes_csv(vote_rows(rows), tmp_path / "votes.csv")
    s = report.build_summary(path)
    r = s.pairs.iloc[0]
    assert (r.item_a, r.item_b, r.wins_a, r.wins_b, r.ties) == ("feb1", "apr27", 0, 2, 0)
    assert s.n_votes == 2 and s.extra["superseded"] == 2
    assert "2 changed votes counted once" in report.headline(s)[0]


def test_malformed_rows_are_named_by_row_and_column(tmp_path):
    rows = [vote(i) for i in range(4)]
    rows[2]["choice"] = "left"
    path = write_votes_csv(vote_rows(rows), tmp_path / "bad.csv")
    with pytest.raises(VoteError, match=r"row 4, column choice"):
        report.build_summary(path)

    rows = [vote(i) for i in range(3)]
    rows[1]["played_a_s"] = "lots"
    path = write_votes_csv(vote_rows(rows), tmp_path / "bad2.csv")
    with pytest.raises(VoteError, match=r"bad2\.csv: row 3, column played_a_s"):
        report.build_summary(path)


def test_partial_and_empty_files(tmp_path, capsys):
    good = write_votes_csv(vote_rows([vote(i) for i in range(3)]), tmp_path / "torn.csv")
    text = good.read_text()
    good.write_text(text + "v00009,2026-05-01T10:00:09Z,ann,t1,tr9")  # cut short by a crash
    with pytest.raises(VoteError, match=r"torn\.csv: row 5\b"):
        report.build_summary(good)
    assert main(["report", str(good)]) == 1
    assert "row 5" in capsys.readouterr().err

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(VOTE_HEADER) + "\r\n")
    for path in (empty, header_only):
        s = report.build_summary(path)
        assert s.empty and s.pairs.empty
        assert main(["report", str(path)]) == 0
        assert "No votes yet" in capsys.readouterr().out

    assert main(["report", str(tmp_path / "missing.csv")]) == 1
    assert "no such vote file" in capsys.readouterr().err
    with pytest.raises(VoteError, match="no such vote file"):
        report.build_summary(tmp_path / "missing.csv")
    assert report.build_summary(tmp_path / "missing.csv", missing_ok=True).empty


def test_empty_test_reports_no_votes(votes_csv):
    s = report.build_summary(votes_csv, "planned-but-empty")
    assert s.empty
    assert report.headline(s) == ["No votes yet for test planned-but-empty; tests with votes: t1, t2."]
    assert "No votes yet" in report.render_text(s)
    page = report.render_html(s)
    assert "No votes yet" in page and "<img" not in page
    for fig in report.figures(s).values():
        assert any("No" in t.get_text() for ax in fig.axes for t in ax.texts)


def test_tables_follow_the_statistics(votes_csv):
    s = report.build_summary(votes_csv, "t1")
    tables = {t.key: t for t in report.report_tables(s)}
    pairs = tables["pairs"].frame
    assert len(pairs) == len(s.pairs)
    for (_, shown), (_, r) in zip(pairs.iterrows(), s.pairs.iterrows(), strict=True):
        assert shown["Item"] == r.item_a and shown["vs"] == r.item_b
        assert shown["Wins"] == str(r.wins_a) and shown["Losses"] == str(r.wins_b)
        assert shown["Win rate"] == f"{100 * r.win_rate:.0f}%"
        assert shown["Interval"].startswith(f"{100 * r.verdict_low:.0f}–{100 * r.verdict_high:.0f}%")
        assert shown["p (sequential, Holm)"] == report.fmt_p(r.p_adj)
        assert shown["Effective n"] == f"{r.n_eff:.1f}" and shown["Raters"] == str(r.raters)
        assert shown["Verdict"] == report.fmt_verdict(r)
    assert [x.split(" (")[0] for x in tables["ranking"].frame["Item"]] == list(s.ranking["item"])
    pos = tables["position"].frame.set_index("Rater")
    assert float(pos.at["zed", "A rate"].rstrip("%")) > 70
    assert s.position.set_index("rater").at["zed", "p_value"] < 0.01
    # every pair row links to its clips
    for link, r in zip(tables["pairs"].links, s.pairs.itertuples(), strict=True):
        assert link["reference"] == r.example_reference and link["sentence"] == r.example_sentence
        assert set(link["checkpoints"]) == {r.item_a, r.item_b}
    heat = tables["heatmap"]
    assert list(heat.frame.columns) == ["Item", *s.references]
    sel = heat.link(0, s.references[0])
    assert sel["reference"] == s.references[0] and s.items[0] in sel["checkpoints"]


def _many_raters(n: int, *, b_wins: int) -> list[dict]:
    """``n`` decisive votes, each from its own rater, over 6 clips; apr27 (item b) wins the first ``b_wins``."""
    rows = []
    for i in range(n):
        side = "A" if i % 2 else "B"
        other = "B" if side == "A" else "A"
        ref, sent = ("surya_1", "surya_2", "paul_1")[i % 3], ("pangram", "numbers")[i % 2]
        rows.append(
            vote(i, rater=f"r{i}", reference=ref, sentence=sent, a_side=side, choice=other if i < b_wins else side)
        )
    return rows


def test_headline_reads_the_decision():
    s = stats.summarize(vote_rows(_many_raters(40, b_wins=36)), plan=40, n_boot=50)
    line = next(x for x in report.headline(s) if x.startswith("feb1 vs apr27"))
    assert "40 raters, 6 clips, 40 decisive votes" in line
    assert "apr27 preferred to feb1 in 90% (95% interval" in line
    assert "Settled for raters in general: apr27 is preferred" in line
    assert s.pairs.iloc[0].scope == "raters_in_general"
    assert "Warning" not in line
    few = stats.summarize(vote_rows(_many_raters(40, b_wins=36)[:23]), plan=60, n_boot=50)
    line = next(x for x in report.headline(few) if x.startswith("feb1 vs apr27"))
    assert "For raters in general: not settled yet: 23 of 60 planned votes." in line
    assert "For these raters: not settled yet: 23 of 60 planned votes." in line
    assert "more votes would settle" not in " ".join(report.headline(few))
    # three pairs: the correction is named in words
    s3 = stats.summarize(simulate_votes(np.random.default_rng(1)), n_boot=20)
    assert all("adjusted for 3 comparisons" in x for x in report.headline(s3) if " vs " in x[:20])
    assert any("computed from defaults" in x for x in report.headline(s3))
    # one rater: a visible small-sample warning
    one = stats.summarize(vote_rows([vote(i, a_side="A", choice="B") for i in range(8)]), n_boot=20)
    assert any("Warning: small sample" in x for x in report.headline(one))


def test_text_and_markdown(votes_csv):
    s = report.build_summary(votes_csv, "t1")
    text = report.render_text(s)
    md = report.render_text(s, markdown=True)
    assert text.startswith("Results: test t1\n================")
    assert md.startswith("# Results: test t1")
    assert "| Item" in md and "|---" in md.replace(":", "-")
    for t in report.report_tables(s):
        if t.frame.empty:
            assert f"\n{t.title}\n" not in text
            continue
        section = text.split(f"\n{t.title}\n", 1)[1]
        lines = section.split("\n\n", 1)[0].splitlines()
        # every row printed in order, each cell in its column order
        rows = [ln for ln in lines if not set(ln) <= set("- ")]
        assert len(rows) == len(t.frame) + 1  # header, rows
        for ln, cells in zip(rows[1:], t.frame.values.tolist(), strict=True):
            assert re.fullmatch(r"\s*" + r"\s+".join(map(re.escape, cells)) + r"\s*", ln), (t.title, ln)


def test_figures_show_the_numbers(votes_csv):
    s = report.build_summary(votes_csv, "t1")
    figs = report.figures(s)
    ax = figs["win_rates"].axes[0]
    # first pair on top, each point at its win rate, its bar the verdict's interval
    at = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks(), strict=True)}
    pts = {y: x for x, y in ax.collections[-1].get_offsets()}
    names = [f"{a} vs {b}" for a, b in zip(s.pairs["item_a"], s.pairs["item_b"], strict=True)]
    assert sorted(at, key=at.get, reverse=True) == names
    np.testing.assert_allclose([pts[at[n]] for n in names], s.pairs["win_rate"])
    segs = ax.collections[0].get_segments()
    np.testing.assert_allclose([seg[0][0] for seg in segs], s.pairs["verdict_low"])
    assert ax.get_xlim() == (0, 1)

    ax = figs["ranking"].axes[0]
    np.testing.assert_allclose(ax.collections[-1].get_offsets()[:, 0], s.ranking["strength"])

    grid = figs["heatmap"].axes[0].images[0].get_array()
    for r in s.heatmap.itertuples():
        assert grid[s.items.index(r.item), s.references.index(r.level)] == pytest.approx(r.score)

    ax = figs["reasons"].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(dict.fromkeys(s.reasons["tag"]))
    widths = sorted(p.get_width() for p in ax.patches if p.get_width() > 0)
    assert widths == sorted(s.reasons["won"][s.reasons["won"] > 0].astype(float))


def test_html_report_is_self_contained(votes_csv, tmp_path):
    s = report.build_summary(votes_csv, "t1")
    path = report.write_html(s, tmp_path / "out" / "report.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    # nothing loaded from elsewhere: every src is inline data, no external link or stylesheet
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 4 and all(s_.startswith("data:image/png;base64,") for s_ in srcs)
    assert not re.search(r"(href|src)=\"(https?:)?//", page)
    assert "<link" not in page and "@import" not in page and "<script" not in page
    for src in srcs:
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    for t in report.report_tables(s):
        assert f"<h2>{t.title}</h2>" in page
    assert "Flagged raters: zed (position bias)" in page


def test_cli_report(votes_csv, tmp_path, capsys):
    html_path = tmp_path / "r.html"
    assert main(["report", str(votes_csv), "--test", "t1", "--html", str(html_path)]) == 0
    out, err = capsys.readouterr()
    assert out == report.render_text(report.build_summary(votes_csv, "t1"))
    assert html_path.is_file() and f"wrote {html_path}" in err

    assert main(["report", str(votes_csv), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Results: all votes") and "## Head to head" in out

    assert main(["report", str(votes_csv), "--test", "t9"]) == 1
    assert "no votes for test 't9'; tests with votes: t1, t2" in capsys.readouterr().err


@pytest.mark.slow  # a subprocess
def test_cli_report_as_a_module(votes_csv):
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "workbench", "report", str(votes_csv), "--test", "t2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "Head to head" in r.stdout and "test t2" in r.stdout


@pytest.mark.e2e
def test_html_report_opens_offline_with_its_charts(votes_csv, tmp_path, browser):
    path = report.write_html(report.build_summary(votes_csv, "t1"), tmp_path / "report.html")
    context = browser.new_context(offline=True)
    try:
        page = context.new_page()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        tables = page.locator("table.wb-table").count()
    finally:
        context.close()
    assert len(sizes) == 4 and all(done and width > 300 for done, width in sizes)
    assert tables == len([t for t in report.report_tables(report.build_summary(votes_csv, "t1")) if not t.frame.empty])
    assert all(u.startswith(("file:", "data:")) for u in requests)


def test_report_command_is_documented():
    from workbench.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    line = next(ln for ln in readme.splitlines() if "python -m workbench report" in ln)
    for action in sub.choices["report"]._actions:
        for opt in action.option_strings:
            assert opt in line or opt in ("-h", "--help"), opt


# --------------------------------------------------------------------------- odd and hostile files


def _write(df: pd.DataFrame, path: Path, columns) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df[list(columns)].to_csv(path, index=False, lineterminator="\r\n")
    return path


def _run_all(path: Path, capsys, *extra) -> tuple[str, dict]:
    """Text and JSON reports of ``path`` through the CLI (both must succeed)."""
    import json

    assert main(["report", str(path), *extra]) == 0
    text = capsys.readouterr().out
    assert main(["report", str(path), "--json", *extra]) == 0
    return text, json.loads(capsys.readouterr().out)


def test_minimal_and_reordered_columns_read(tmp_path, rng, capsys):
    from workbench.votes import REQUIRED_COLUMNS

    df = simulate_votes(rng)
    df = df[df["repeat_of"] == ""]  # a spreadsheet without the optional repeat_of column
    minimal = _write(df, tmp_path / "minimal.csv", REQUIRED_COLUMNS)
    reordered = _write(df, tmp_path / "reordered.csv", list(REQUIRED_COLUMNS)[::-1])
    full = write_votes_csv(df, tmp_path / "full.csv")
    t_min, j_min = _run_all(minimal, capsys)
    t_rev, j_rev = _run_all(reordered, capsys)
    t_full, j_full = _run_all(full, capsys)
    assert t_min.replace("minimal.csv", "X") == t_rev.replace("reordered.csv", "X") == t_full.replace("full.csv", "X")
    for doc in (j_min, j_rev):
        assert doc["tests"] == j_full["tests"]
    test = j_min["tests"][0]
    assert test["test_id"] == "t1" and len(test["pairs"]) == 3
    pair = test["pairs"][0]
    for key in ("n", "decisive", "n_eff", "win_rate", "ci_low", "ci_high", "p_value", "p_adj", "verdict", "raters"):
        assert key in pair
    assert pair["verdict"] in stats.VERDICTS
    assert test["tiers"]["checkpoints"] and isinstance(test["flagged_raters"], list)


def test_missing_required_column_is_named(tmp_path, rng, capsys):
    from workbench.votes import REQUIRED_COLUMNS

    df = simulate_votes(rng)
    path = _write(df, tmp_path / "no_side.csv", [c for c in REQUIRED_COLUMNS if c != "a_side"])
    for extra in ([], ["--json"], ["--markdown"]):
        assert main(["report", str(path), *extra]) == 1
        err = capsys.readouterr().err
        assert "a_side" in err and "Traceback" not in err


def test_odd_files_give_clear_reports(tmp_path, capsys):
    header_only = tmp_path / "empty.csv"
    header_only.write_text(",".join(VOTE_HEADER) + "\r\n", encoding="utf-8")
    text, doc = _run_all(header_only, capsys)
    assert "No votes yet" in text and doc["tests"] == []

    one = write_votes_csv(vote_rows([vote(0)]), tmp_path / "one.csv")
    text, doc = _run_all(one, capsys)
    pair = doc["tests"][0]["pairs"][0]
    assert pair["decisive"] == 1 and pair["verdict"] != "settled"
    assert "Warning: small sample" in text

    ties = write_votes_csv(vote_rows([vote(i, choice="none", rater=f"r{i}") for i in range(6)]), tmp_path / "t.csv")
    text, doc = _run_all(ties, capsys)
    t = doc["tests"][0]
    assert t["pairs"][0]["decisive"] == 0 and t["pairs"][0]["verdict"] != "settled"
    assert {r["rank"] for r in t["ranking"]} == {1}
    assert "no decisive vote yet" in text

    rows = [vote(i, rater=f"r{i % 5}", reference=f"ref{i % 4}", a_side="AB"[i % 2], choice="A") for i in range(30)]
    rows.append(vote(40, a="feb1", b="once", a_side="A", choice="B"))  # seen once
    rows += [vote(50 + i, a="x1", b="x2", rater=f"r{i}", choice="B") for i in range(3)]  # never met the others
    text, doc = _run_all(write_votes_csv(vote_rows(rows), tmp_path / "odd.csv"), capsys)
    rk = {r["item"]: r for r in doc["tests"][0]["ranking"]}
    assert rk["once"]["preliminary"] and not rk["feb1"]["preliminary"]
    assert rk["x1"]["group"] != rk["feb1"]["group"]
    assert {(p["item_a"], p["item_b"]) for p in doc["tests"][0]["pairs"]} == {
        ("feb1", "apr27"),
        ("feb1", "once"),
        ("x1", "x2"),
    }
    assert "more votes would settle" not in text


@pytest.mark.slow  # a load test: 20,000 votes
def test_twenty_thousand_votes_report(tmp_path, rng, capsys):
    raters = tuple(f"r{i}" for i in range(40))
    parts = [
        simulate_votes(rng, raters=raters, start=k * 10_000, repeats=0).assign(
            trial_id=lambda d, k=k: d.trial_id + f"-{k}"
        )
        for k in range(28)
    ]
    df = pd.concat(parts, ignore_index=True).head(20_000)
    text, doc = _run_all(write_votes_csv(df, tmp_path / "big.csv"), capsys)
    assert sum(p["n"] for p in doc["tests"][0]["pairs"]) == 20_000
    assert "Head to head" in text


def test_planned_size_comes_from_the_stored_plan(votes_csv, tmp_path, capsys):
    import json

    plans = tmp_path / "tests"
    plans.mkdir()
    (plans / "t1.json").write_text(json.dumps({"test_id": "t1", "planned_votes_per_pair": 50, "min_effect": 0.7}))
    s = report.build_summary(votes_csv, "t1", plans_dir=plans)
    assert s.plan.votes_per_pair == 50 and s.plan.source == "plan" and s.plan.min_effect == 0.7
    assert (s.pairs["target"] == 50).all() and (s.pairs["target_source"] == "plan").all()
    planned = "Planned 50 decisive votes per pair (recorded in the plan). For these raters only"
    assert any(x.startswith(planned) for x in report.headline(s))
    assert (s.pairs["target_these"] == 50).all()  # one recorded target: final there in both scopes
    # the whole SamplePlan can be stored too
    sp = stats.planned_votes(3, n_raters=20, n_clips=12)
    (plans / "t1.json").write_text(json.dumps({"test_id": "t1", "sample_size": sp.to_dict()}))
    assert report.build_summary(votes_csv, "t1", plans_dir=plans).plan == sp
    # one stored before the "these raters" scope: that target is filled in from its own assumptions
    old = {k: v for k, v in sp.to_dict().items() if not k.endswith("these_raters") and k != "min_raters"}
    (plans / "t1.json").write_text(json.dumps({"test_id": "t1", "sample_size": old}))
    assert report.build_summary(votes_csv, "t1", plans_dir=plans).plan == sp
    # a plan that recorded "no size is reachable" keeps that: nothing is settled, and it says why
    few = stats.planned_votes(3, n_raters=3, n_clips=8)
    (plans / "t1.json").write_text(
        json.dumps({"test_id": "t1", "planned_votes_per_pair": 0, "sample_size": few.to_dict()})
    )
    s = report.build_summary(votes_csv, "t1", plans_dir=plans)
    assert s.plan == few and not s.pairs["settled"].any()
    assert any(
        "No planned size for raters in general is feasible (recorded in the plan)" in x for x in report.headline(s)
    )
    assert (s.pairs["target_these"] == few.votes_these_raters).all()
    # no plan (or an unreadable one): defaults, and the report says so
    (plans / "t1.json").write_text("{not json")
    s = report.build_summary(votes_csv, "t1", plans_dir=plans)
    assert s.plan.source == "defaults"
    assert main(["report", str(votes_csv), "--test", "t1", "--plans", str(plans)]) == 0
    assert "computed from defaults" in capsys.readouterr().out


def test_every_output_agrees_on_one_file(votes_csv, tmp_path, capsys):
    """Text, markdown, HTML and JSON of one file show the same verdicts and numbers."""
    import json

    s = report.build_summary(votes_csv, "t1")
    text, doc = _run_all(votes_csv, capsys, "--test", "t1")
    assert main(["report", str(votes_csv), "--test", "t1", "--markdown"]) == 0
    md = capsys.readouterr().out
    page = report.render_html(s, charts=False)
    [t1] = doc["tests"]
    assert len(t1["pairs"]) == len(s.pairs)
    for p, r in zip(t1["pairs"], s.pairs.itertuples(), strict=True):
        assert (p["item_a"], p["item_b"], p["verdict"]) == (r.item_a, r.item_b, r.verdict)
        assert p["n_eff"] == pytest.approx(r.n_eff)
        assert (p["p_adj"] is None) == bool(np.isnan(r.p_adj))  # nan becomes null in JSON
        assert (p["verdict_these"], p["scope"]) == (r.verdict_these, r.scope)  # both scopes, same numbers
        assert (p["p_adj_these"] is None) == bool(np.isnan(r.p_adj_these))
        assert p["n_eff_these"] == pytest.approx(r.n_eff_these)
        shown = report.fmt_ci(p["verdict_low"], p["verdict_high"])
        shown_these = report.fmt_ci(p["verdict_low_these"], p["verdict_high_these"])
        for out in (text, md, page):
            assert shown in out and report.fmt_verdict(r) in out
            assert shown_these in out and report.fmt_verdict_these(r) in out
    for line in t1["headline"]:
        assert line in text and line in md and html_escape(line) in page
    # rankings: both scopes' tiers, per item and as one line, the same everywhere
    assert t1["tiers"] == s.tiers and t1["tiers_these"] == s.tiers_these
    for kind, these in s.tiers_these.items():
        line = next(x for x in t1["headline"] if x.startswith(f"Tiers of {kind} for these raters only"))
        assert line.endswith(f": {these}.") and "not a claim about raters in general" in line
    ranking = {t.key: t for t in report.report_tables(s)}["ranking"].frame
    assert [r["tier_these"] for r in t1["ranking"]] == list(s.ranking["tier_these"])
    assert list(ranking["Tier, these raters"]) == [str(r["tier_these"]) for r in t1["ranking"]]
    assert list(ranking["Tier, raters in general"]) == [str(r["tier"]) for r in t1["ranking"]]
    html_rows = [
        [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        for tr in re.findall(r"<tr>(.*?)</tr>", page.split("<h2>Ranking", 1)[1].split("<h2>", 1)[0], re.S)
    ]
    assert [html.unescape(c) for row in html_rows for c in row] == list(ranking.values.ravel())
    assert "Tier, these raters" in page
    for row in ranking.values.tolist():
        for out in (text, md):
            assert re.search(r"\s*\|?\s*".join(map(re.escape, row)), out), row
    assert json.dumps(doc, allow_nan=False)


def html_escape(s: str) -> str:
    import html

    return html.escape(s)


def test_twenty_votes_from_four_groups_report_not_settled(tmp_path, capsys):
    # the audit's file: 20 decisive feb1-vs-apr24 votes from 2 raters x 2 clips
    rows = []
    for k in range(20):
        rater, ref = ("ann", "bob")[k % 2], ("surya_1", "paul_1")[(k // 2) % 2]
        side = "AB"[k % 2]
        rows.append(vote(k, b="apr24", rater=rater, reference=ref, a_side=side, choice=side))
    text, doc = _run_all(write_votes_csv(vote_rows(rows), tmp_path / "four.csv"), capsys)
    [pair] = doc["tests"][0]["pairs"]
    assert (pair["wins_a"], pair["raters"], pair["clips"]) == (20, 2, 2)
    assert pair["verdict"] != "settled" and pair["n_eff"] <= 2
    assert "feb1 vs apr24: 2 raters, 2 clips, 20 decisive votes" in text and "Warning: small sample" in text


def _team_design(rng, *, preference: float, raters=("ann", "bob", "cy"), takes: int = 2) -> list[dict]:
    """The team's own design: feb1 vs apr27 on paul_1 and paul_2 x 8 sentences (16 clips), ``takes`` takes,
    every trial rated by 2 of the 3 raters, plus 4 repeats (which never count)."""
    rows, k = [], 0
    for ref in ("paul_1", "paul_2"):
        for sent in (f"s{i}" for i in range(8)):
            for _take in range(takes):
                for j in range(2):
                    rater = raters[(k // 2 + j) % len(raters)]
                    side = "AB"[k % 2]
                    other = "B" if side == "A" else "A"
                    choice = side if rng.random() < preference else other
                    rows.append(
                        vote(k, b="apr27", rater=rater, reference=ref, sentence=sent, a_side=side, choice=choice)
                    )
                    k += 1
    for i in range(4):  # repeats agreeing with apr27: must not move the preference
        first = rows[i]
        rows.append(
            {
                **vote(
                    k + i,
                    b="apr27",
                    rater=first["rater"],
                    reference=first["reference"],
                    sentence=first["sentence_id"],
                    a_side="B",
                    choice="B",
                ),
                "repeat_of": first["trial_id"],
            }
        )
    return rows


def test_few_raters_get_a_labelled_verdict_for_these_raters(rng, capsys, tmp_path):
    """3 raters, 16 clips: never settled for raters in general, settled (and labelled) for these raters."""
    import json

    s = stats.summarize(vote_rows(_team_design(rng, preference=0.85, takes=4)), n_boot=20)
    [r] = s.pairs.itertuples(index=False)
    assert (r.raters, r.clips, r.decisive) == (3, 16, 128)
    assert s.plan.votes_per_pair is None and s.plan.votes_these_raters is not None
    assert r.verdict == "not settled" and r.verdict_these == "settled" and r.scope == "these_raters"
    assert r.verdict_low_these > 0.5 and r.min_raters > 3
    line = next(x for x in report.headline(s) if x.startswith("feb1 vs apr27"))
    assert f"These 3 raters prefer feb1 ({report.fmt_pct(r.win_rate_these)}" in line
    assert "16 clips" in line and "settled for these raters" in line
    assert f"too few raters to generalise: 3 of at least {r.min_raters}" in line
    assert "not what raters in general would" in line and "Settled for raters in general" not in line
    # the same in the table and the JSON document
    row = {t.key: t for t in report.report_tables(s)}["pairs"].frame.iloc[0]
    assert (row["Verdict"], row["Verdict, these raters"], row["Settled for"]) == (
        "not settled (no feasible planned size)",
        "settled",
        "these raters only",
    )
    pair = report.report_json(s)["pairs"][0]
    assert pair["scope"] == "these_raters" and pair["verdict"] == "not settled" and pair["verdict_these"] == "settled"
    assert json.dumps(pair, allow_nan=False)
    # no preference: nothing settled in either scope, scope is null
    null = stats.summarize(vote_rows(_team_design(np.random.default_rng(5), preference=0.5)), n_boot=20)
    assert null.pairs.iloc[0].scope is None
    assert report.report_json(null)["pairs"][0]["scope"] is None
    assert report.fmt_scope(null.pairs.iloc[0].scope) == "—"


def test_tiers_for_these_raters_are_labelled_and_screening_compares_both_scopes(rng):
    """3 raters: feb1 above the other two for these raters only; the report never states it for raters in general."""
    from tests.test_stats import three_checkpoints

    df = three_checkpoints(rng, p_first=0.9)
    # zed prefers slot A between identical clips: flagged, so the head to head is shown again without zed
    controls = [
        {**vote(9000 + i, a="feb1", b="feb1", rater="zed", a_side="A", choice="A"), "trial_kind": "control"}
        for i in range(8)
    ]
    s = stats.summarize(pd.concat([df, pd.DataFrame(controls)], ignore_index=True), plan=96, n_boot=20)
    assert s.flagged == ["zed"] and s.pairs_screened is not None
    lines = report.headline(s)
    general = next(x for x in lines if x.startswith("Ranking of checkpoints, best first, for raters in general"))
    these = next(x for x in lines if x.startswith("Tiers of checkpoints for these raters only"))
    assert "|" not in general.split("): ", 1)[1]  # 3 raters can never separate items for raters in general
    assert "(what the raters who voted prefer, not a claim about raters in general): feb1 | " in these
    table = {t.key: t for t in report.report_tables(s)}["ranking"]
    assert "not a claim about raters in general" in table.note
    rows = table.frame.set_index("Item")
    assert rows.at["feb1", "Tier, these raters"] == "1" and rows.at["apr24", "Tier, these raters"] == "2"
    assert set(rows["Tier, raters in general"]) == {"1"}
    doc = report.report_json(s)
    assert "|" not in doc["tiers"]["checkpoints"] and doc["tiers_these"]["checkpoints"].startswith("feb1 | ")
    # without the flagged rater: both scopes compared, each named
    flagged = next(x for x in lines if x.startswith("Flagged raters"))
    assert "every verdict is the same, for raters in general and for these raters only" in flagged
    changed = s.pairs.copy()
    changed.loc[0, "verdict_these"] = "not settled"
    s.pairs_screened = changed
    r = s.pairs.iloc[0]
    assert report._screened_sentence(s) == (
        f"Without them verdicts change: {r.item_a} vs {r.item_b} for these raters only: settled -> not settled."
    )
    changed.loc[0, "verdict"] = "planned target not reached"
    assert f"{r.item_a} vs {r.item_b} for raters in general: not settled -> planned target not reached; " in (
        report._screened_sentence(s)
    )


@pytest.mark.parametrize("references", [("surya_1",), ("surya_1", "surya_2", "paul_1")])
def test_chart_text_stays_inside_its_figure(tmp_path, rng, references):
    """No title, label, tick label or legend runs off the edge of a Results chart (with one
    reference the score heatmap is narrow: its title used to be cut at both ends)."""
    csv = write_votes_csv(simulate_votes(rng, references=references), tmp_path / "votes.csv")
    for name, fig in report.figures(report.build_summary(csv, "t1")).items():
        assert_drawn_inside(fig, name)
