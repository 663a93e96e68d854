"""Journey: login. A wrong password is refused; the right one opens the app."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import USERS, login

pytestmark = pytest.mark.e2e


def test_wrong_password_is_refused(page, auth_app):
    page.goto(auth_app.url + "/")
    page.get_by_label("username").fill(USERS["rater"][0])
    page.get_by_label("password").fill("not-the-password")
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("text=/incorrect credentials/i", timeout=30_000)
    assert page.get_by_role("tab").count() == 0
    assert page.get_by_role("button", name="Login").is_visible()


def test_right_password_opens_the_app(page, auth_app):
    login(page, auth_app, "rater")
    assert page.get_by_role("tab", name="Blind A/B").is_visible()
    assert page.get_by_role("button", name="Login").count() == 0
