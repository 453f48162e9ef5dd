"""The data page (``GET /data``) served by the real auth service, in Spanish and English,
linked from the pages a person lands on after connecting; and rendered once in Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from standin.testing import StandIn
from tests.conftest import new_address
from tests.e2e.browser import chromium
from tests.support.flows import browser, connect_mailbox
from tests.support.services import Services

CONTACT = "privacidad@erp.example"


@pytest.fixture
def auth(start_services: Callable[..., Services]) -> Services:
    return start_services("auth", raw_retention_days="12", data_contact=CONTACT)


def _link(page: str, element_id: str) -> str:
    match = re.search(rf'<a id="{element_id}" href="([^"]+)"', page)
    assert match, f"no link #{element_id} on the page"
    return match.group(1).replace("&amp;", "&")


def test_data_page_says_what_is_read_kept_how_long_and_how_to_revoke(auth: Services) -> None:
    """Spanish by default, English on request or by Accept-Language: the configured
    retention, My Apps for a user, the Entra admin center for an administrator, and the
    configured address to ask for erasure."""
    session = browser()
    es = session.get(f"{auth.auth_url}/data", timeout=10)
    assert es.status_code == 200
    assert 'lang="es"' in es.text
    assert re.search(r'id="retention">12 días<', es.text)
    assert _link(es.text, "my-apps") == "https://myapps.microsoft.com"
    assert _link(es.text, "entra") == "https://entra.microsoft.com"
    assert _link(es.text, "contact") == f"mailto:{CONTACT}"
    assert "no leído" in es.text

    en = session.get(f"{auth.auth_url}/data", headers={"Accept-Language": "en-GB"}, timeout=10)
    assert re.search(r'id="retention">12 days<', en.text)
    assert "Revoke permissions" in en.text
    assert session.get(f"{auth.auth_url}/data?lang=en", timeout=10).text == en.text


def test_connect_and_error_pages_link_to_the_data_page(
    standin: StandIn, tenant: dict, auth: Services
) -> None:
    """The page after a successful connect and the page of a refused callback both link
    to the data page, in the page's language."""
    session = browser()
    refused = session.get(
        f"{auth.auth_url}/oauth/callback", params={"state": "x" * 20, "code": "c"}, timeout=10
    )
    assert refused.status_code == 400
    assert _link(refused.text, "data-link") == "/data?lang=es"
    english = session.get(
        f"{auth.auth_url}/connect",
        params={"login_hint": "not an address", "lang": "en"},
        timeout=10,
    )
    assert english.status_code == 400
    assert _link(english.text, "data-link") == "/data?lang=en"
    target = session.get(auth.auth_url + _link(english.text, "data-link"), timeout=10)
    assert "Your data in the document inbox" in target.text

    address = new_address(tenant, "datos")
    standin.identity.control.create_user(address, tenant=tenant["id"])
    page = connect_mailbox(auth.auth_url, standin, address)
    assert page.status_code == 200
    assert "Buzón conectado" in page.text
    assert _link(page.text, "data-link") == "/data?lang=es"


def test_data_page_in_a_browser(auth: Services, tmp_path: Path) -> None:
    """Headless Chromium renders the Spanish page with its four sections; a screenshot
    is kept next to the test's logs."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    driver = chromium(profile)
    try:
        driver.get(f"{auth.auth_url}/data")
        assert (
            driver.find_element(By.TAG_NAME, "h1").text == "Sus datos en la Bandeja de Documentos"
        )
        sections = [h.get_attribute("id") for h in driver.find_elements(By.TAG_NAME, "h2")]
        assert sections == ["reads", "stores", "revoke", "erasure"]
        assert driver.find_element(By.ID, "retention").text == "12 días"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, int(height) + 120)  # the whole page in one picture
        driver.save_screenshot(str(tmp_path / "data-es.png"))
    finally:
        driver.quit()
