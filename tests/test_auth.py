"""Login and sharing: --share needs users, passwords are checked, raters reach only the blind flow."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from test_ui_blind import CHECKPOINTS, PASSWORDS, client, create_and_open, launch, scan

from tests.support.loopback import CallFailed, PageClient
from workbench.cli import main as cli_main
from workbench.users import UserStore


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = launch(tmp_path_factory.mktemp("auth"), login=True)
    yield s
    s.demo.close()


# ---------------------------------------------------------------------------- starting


def test_share_without_users_refuses_to_start(tmp_path, monkeypatch, capsys, demo_catalog_path):
    import app

    monkeypatch.chdir(tmp_path)  # no users.json here
    assert app.main(["--share", "--config", str(demo_catalog_path)]) == 1
    err = capsys.readouterr().err
    assert "no users" in err and "python -m workbench users add" in err
    empty = tmp_path / "empty.json"
    empty.write_text('{"users": {}}')
    assert app.main(["--share", "--auth", str(empty), "--config", str(demo_catalog_path)]) == 1
    assert "no users, so nobody could log in" in capsys.readouterr().err


def test_users_cli_add_list_remove(tmp_path, capsys):
    f = tmp_path / "users.json"
    assert cli_main(["users", "add", "zed", "--role", "admin", "--password", "pw-123456-long", "--file", str(f)]) == 0
    assert cli_main(["users", "add", "yan", "--password", "pw-654321-long", "--file", str(f)]) == 0
    capsys.readouterr()
    assert cli_main(["users", "list", "--file", str(f)]) == 0
    assert capsys.readouterr().out.split("\n")[:2] == ["yan\trater", "zed\tadmin"]
    raw = f.read_text()
    assert "pw-123456-long" not in raw and json.loads(raw)["users"]["zed"]["salt"]
    store = UserStore(f)
    assert store.verify("zed", "pw-123456-long") and not store.verify("zed", "pw-1234567-long")
    assert cli_main(["users", "remove", "yan", "--file", str(f)]) == 0
    assert [u.name for u in store.list()] == ["zed"]
    assert cli_main(["users", "remove", "nobody", "--file", str(f)]) == 1


# ---------------------------------------------------------------------------- login


def test_wrong_password_is_refused(site):
    from gradio_client import Client

    r = httpx.post(f"{site.url}/login", data={"username": "ann", "password": "wrong-one"})
    assert r.status_code in (400, 401)
    assert httpx.get(f"{site.url}/config").status_code == 401
    with pytest.raises(PermissionError):
        PageClient(site.url, auth=("ann", "wrong-one"))
    with pytest.raises(Exception):  # noqa: B017 - gradio_client raises a plain ValueError
        Client(site.url, auth=("nobody", "whatever"), verbose=False)
    ok = Client(site.url, auth=("boss", PASSWORDS["boss"]), verbose=False)  # the right password works
    assert ok.view_api(return_format="dict", print_info=False) is not None
    PageClient(site.url, auth=("ann", PASSWORDS["ann"]))  # for a rater too


def test_gradio_client_sees_no_blind_endpoint(site):
    from gradio_client import Client

    with pytest.raises(ValueError, match="for admins"):  # a rater gets no API description at all
        Client(site.url, auth=("ann", PASSWORDS["ann"]), verbose=False)
    c = Client(site.url, auth=("boss", PASSWORDS["boss"]), verbose=False)
    info = c.view_api(return_format="dict", print_info=False)
    assert info["named_endpoints"] == {} or not any("vote" in k for k in info["named_endpoints"])
    page = client(site, "ann")
    vote_fn = page.deps_for(page.find("wb-vote-a"), "click")[0]["id"]
    with pytest.raises(ValueError):
        c.predict(None, "token", [], "", fn_index=vote_fn)


# ---------------------------------------------------------------------------- roles


ADMIN_TRIGGERS = ["wb-admin-create", "wb-admin-open", "wb-admin-close", "wb-admin-load"]


def test_a_rater_cannot_run_admin_handlers_even_by_fn_index(site):
    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Roles", references=["paul_1"], sentences=["pangram"])
    plans_dir = site.ctx.data_dir / "tests"
    before = sorted(p.name for p in plans_dir.iterdir())
    rater = client(site, "ann")
    rater.page_load()
    # the admin's own values for each input (a rater's page has the same components), with
    # the open test named wherever a test is picked
    forged_from = len(rater.transcript)
    for elem in ADMIN_TRIGGERS:
        dep = rater.deps_for(rater.find(elem), "click")[0]
        data = [test_id if i == rater.find("wb-admin-test") else rater.values.get(i) for i in dep["inputs"]]
        with pytest.raises(CallFailed) as e:
            rater.call(dep["id"], data)
        assert "for admins" in e.value.message or "not in the list of choices" in e.value.message
    assert sorted(p.name for p in plans_dir.iterdir()) == before
    assert site.ctx.services.plans.get(test_id).status == "open"
    # the admin panel's load gives a rater nothing but "hidden"
    forged_to = len(rater.transcript)  # (the refusals above echo the forged names back)
    admin_load = [d for d in rater.load_deps() if rater.find("wb-admin-test") in d["outputs"]][0]
    res = rater.call(admin_load["id"], [])
    assert res.data[0] == {"visible": False, "__type__": "update"}
    assert not scan(rater.transcript[:forged_from] + rater.transcript[forged_to:], [])


def test_no_handler_gives_a_rater_checkpoint_names(site):
    """Every handler in the app, called by a rater with the page's values, names no checkpoint."""
    admin = client(site, "boss")
    create_and_open(site, admin, "Sweep", references=["surya_1"], sentences=["names"])
    rater = client(site, "bob")
    rater.page_load()
    assert rater.props[rater.find("wb-test")]["choices"]
    texts = []
    for dep in rater.deps.values():
        if not dep.get("backend_fn"):
            continue
        data = [None if rater.components[i]["type"] == "state" else rater.values.get(i) for i in dep["inputs"]]
        try:
            rater.call(dep["id"], data)
        except CallFailed as e:
            texts.append(e.message)
    leaks = scan(rater.transcript, [])
    assert not leaks, leaks[:3]
    for name in CHECKPOINTS:
        assert not any(re.search(rf"\b{name}\b", t) for t in texts)


def test_raters_land_on_the_blind_tab_with_other_tabs_hidden(site):
    rater = client(site, "ann")
    rater.page_load()
    tabs = {c["props"].get("label"): i for i, c in rater.components.items() if c["type"] == "tabitem"}
    assert rater.props[tabs["Compare"]].get("visible") is False
    assert rater.props[tabs["Results"]].get("visible") is False
    tabs_id = next(i for i, c in rater.components.items() if c["type"] == "tabs")
    assert rater.props[tabs_id].get("selected") == "blind"
    admin = client(site, "boss")
    admin.page_load()
    assert admin.props[tabs["Compare"]].get("visible") is True
