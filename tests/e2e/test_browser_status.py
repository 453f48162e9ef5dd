"""The operator's status page in a real browser: connect, watch, see a revocation land."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from services.auth.messages import human_message
from standin.testing import StandIn
from tests.conftest import new_address
from tests.e2e.browser import chromium, spki_hash
from tests.support.services import ADMIN_TOKEN, Services

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def browser(standin: StandIn, tmp_path: Path) -> Iterator[webdriver.Chrome]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    driver = chromium(profile, trusted_spki=(spki_hash(standin.identity.base_url),))
    yield driver
    driver.quit()


def _row_state(driver: webdriver.Chrome, address: str) -> str | None:
    try:
        row = driver.find_element(By.CSS_SELECTOR, f'tr[data-address="{address}"]')
        return row.get_attribute("data-state")
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def test_status_page_shows_a_revoked_mailbox_turn_needs_reauth(
    standin: StandIn,
    tenant: dict[str, Any],
    services: Services,
    browser: webdriver.Chrome,
    tmp_path: Path,
) -> None:
    """A mailbox connected through the real sign-in pages shows as active on /status (after
    the operator's form login), then as needs_reauth with the Spanish reason and a reconnect
    link once its grant is revoked — seen through the page's own auto-refresh."""
    address = new_address(tenant, "estado")
    standin.identity.control.create_user(address, tenant=tenant["id"])

    browser.get(f"{services.auth_url}/connect?login_hint={address}")
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "accept"))
    browser.find_element(By.ID, "accept").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "result"))
    assert browser.current_url.startswith(f"{services.auth_url}/oauth/callback")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Buzón conectado"

    browser.get(f"{services.auth_url}/status")
    browser.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 10).until(lambda d: _row_state(d, address) == "active")
    assert browser.current_url == f"{services.auth_url}/status"
    assert not browser.find_elements(By.CSS_SELECTOR, "a.reconnect")

    standin.identity.control.revoke_user(address)
    standin.identity.control.expire_access_tokens(address)
    WebDriverWait(browser, 40, poll_frequency=0.5).until(
        lambda d: _row_state(d, address) == "needs_reauth"
    )

    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-address="{address}"]')
    assert human_message("grant_revoked", "reauth")["es"] in row.text
    assert "AADSTS50173" in row.text
    link = row.find_element(By.CSS_SELECTOR, "a.reconnect")
    assert link.get_attribute("href") == f"{services.auth_url}/connect?login_hint={address}"
    summary = browser.find_element(By.CSS_SELECTOR, '#summary li[data-state="needs_reauth"]')
    assert summary.get_attribute("data-count") == "1"
    # The README's picture of the status page: `make screenshots` writes it into docs/.
    shots = Path(os.environ.get("BANDEJA_SCREENSHOTS_DIR") or tmp_path)
    assert browser.save_screenshot(str(shots / "status-page.png"))


def test_status_login_refuses_a_wrong_token_and_sets_a_hardened_cookie(
    services: Services,
) -> None:
    """/status asks for the admin token; a wrong one gets the form again (401); the right one
    sets an HttpOnly, SameSite=Strict cookie that is not the token; Bearer also works."""
    status = f"{services.auth_url}/status"
    plain = requests.get(status, timeout=10)
    assert plain.status_code == 401
    assert 'id="login-form"' in plain.text

    wrong = requests.post(f"{status}/login", data={"token": "nope"}, timeout=10)
    assert wrong.status_code == 401
    assert 'id="login-error"' in wrong.text

    right = requests.post(
        f"{status}/login?lang=en", data={"token": ADMIN_TOKEN}, timeout=10, allow_redirects=False
    )
    assert right.status_code == 303
    assert right.headers["location"] == "/status?lang=en"
    cookie = right.headers["set-cookie"]
    assert "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower()
    assert ADMIN_TOKEN not in cookie

    page = requests.get(f"{status}?lang=en", cookies=right.cookies, timeout=10)
    assert page.status_code == 200
    assert "Mailbox status" in page.text
    bearer = services.admin_get("/status")
    assert bearer.status_code == 200
    assert "Estado de los buzones" in bearer.text
    assert requests.get(status, cookies={"bandeja_status": "forged"}, timeout=10).status_code == 401
