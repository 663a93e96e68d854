"""Safe on a public link: login throttling, password policy, password checks off the event
loop, quotas, revocation and idle expiry, sessions bound to their login, safe defaults.

Each test drives the real app over loopback (login on, as on a public link) the way an
attacker would: raw HTTP for logins and uploads, :class:`tests.support.loopback.PageClient` for
handlers. Failed logins come from their own loopback address (127.0.0.x) so the
per-address lock-out of one test does not spill into the next.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import threading
import time
from pathlib import Path

import httpx
import pytest
from test_ui_blind import PASSWORDS, Rater, client, create_and_open, launch

from tests.support.loopback import CallFailed, PageClient
from workbench import security
from workbench.cli import main as cli_main
from workbench.errors import AuthError
from workbench.security import LoginThrottle, RateLimiter, check_password, sweep_folder


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = launch(tmp_path_factory.mktemp("security"), login=True)
    yield s
    s.demo.close()


def guard(site):
    return site.ctx.state.guard


def http_from(address: str) -> httpx.Client:
    """An HTTP client whose connections come from ``address`` (any 127.0.0.x works on Linux)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60)


def login(http: httpx.Client, url: str, user: str, password: str) -> httpx.Response:
    return http.post(f"{url}/login", data={"username": user, "password": password})


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# ---------------------------------------------------------------------------- 1. password guessing


def test_wrong_passwords_lock_the_user_out_even_for_the_right_password(site, caplog, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(guard(site).throttle, "clock", clock)
    http = http_from("127.0.0.11")
    caplog.set_level(logging.WARNING, logger="workbench.ui.guard")
    for i in range(5):
        assert login(http, site.url, "dan", f"guess-{i}").status_code == 400
    r = login(http, site.url, "dan", PASSWORDS["dan"])  # the right one, during the lock-out
    assert r.status_code == 429
    assert "try again in 1 s" in r.json()["detail"] and r.headers["retry-after"] == "1"
    assert any("'dan'" in m and "locked for 1 s" in m for m in caplog.messages)
    # from another address the user name is still locked
    assert login(http_from("127.0.0.12"), site.url, "dan", PASSWORDS["dan"]).status_code == 429
    clock.t += 1.5  # the lock is over: one more wrong guess doubles it
    assert login(http, site.url, "dan", "guess-5").status_code == 400
    clock.t += 1.5
    r = login(http, site.url, "dan", PASSWORDS["dan"])
    assert r.status_code == 429 and "try again in 1 s" in r.json()["detail"]  # 2 s lock, 0.5 s left
    clock.t += 1.0
    assert login(http, site.url, "dan", PASSWORDS["dan"]).status_code == 200


def test_unknown_names_lock_the_address(site, monkeypatch):
    monkeypatch.setattr(guard(site).throttle, "clock", FakeClock())
    http = http_from("127.0.0.13")
    for i in range(5):
        assert login(http, site.url, f"nobody{i}", "whatever-pw").status_code == 400
    assert login(http, site.url, "bob", PASSWORDS["bob"]).status_code == 429
    assert login(http_from("127.0.0.14"), site.url, "bob", PASSWORDS["bob"]).status_code == 200


def test_behind_the_share_tunnel_a_loopback_peer_is_no_address(site):
    from workbench.ui.guard import Guard, GuardMiddleware

    tunnel = GuardMiddleware(None, Guard(site.ctx, behind_tunnel=True))
    assert tunnel.client_address({"client": ("127.0.0.1", 5000)}) is None
    assert tunnel.client_address({"client": ("203.0.113.9", 5000)}) == "203.0.113.9"
    assert GuardMiddleware(None, guard(site)).client_address({"client": ("127.0.0.1", 5000)}) == "127.0.0.1"


def test_throttle_backs_off_exponentially_and_forgets():
    clock = FakeClock()
    t = LoginThrottle(free=5, base_s=1, max_s=900, forget_s=3600, clock=clock)
    locks = [t.failed("eve", "10.0.0.1") for _ in range(16)]
    assert locks[:4] == [0, 0, 0, 0] and locks[4:9] == [1, 2, 4, 8, 16] and locks[-1] == 900
    assert t.wait_s("eve", None) == 900 and t.wait_s("other", "10.0.0.1") == 900
    clock.t += 901 + 3600
    assert t.wait_s("eve", "10.0.0.1") == 0 and t.failed("eve", None) == 0  # forgotten


def test_a_stranger_guessing_a_user_name_does_not_lock_its_owner_out():
    clock = FakeClock()
    t = LoginThrottle(free=5, base_s=1, max_s=900, forget_s=3600, clock=clock)
    t.succeeded("ann", "10.0.0.7")  # ann logged in from her usual address once
    for i in range(16):  # a stranger guesses ann's password from rotating addresses
        t.failed("ann", f"203.0.113.{i}")
    assert t.wait_s("ann", "198.51.100.1") == 900  # any other address: the name is locked
    assert t.wait_s("ann", "10.0.0.7") == 0  # ann, from where she logs in: not held by it
    # from her address the guesses count on their own, with the same back-off
    locks = [t.failed("ann", "10.0.0.7") for _ in range(6)]
    assert locks == [0, 0, 0, 0, 1, 2] and t.wait_s("ann", "10.0.0.7") == 2
    assert t.wait_s("bob", "10.0.0.7") == 2  # and on the address, as before
    clock.t += 3
    t.succeeded("ann", "10.0.0.7")  # her own failures are cleared by her next login
    assert t.wait_s("ann", "10.0.0.7") == 0 and t.wait_s("ann", "198.51.100.1") == 0
    # only the last few addresses are remembered
    small = LoginThrottle(known_per_user=2, clock=clock)
    for a in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        small.succeeded("ann", a)
    for i in range(5):
        small.failed("ann", f"203.0.113.{i}")
    assert [small.wait_s("ann", a) > 0 for a in ("10.0.0.1", "10.0.0.2", "10.0.0.3")] == [True, False, False]


def test_the_owner_logs_in_from_a_known_address_while_strangers_have_locked_the_name(site, monkeypatch):
    monkeypatch.setattr(guard(site).throttle, "clock", FakeClock())
    owner = http_from("127.0.0.16")
    assert login(owner, site.url, "dan", PASSWORDS["dan"]).status_code == 200
    for i in range(5):  # a hostile rater rotates addresses to lock "dan" out
        assert login(http_from(f"127.0.0.{20 + i}"), site.url, "dan", f"guess-{i}").status_code == 400
    assert login(http_from("127.0.0.30"), site.url, "dan", PASSWORDS["dan"]).status_code == 429
    assert login(owner, site.url, "dan", PASSWORDS["dan"]).status_code == 200


def test_password_checks_run_in_a_small_pool_off_the_event_loop(site, monkeypatch):
    threads: list[str] = []
    real = site.ctx.users.verify

    def spy(name, password):
        threads.append(threading.current_thread().name)
        return real(name, password)

    monkeypatch.setattr(site.ctx.users, "verify", spy)
    http = http_from("127.0.0.15")
    assert login(http, site.url, "ann", PASSWORDS["ann"]).status_code == 200
    assert threads and all(n.startswith("password-check") for n in threads), threads
    assert guard(site).checker.workers <= max(1, (os.cpu_count() or 2) // 2)


# ---------------------------------------------------------------------------- password policy


@pytest.mark.parametrize(
    "name,password,why",
    [
        ("zed", "123456", "at least 10"),
        ("zed", "short-pw", "at least 10"),
        ("zedzedzedzed", "zedzedzedzed", "user name"),
        ("zed", "password123", "common password"),
        ("zed", "aaaaaaaaaaaa", "common password"),
    ],
)
def test_password_policy_refuses(name, password, why):
    with pytest.raises(AuthError, match=why):
        check_password(name, password)


def test_users_add_policy_and_password_sources(tmp_path, capsys, monkeypatch):
    f = str(tmp_path / "users.json")
    assert cli_main(["users", "add", "zed", "--password", "123456", "--file", f]) == 1
    assert "at least 10" in capsys.readouterr().err
    assert cli_main(["users", "add", "zed", "--password", "zed", "--file", f]) == 1
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert cli_main(["users", "add", "zed", "--password-stdin", "--file", f]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err
    assert cli_main(["users", "add", "yan", "--password", "another long one", "--file", f]) == 0
    assert "--password is visible" in capsys.readouterr().err
    from workbench.users import UserStore

    assert UserStore(f).verify("zed", "correct horse battery")
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600


# ---------------------------------------------------------------------------- 3. quotas


def test_raters_cannot_upload_admins_can(site):
    rater = client(site, "ann")
    files = {"files": ("plan.yaml", b"x" * 1000, "application/octet-stream")}
    r = rater.http.post("/gradio_api/upload", files=files)
    assert r.status_code == 403 and "for admins" in r.text
    admin = client(site, "boss")
    assert admin.http.post("/gradio_api/upload", files=files).status_code == 200
    assert httpx.post(f"{site.url}/gradio_api/upload", files=files).status_code == 401  # anonymous


def test_queued_handlers_cannot_be_called_directly(site):
    rater = client(site, "bob")
    start = rater.deps_for(rater.find("wb-start"), "click")[0]
    assert start.get("queue") is not False
    body = {"data": [None, "", "ab-000000"], "fn_index": start["id"], "session_hash": rater.session_hash}
    r = rater.http.post("/gradio_api/run/predict", json=body)
    assert r.status_code == 403 and "queue" in r.json()["detail"]


def test_start_is_rate_limited_per_session_and_per_user(site):
    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Quota", references=["paul_1"], sentences=["pangram"])
    r = Rater(site, "cy")
    burst = int(guard(site).limits.per_session["start"][1])
    with pytest.raises(CallFailed, match="Too many requests from this page"):
        for _ in range(burst + 2):
            r.start(test_id)
    # a fresh page of the same user still has the user's allowance, until that runs out too
    per_user = int(guard(site).limits.per_user["start"][1])
    refused = 0
    for _ in range(per_user):
        try:
            Rater(site, "cy").start(test_id)
        except CallFailed as e:
            assert "Too many requests" in e.message
            refused += 1
    assert refused > 0
    # votes still go through
    r2 = Rater(site, "dan")
    r2.start(test_id)
    r2.listen()
    r2.vote("A")


def test_below_the_free_space_floor_serving_refuses_but_votes_work(site, monkeypatch):
    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Disk", references=["surya_1"], sentences=["names"])
    r = Rater(site, "bob")
    r.start(test_id)
    r.listen()
    monkeypatch.setattr(guard(site).limits, "min_free_bytes", security.free_bytes(site.ctx.data_dir) * 4)
    r.pc.set("wb-reasons", [])
    r.pc.set("wb-comment", "")
    vote_dep = r.pc.deps_for(r.pc.find("wb-vote-a"), "click")[0]
    r.pc.call(vote_dep["id"], [None, r.value("wb-token"), [], ""])  # the vote itself is saved
    with pytest.raises(CallFailed, match="out of disk space"):
        r.pc.run_dep([d for d in r.pc.deps.values() if d.get("trigger_after") == vote_dep["id"]][0])
    with pytest.raises(CallFailed, match="out of disk space"):
        Rater(site, "bob").start(test_id)
    admin.page_load()
    for label in ("Render batch", "Render and compare"):  # an admin's renders too
        with pytest.raises(CallFailed, match="out of disk space"):
            admin.trigger(admin.find(label=label, kind="button"))


def test_every_quota_names_a_handler_of_the_app(site):
    # the guard finds a handler's category by its name: a renamed handler would lose its quota
    from workbench.ui.guard import QUOTAS

    names = {getattr(fn, "name", None) for fn in site.demo.fns.values()}
    assert set(QUOTAS) <= names, sorted(set(QUOTAS) - names)


def test_gradio_temp_files_are_in_the_apps_own_private_folder(site):
    from workbench.ui.guard import temp_dir

    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Temp", references=["paul_1"], sentences=["names"])
    r = Rater(site, "ann")
    r.start(test_id)
    folder = temp_dir(site.ctx)
    assert r.urls()[0].startswith("wb/clip/")  # blind clips come from the app's own route, not a temp folder
    assert "/gradio/" not in r.urls()[0]  # not the machine-wide folder every Gradio app shares
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700


def test_a_closed_page_has_its_served_copies_deleted(site):
    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Close", references=["surya_1"], sentences=["pangram"])
    r = Rater(site, "dan")
    r.start(test_id)
    names = [u.rsplit("/", 1)[-1] for u in r.urls()]
    from workbench.ui.guard import temp_dir

    tmp = temp_dir(site.ctx)

    def on_disk() -> list[Path]:
        return [p for n in names for p in [site.ctx.data_dir / "served" / n, *tmp.glob(f"*/{n}")] if p.exists()]

    assert len(on_disk()) >= 2
    with r.pc.http.stream("GET", f"/gradio_api/heartbeat/{r.pc.session_hash}") as s:
        next(s.iter_lines())  # the page is open ...
    # ... and closed: Gradio runs the unload handler in the background
    deadline = time.monotonic() + 20
    while on_disk() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert on_disk() == []


def test_sweep_by_age_and_size(tmp_path):
    old = time.time() - 7200
    for i in range(10):
        p = tmp_path / f"d{i}" / "f.bin"
        p.parent.mkdir()
        p.write_bytes(b"x" * 1000)
        os.utime(p, (old + i * 600 if i < 3 else time.time() - 100 + i,) * 2)
    # 3 files older than an hour go, then the oldest until at most 4000 bytes remain
    assert sweep_folder(tmp_path, max_bytes=4000, max_age_s=3600) == 6
    assert sorted(p.parent.name for p in tmp_path.rglob("*.bin")) == ["d6", "d7", "d8", "d9"]
    assert len(list(tmp_path.iterdir())) == 4  # emptied folders are removed


def test_rate_limiter_refills():
    clock = FakeClock()
    b = RateLimiter(per_s=0.5, burst=2, clock=clock)
    assert [b.take("k"), b.take("k")] == [0, 0] and b.take("k") == pytest.approx(2.0)
    clock.t += 2
    assert b.take("k") == 0 and b.take("other") == 0


# ---------------------------------------------------------------------------- 4. revocation and expiry


def _routes_for(page: PageClient) -> dict[str, int]:
    """Status of every route a stolen or stale cookie could use."""
    dep = page.load_deps()[0]
    body = {"data": [], "fn_index": dep["id"], "session_hash": page.session_hash}
    files = {"files": ("x.yaml", b"x", "application/octet-stream")}
    return {
        "config": page.http.get("/config").status_code,
        "upload": page.http.post("/gradio_api/upload", files=files).status_code,
        "queue": page.http.post("/gradio_api/queue/join", json=body).status_code,
        "file": page.http.get(f"/gradio_api/file={Path(__file__)}").status_code,
    }


def test_removing_a_user_ends_their_sessions_on_every_route(tmp_path):
    s = launch(tmp_path, login=True)
    try:
        page = client(s, "cy")
        assert page.http.get("/config").status_code == 200
        s.ctx.users.remove("cy")
        routes = _routes_for(page)
        assert set(routes.values()) == {401}, routes
        # a password change ends the old cookie too; the new password works
        ann = client(s, "ann")
        s.ctx.users.add("ann", "a brand new password", "rater")
        assert set(_routes_for(ann).values()) == {401}
        PageClient(s.url, auth=("ann", "a brand new password"))
    finally:
        s.demo.close()


def test_odd_cookies_of_other_sites_do_not_log_a_user_out(site):
    page = client(site, "bob")
    mine = "; ".join(f"{k}={v}" for k, v in page.http.cookies.items())
    dep = page.load_deps()[0]
    body = {"data": [], "fn_index": dep["id"], "session_hash": page.session_hash}
    odd = {"cookie": 'prefs={"a": [1, 2]}; x="y; ' + mine}
    r = httpx.post(f"{site.url}/gradio_api/queue/join", json=body, headers=odd)
    assert r.status_code == 200, r.text


def test_sessions_expire_after_the_idle_time(site, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(guard(site).book, "clock", clock)
    page = client(site, "bob")
    assert page.http.get("/config").status_code == 200
    clock.t += guard(site).limits.idle_s - 60
    assert page.http.get("/config").status_code == 200  # used: the idle time starts again
    clock.t += guard(site).limits.idle_s - 60
    assert page.http.get("/config").status_code == 200
    clock.t += guard(site).limits.idle_s + 1
    assert page.http.get("/config").status_code == 401
    assert guard(site).limits.idle_s == 12 * 3600


# ---------------------------------------------------------------------------- 5. sessions bound to their login


def test_another_login_cannot_press_start_in_my_session(site):
    admin = client(site, "boss")
    test_id = create_and_open(site, admin, "Binding", references=["paul_1"], sentences=["pangram"])
    ann = Rater(site, "ann")
    ann.start(test_id)
    ann.listen()
    bob = client(site, "bob")
    bob.session_hash = ann.pc.session_hash
    start = bob.deps_for(bob.find("wb-start"), "click")[0]
    with pytest.raises(CallFailed, match="belongs to another login"):
        bob.call(start["id"], [None, "", test_id])
    r = bob.http.get("/gradio_api/queue/data", params={"session_hash": ann.pc.session_hash})
    assert r.status_code == 403
    ann.vote("B")  # the victim's next vote still works (it raises CallFailed otherwise)


def test_deep_links_are_off(site):
    ann = Rater(site, "ann")
    bob = client(site, "bob")
    for page in (ann.pc, bob):
        r = page.http.get("/gradio_api/deep_link", params={"session_hash": ann.pc.session_hash})
        assert r.status_code == 404
    from workbench.ui.guard import temp_dir

    assert not list(temp_dir(site.ctx).glob("deep_links/*"))


# ---------------------------------------------------------------------------- 6-8. safe defaults


def test_network_bind_without_login_refuses_to_start(tmp_path, monkeypatch, capsys, demo_catalog_path):
    import app

    monkeypatch.chdir(tmp_path)
    assert app.main(["--host", "0.0.0.0", "--config", str(demo_catalog_path)]) == 1
    assert "--auth" in capsys.readouterr().err
    args = app.parse_args(["--host", "0.0.0.0", "--no-auth-i-know", "--config", str(demo_catalog_path)])
    assert app.make_context(args).users is None  # allowed, with a warning in the log
    for host in ("127.0.0.1", "localhost", "127.0.0.2"):
        assert app.make_context(app.parse_args(["--host", host, "--config", str(demo_catalog_path)])) is not None


def test_votes_schedules_and_users_are_private(tmp_path):
    old = security.restrict_new_files()
    try:
        s = launch(tmp_path / "private", login=True)
        try:
            admin = client(s, "boss")
            test_id = create_and_open(s, admin, "Private", references=["paul_1"], sentences=["pangram"])
            r = Rater(s, "ann")
            r.start(test_id)
            r.listen()
            r.vote("A")
        finally:
            s.demo.close()
    finally:
        os.umask(old)
    files = [s.ctx.votes_path, s.ctx.users.path, *Path(s.ctx.data_dir, "tests").rglob("*.*")]
    assert len(files) >= 4
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    for d in (s.ctx.votes_path.parent, Path(s.ctx.data_dir, "tests")):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


def test_raters_get_no_api_pages(site):
    rater = client(site, "ann")
    for path in ("/gradio_api/info", "/gradio_api/openapi.json"):
        assert rater.http.get(path).status_code == 403
    assert "api" not in rater.config.get("footer_links", ["api"])
    admin = client(site, "boss")
    assert admin.http.get("/gradio_api/info").status_code == 200
