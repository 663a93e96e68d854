"""Reports from a vote CSV: the summary path, text/markdown/HTML output, charts and the CLI."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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
        assert shown["95% CI"] == f"{100 * r.ci_low:.0f}–{100 * r.ci_high:.0f}%"
        assert shown["p (Holm)"] == report.fmt_p(r.p_holm)
    assert list(tables["ranking"].frame["Item"]) == list(s.ranking["item"])
    pos = tables["position"].frame.set_index("Rater")
    assert float(pos.at["zed", "A rate"].rstrip("%")) > 70
    assert pos.at["zed", "p"] == "<0.001"
    # every pair row links to its clips
    for link, r in zip(tables["pairs"].links, s.pairs.itertuples(), strict=True):
        assert link["reference"] == r.example_reference and link["sentence"] == r.example_sentence
        assert set(link["checkpoints"]) == {r.item_a, r.item_b}
    heat = tables["heatmap"]
    assert list(heat.frame.columns) == ["Item", *s.references]
    sel = heat.link(0, s.references[0])
    assert sel["reference"] == s.references[0] and s.items[0] in sel["checkpoints"]


def test_headline_reads_the_decision():
    rows = [vote(i, a_side="A", choice="B", reasons="accent") for i in range(12)]
    rows += [vote(20 + i, a_side="B", choice="B") for i in range(2)]  # feb1 wins 2
    s = stats.summarize(vote_rows(rows), n_boot=100)
    line = next(x for x in report.headline(s) if "preferred" in x)
    assert line.startswith("apr27 is preferred to feb1 in 12 of 14 decisive votes (86%")
    assert "settled." in line and "p = 0.013" in line
    few = stats.summarize(vote_rows(rows[:2] + rows[-1:]), n_boot=100)
    line = next(x for x in report.headline(few) if "preferred" in x)
    assert "not settled; about" in line and "more votes would settle it" in line


def test_text_and_markdown(votes_csv):
    s = report.build_summary(votes_csv, "t1")
    text = report.render_text(s)
    md = report.render_text(s, markdown=True)
    assert text.startswith("Results: test t1\n================")
    assert md.startswith("# Results: test t1")
    assert "| Item" in md and "|---" in md.replace(":", "-")
    for t in report.report_tables(s):
        section = text.split(f"\n{t.title}\n", 1)[1]
        lines = section.split("\n\n", 1)[0].splitlines()
        # every row printed in order, each cell in its column order
        rows = [ln for ln in lines if not set(ln) <= set("- ")]
        assert len(rows) == len(t.frame) + 1  # header, rows
        for ln, cells in zip(rows[1:], t.frame.values.tolist(), strict=True):
            assert re.fullmatch(r"\s*" + r"\s+".join(map(re.escape, cells)) + r"\s*", ln), (t.title, ln)


def test_figures_show_the_numbers(votes_csv):
    s = report.build_summary(votes_csv, "t1")
    f = report.win_rate_figure(s)
    ax = f.axes[0]
    # first pair on top, each point at its win rate
    at = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks(), strict=True)}
    pts = {y: x for x, y in ax.collections[-1].get_offsets()}
    names = [f"{a} vs {b}" for a, b in zip(s.pairs["item_a"], s.pairs["item_b"], strict=True)]
    assert sorted(at, key=at.get, reverse=True) == names
    np.testing.assert_allclose([pts[at[n]] for n in names], s.pairs["win_rate"])
    assert ax.get_xlim() == (0, 1)

    ax = report.ranking_figure(s).axes[0]
    np.testing.assert_allclose(ax.collections[-1].get_offsets()[:, 0], s.ranking["strength"])

    fig = report.heatmap_figure(s)
    grid = fig.axes[0].images[0].get_array()
    hm = s.heatmap
    for r in hm.itertuples():
        assert grid[s.items.index(r.item), s.references.index(r.level)] == pytest.approx(r.score)

    ax = report.reasons_figure(s).axes[0]
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
    assert "zed chose slot A" in page


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
    assert tables == len([t for t in report.report_tables(report.build_summary(votes_csv, "t1"))])
    assert all(u.startswith(("file:", "data:")) for u in requests)


def test_report_command_is_documented():
    from workbench.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    line = next(ln for ln in readme.splitlines() if "python -m workbench report" in ln)
    for action in sub.choices["report"]._actions:
        for opt in action.option_strings:
            assert opt in line or opt in ("-h", "--help"), opt
