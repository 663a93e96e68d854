"""Results: metric-vote agreement measured on real votes (vote store) and demo clips."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from workbench.quality import clip_metrics
from workbench.ui import agreement_panel, quality_panel
from workbench.ui.common import AppContext
from workbench.users import UserStore
from workbench.votes import Vote, VoteStore


def req(user: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(username=user, query_params={})


@pytest.fixture
def ctx(demo_catalog, tmp_path) -> AppContext:
    return AppContext.create(
        catalog=demo_catalog, votes_path=tmp_path / "votes" / "votes.csv", data_dir=tmp_path / "data"
    )


def cast(store, n, *, a, b, sentence, choice, a_side="A", **kw):
    return store.append(
        Vote.create(rater=kw.pop("rater", f"r{n}"), test_id=kw.pop("test_id", "t1"), trial_id=f"trial-{n}",
                    reference="surya_1", sentence_id=sentence, checkpoint_a=a, checkpoint_b=b, preset_a="none",
                    preset_b="none", a_side=a_side, choice=choice, played_a_s=2, played_b_s=2, decision_s=3, **kw)
    )  # fmt: skip


@pytest.mark.slow  # runs the DNSMOS model
def test_agreement_of_dnsmos_with_the_votes(ctx):
    r = ctx.services.renderer
    from workbench.render import RenderRequest

    for ck in ("feb1", "apr24"):
        for s in ("pangram", "question"):
            r.render(RenderRequest(ck, "surya_1", s))
    lookup = clip_metrics(quality_panel.get_quality_store(ctx), r)
    better = {
        s: max(("feb1", "apr24"), key=lambda ck, s=s: lookup(ck, "none", "surya_1", s, 1)["dnsmos_ovrl"])
        for s in ("pangram", "question")
    }
    store = VoteStore(ctx.votes_path)
    n = 0
    for s in ("pangram", "question"):  # per sentence: 4 votes for the better-OVRL clip, 1 against
        for k in range(5):
            n += 1
            winner = better[s] if k < 4 else ({"feb1", "apr24"} - {better[s]}).pop()
            cast(store, n, a="feb1", b="apr24", sentence=s, choice="A" if winner == "feb1" else "B")
    cast(store, 98, a="feb1", b="apr24", sentence="pangram", choice="A", trial_kind="control")
    cast(store, 99, a="feb1", b="apr24", sentence="pangram", choice="A", rater="boss", rater_role="admin")
    assert agreement_panel.test_choices(ctx, req()).choices[-1] == ("t1", "t1")
    notes, table = agreement_panel.measure_agreement(ctx, "t1", False, req(), lambda *a, **k: None)
    dns = table[table["metric"] == "DNSMOS OVRL"]
    assert list(dns["a"]) == ["apr24", "all pairs"]  # the pair has 10 votes: enough for its own row
    overall = dns.iloc[-1]
    assert (overall["votes"], overall["comparable"], overall["agree"]) == (10, 10, 8)
    assert overall["share"] == pytest.approx(0.8) and overall["ci_low"] == pytest.approx(0.490, abs=1e-3)
    assert "DNSMOS OVRL picked the preferred clip in 8 of 10 decisive votes (80%" in notes
    assert "not reliable enough to replace listening" in notes or "coin flip" in notes
    sim = table[table["metric"] == "speaker similarity"].iloc[-1]
    assert sim["votes"] == 10 and sim["comparable"] == 10
    _, with_admin = agreement_panel.measure_agreement(ctx, "t1", True, req(), lambda *a, **k: None)
    assert with_admin[with_admin["metric"] == "DNSMOS OVRL"].iloc[-1]["votes"] == 11


def test_no_votes_yet_and_raters(ctx, tmp_path):
    notes, table = agreement_panel.measure_agreement(ctx, None, False, req(), lambda *a, **k: None)
    assert "no decisive votes with two measured clips yet" in notes and len(table) == 2
    users = UserStore(tmp_path / "users.json")
    users.add("rob", "rob-secret-1", "rater")
    ctx.users = users
    assert agreement_panel.test_choices(ctx, req("rob")).choices == []  # no error toast on a rater's page
    with pytest.raises(gr.Error, match="for admins"):
        agreement_panel.measure_agreement(ctx, None, False, req("rob"), lambda *a, **k: None)
