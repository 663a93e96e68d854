"""Results tab: admin-only handlers, live refresh, links to Compare, and agreement with the CLI."""

from __future__ import annotations

import html
import json
import re
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from gradio_client import Client

from tests.conftest import ROOT, free_port, mentions
from tests.test_stats import simulate_votes, vote, vote_rows, write_votes_csv
from workbench import report
from workbench.catalog import load_catalog
from workbench.cli import main
from workbench.ui import results
from workbench.ui.common import AppContext
from workbench.users import UserStore

ADMIN = ("ada", "ada-secret-1")
RATER = ("rob", "rob-secret-1")


def make_votes(path: Path, rng) -> Path:
    df = pd.concat(
        [
            simulate_votes(rng, test_id="t1"),
            simulate_votes(rng, raters=("zed",), a_bias={"zed": 0.9}, start=5000),
            simulate_votes(rng, test_id="t2", raters=("ann",), start=8000),
        ],
        ignore_index=True,
    )
    return write_votes_csv(df, path)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The Results tab served with login: ada is an admin, rob a rater."""
    import numpy as np

    tmp = tmp_path_factory.mktemp("results-tab")
    votes = make_votes(tmp / "votes.csv", np.random.default_rng(5))
    users = UserStore(tmp / "users.json")
    users.add(*ADMIN, role="admin")
    users.add(*RATER, role="rater")
    ctx = AppContext.create(
        catalog=load_catalog(ROOT / "checkpoints.yaml"), votes_path=votes, data_dir=tmp / "data", users=users
    )
    with gr.Blocks() as demo, gr.Tab("Results"):
        view = results.build()
        results.wire(ctx, demo, view)
        assert len(view.outputs) == results._N_OUTPUTS
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, auth=lambda u, p: users.verify(u, p), quiet=True)
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", ctx=ctx, demo=demo, votes=votes)
    finally:
        demo.close()


def req(user: str | None):
    return SimpleNamespace(username=user)


def cells(fragment: str) -> list[str]:
    """The text of every table cell in an HTML fragment, in document order."""
    return [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", fragment, re.S)]


def is_skip(x) -> bool:
    return isinstance(x, dict) and x == {"__type__": "update"}


def fn_index(config: dict, fn_name: str) -> int:
    """Index of the event bound to handler ``fn_name`` (the page config does not name it: match by targets)."""
    comps = {c["id"]: c for c in config["components"]}
    for i, dep in enumerate(config["dependencies"]):
        for target_id, event in dep["targets"]:
            comp = comps.get(target_id, {})
            if fn_name == "on_select" and event == "click" and comp.get("props", {}).get("value") == "Refresh":
                return dep.get("id", i)
    raise AssertionError(f"no event for {fn_name}")


def login(url: str, user: tuple[str, str]):
    """A URL opener holding the login cookie of ``user``."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    data = urllib.parse.urlencode({"username": user[0], "password": user[1]}).encode()
    opener.open(url + "/login", data=data, timeout=10)
    return opener


def login_config(url: str, user: tuple[str, str]) -> str:
    return login(url, user).open(url + "/config", timeout=10).read().decode()


def raw_call(url: str, user: tuple[str, str], fn: int, data: list) -> dict:
    """Run event ``fn`` the way any logged-in browser could (a hidden handler is still reachable).

    Returns the final queue message: ``{"success": bool, "output": {...}}``.
    """
    opener = login(url, user)
    session = "t" + user[0]
    body = json.dumps({"data": data, "fn_index": fn, "session_hash": session, "event_data": None, "trigger_id": None})
    request = urllib.request.Request(
        url + "/gradio_api/queue/join", data=body.encode(), headers={"Content-Type": "application/json"}
    )
    opener.open(request, timeout=10).read()
    with opener.open(url + f"/gradio_api/queue/data?session_hash={session}", timeout=60) as stream:
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    return msg
    raise AssertionError("the queue closed without a result")


# --------------------------------------------------------------------------- roles


def test_every_handler_refuses_raters(served):
    ctx = served.ctx
    with pytest.raises(gr.Error, match="for admins"):
        results.on_select(ctx, "t1", req(RATER[0]))
    with pytest.raises(gr.Error, match="for admins"):
        results.on_tick(ctx, "t1", None, req(RATER[0]))
    with pytest.raises(gr.Error, match="for admins"):
        results.on_live(ctx, True, req(RATER[0]))
    with pytest.raises(gr.Error, match="for admins"):
        results.on_download(ctx, "t1", req(RATER[0]))
    with pytest.raises(gr.Error, match="log in"):
        results.on_select(ctx, "t1", req(None))
    # page load: nothing at all for a rater (no error popup, timer stays off)
    out = results.on_load(ctx, req(RATER[0]))
    assert all(is_skip(x) for x in out)
    # and everything for an admin, timer on
    out = results.on_load(ctx, req(ADMIN[0]))
    assert out[-1].active is True
    assert "apr27" in out[2]


def test_page_config_holds_no_names(served):
    for user in (RATER, ADMIN):
        config = login_config(served.url, user)
        assert '"components"' in config
        for name in ("feb1", "apr24", "apr27", "surya_1", "paul_2", str(served.votes)):
            assert not mentions(config, name), (user[0], name)


def test_rater_cannot_reach_results_through_the_api(served):
    config = json.loads(login_config(served.url, ADMIN))
    idx = fn_index(config, "on_select")
    admin = raw_call(served.url, ADMIN, idx, ["t1", False])
    assert admin["success"] and "apr27" in admin["output"]["data"][2]
    rater = raw_call(served.url, RATER, idx, ["t1", False])
    assert not rater["success"]
    text = json.dumps(rater)
    assert "for admins" in text and not mentions(text, "apr27") and not mentions(text, "feb1")
    # and the named API lists nothing of the tab
    api = Client(served.url, auth=ADMIN, verbose=False).view_api(print_info=False, return_format="dict")
    assert not api["named_endpoints"] and not api["unnamed_endpoints"]


# --------------------------------------------------------------------------- content


def test_tab_and_cli_agree_on_every_number(served, capsys):
    for test_id in ("t1", ""):
        out = results.on_select(served.ctx, test_id, req(ADMIN[0]))
        shown = cells("".join(out[7:11]))
        # the ranking shows both scopes' tiers, each labelled
        assert "<th>Tier, raters in general</th>" in out[7] and "<th>Tier, these raters</th>" in out[7]
        assert main(["report", str(served.votes), *(["--test", test_id] if test_id else [])]) == 0
        printed = capsys.readouterr().out
        summary = report.build_summary(served.votes, test_id or None)
        tables = {t.key: t for t in report.report_tables(summary)}
        expected = [
            v
            for name in results.SECTIONS
            for key in results.SECTIONS[name]
            if key in tables
            for v in tables[key].frame.values.ravel()
        ]
        assert shown == expected
        # the CLI prints the same cells, row by row
        assert printed == report.render_text(summary)
        for t in tables.values():
            for row in t.frame.values.tolist():
                assert re.search(r"\s+".join(map(re.escape, row)), printed), (t.title, row)
        # and the same sentences
        assert out[2] == "\n".join(f"- {line}" for line in report.headline(summary))
        for line in report.headline(summary):
            assert line in printed


def test_cells_link_to_their_clips_in_compare(served):
    out = results.on_select(served.ctx, "t1", req(ADMIN[0]))
    overview = out[7]
    links = re.findall(r'<a href="([^"]+)"[^>]*>([^<]*)</a>', overview)
    assert links
    summary = report.build_summary(served.votes, "t1")
    first = summary.pairs.iloc[0]
    href = html.unescape(links[0][0])
    assert href.startswith("?")
    q = urllib.parse.parse_qs(href[1:])
    assert q["tab"] == ["compare"]
    assert q["reference"] == [first.example_reference] and q["sentence"] == [first.example_sentence]
    assert q["checkpoints"][0].split(",") == first.example_checkpoints.split(",")
    assert q["preset"] == ["none"] and q["take"] == ["1"]
    # every heatmap cell has its own reference
    heat_refs = {urllib.parse.parse_qs(html.unescape(h)[1:])["reference"][0] for h, _ in links}
    assert set(summary.references) <= heat_refs


def test_compare_href_builds_the_contract_query():
    href = results.compare_href(
        {"reference": "paul_1", "sentence": "names", "checkpoints": ["feb1", "apr27"], "preset": "denoise"}
    )
    q = urllib.parse.parse_qs(href.lstrip("?"))
    assert q == {
        "tab": ["compare"],
        "reference": ["paul_1"],
        "sentence": ["names"],
        "checkpoints": ["feb1,apr27"],
        "preset": ["denoise"],
        "take": ["1"],
    }


def test_live_refresh_only_when_the_file_changes(tmp_path, rng):
    path = write_votes_csv(vote_rows([vote(i, a_side="A", choice="B") for i in range(3)]), tmp_path / "v.csv")
    ctx = AppContext.create(catalog=load_catalog(ROOT / "checkpoints.yaml"), votes_path=path, data_dir=tmp_path)
    first = results.on_tick(ctx, "", None, req(None))
    assert "3 counted votes" in first[2]
    shown = first[-1]
    again = results.on_tick(ctx, "", shown, req(None))
    assert all(is_skip(x) for x in again)
    # a new vote arrives
    with open(path, "a", newline="", encoding="utf-8") as f:
        f.write(",".join(str(v) for v in vote(7, a_side="B", choice="B").values()) + "\r\n")
    after = results.on_tick(ctx, "", shown, req(None))
    assert "4 counted votes" in after[2]
    assert after[-1] != shown
    # another test picked: redraw even though the file is the same
    other = results.on_tick(ctx, "t1", after[-1], req(None))
    assert not is_skip(other[2])
    # a broken file is reported once, then skipped until it changes again
    with open(path, "a", encoding="utf-8") as f:
        f.write("garbage,row\r\n")
    with pytest.warns(UserWarning, match="row 6"):
        broken = results.on_tick(ctx, "", after[-1], req(None))
    assert all(is_skip(x) for x in broken[:-1])
    assert all(is_skip(x) for x in results.on_tick(ctx, "", broken[-1], req(None)))


def test_no_votes_yet_and_an_empty_test(tmp_path):
    ctx = AppContext.create(
        catalog=load_catalog(ROOT / "checkpoints.yaml"), votes_path=tmp_path / "none.csv", data_dir=tmp_path
    )
    out = results.on_select(ctx, "", req(None))
    assert out[1].startswith("No votes in")
    assert out[2].startswith("- No votes yet")
    ctx.votes_path = write_votes_csv(vote_rows([vote(0)]), tmp_path / "one.csv")
    out = results.on_select(ctx, "t-empty", req(None))
    assert "No votes yet for test t-empty" in out[2]
    choices = [v for _, v in out[0].choices]
    assert choices[0] == "" and "t1" in choices


def test_stored_tests_appear_in_the_picker(tmp_path, monkeypatch):
    ctx = AppContext.create(
        catalog=load_catalog(ROOT / "checkpoints.yaml"), votes_path=tmp_path / "none.csv", data_dir=tmp_path
    )
    from workbench import abtest

    plans = [SimpleNamespace(test_id="ab-1", title="Feb vs Apr")]
    monkeypatch.setattr(abtest.PlanStore, "list", lambda self, status=None: plans)
    out = results.on_select(ctx, "", req(None))
    assert ("Feb vs Apr (ab-1)", "ab-1") in out[0].choices


def test_download_writes_the_html_report(served):
    f = results.on_download(served.ctx, "t1", req(ADMIN[0]))
    path = Path(f.value["path"] if isinstance(f.value, dict) else f.value)
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.count("data:image/png;base64,") == 4
    assert path.name == "results-t1.html"


def test_tab_and_cli_agree_on_votes_from_the_vote_store(tmp_path, capsys):
    """Votes appended by the real vote store (a changed vote, reasons, a formula-like comment)."""
    from workbench.votes import Vote, VoteStore

    store = VoteStore(tmp_path / "votes" / "votes.csv")
    n = 0

    def cast(rater, a, b, a_side, choice, supersedes="", trial=None, **kw):
        nonlocal n
        n += 1
        return store.append(
            Vote.create(
                rater=rater,
                test_id="ab-1",
                trial_id=trial or f"{rater}-{n}",
                reference=kw.get("reference", "paul_1"),
                sentence_id=kw.get("sentence", "names"),
                checkpoint_a=a,
                checkpoint_b=b,
                preset_a="none",
                preset_b="none",
                a_side=a_side,
                choice=choice,
                reasons=kw.get("reasons", ()),
                comment=kw.get("comment", ""),
                played_a_s=3.2,
                played_b_s=2.9,
                decision_s=7.5,
                supersedes=supersedes,
            )
        )

    first = cast("ann", "feb1", "apr27", "A", "A", trial="ann-x")
    cast("ann", "feb1", "apr27", "A", "B", supersedes=first.vote_id, trial="ann-x", reasons=["accent"])
    for k in range(5):
        cast("bob", "feb1", "apr27", "AB"[k % 2], "BA"[k % 2], reasons=["accent", "inflection"], comment="=1+1")
    cast("bob", "feb1", "apr27", "A", "none", reference="surya_2")
    cast("cyd", "apr24", "apr27", "B", "B", reference="surya_2", reasons=["dull/flat"])

    ctx = AppContext.create(catalog=load_catalog(ROOT / "checkpoints.yaml"), votes_path=store.path, data_dir=tmp_path)
    out = results.on_select(ctx, "ab-1", req(None))
    assert main(["report", str(store.path), "--test", "ab-1"]) == 0
    printed = capsys.readouterr().out
    summary = report.build_summary(store.path, "ab-1")
    assert summary.n_votes == 8 and summary.extra["superseded"] == 1
    pair = summary.pairs.set_index(["item_a", "item_b"]).loc[("feb1", "apr27")]
    assert (pair.wins_a, pair.wins_b, pair.ties) == (0, 6, 1)
    tables = {t.key: t for t in report.report_tables(summary)}
    expected = [
        v
        for keys in results.SECTIONS.values()
        for key in keys
        if key in tables
        for v in tables[key].frame.values.ravel()
    ]
    assert cells("".join(out[7:11])) == expected
    assert printed == report.render_text(summary)
    assert "feb1 vs apr27: 2 raters, 1 clip, 6 decisive votes, 1 tie" in out[2]
    assert "apr27 preferred to feb1 in 100%" in out[2] and "Warning: small sample" in out[2]
    assert all(line in printed for line in report.headline(summary))


def test_admins_votes_are_left_out_unless_included(tmp_path, rng):
    df = simulate_votes(rng, raters=("ann", "ada"))
    df["rater_role"] = np.where(df["rater"] == "ada", "admin", "rater")
    path = tmp_path / "v.csv"
    df.to_csv(path, index=False, lineterminator="\r\n")
    ctx = AppContext.create(catalog=load_catalog(ROOT / "checkpoints.yaml"), votes_path=path, data_dir=tmp_path)
    out = results.on_select(ctx, "", req(None))
    n_ada = int(((df["rater"] == "ada") & (df["repeat_of"] == "")).sum())
    assert "from 1 rater" in out[2] and "admin votes left out" in out[2]
    both = results.on_select(ctx, "", req(None), include_admin=True)
    assert "from 2 raters" in both[2] and "admin votes left out" not in both[2]
    assert report.build_summary(path, include_admin=True).n_counted - report.build_summary(path).n_counted == n_ada
    # the timer redraws when the toggle changed, not otherwise
    assert all(is_skip(x) for x in results.on_tick(ctx, "", both[-1], req(None), include_admin=True))
    assert not is_skip(results.on_tick(ctx, "", both[-1], req(None), include_admin=False)[2])
