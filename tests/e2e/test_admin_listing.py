"""The admin API's and status page's mailbox listing stays usable with many mailboxes
(issue 19): pages by cursor, filters by state and tenant, search by address, the status
page's summary counting every mailbox whatever page is shown."""

from __future__ import annotations

import re
from collections.abc import Callable

import requests

from tests.support.infra import TestDatabase
from tests.support.mailboxes import STATES, TENANTS, seed_mailboxes
from tests.support.services import ADMIN_TOKEN, Services

COUNT = 230
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _walk(url: str, params: dict[str, str | int]) -> list[dict]:
    """Every mailbox the API lists, following ``Link: rel="next"`` to the end."""
    found: list[dict] = []
    response = requests.get(url, params=params, headers=ADMIN, timeout=10)
    while True:
        assert response.status_code == 200, response.text
        found.extend(response.json())
        if "next" not in response.links:
            assert "Next-Cursor" not in response.headers
            return found
        assert response.headers["Next-Cursor"] in response.links["next"]["url"]
        response = requests.get(response.links["next"]["url"], headers=ADMIN, timeout=10)


def test_pages_filters_and_search_list_each_mailbox_once(
    clean_database: TestDatabase, start_services: Callable[..., Services]
) -> None:
    """Walking the pages yields every mailbox exactly once, in address order; a state,
    tenant or address filter keeps exactly the matching ones across pages; without a
    limit a page holds 100."""
    seeded = seed_mailboxes(clean_database.dsn, COUNT)
    url = f"{start_services('auth').auth_url}/api/mailboxes"

    listed = _walk(url, {"limit": 40})
    assert [m["address"] for m in listed] == sorted(s.address for s in seeded)

    first = requests.get(url, headers=ADMIN, timeout=10)
    assert len(first.json()) == 100
    assert "next" in first.links

    for state in ("needs_reauth", "error"):
        got = [m["address"] for m in _walk(url, {"state": state, "limit": 17})]
        assert got == sorted(s.address for s in seeded if s.state == state)
    tenant = TENANTS[1]
    got = [m["address"] for m in _walk(url, {"tenant_id": tenant, "state": "paused"})]
    assert got == sorted(s.address for s in seeded if s.tenant_id == tenant and s.state == "paused")
    got = [m["address"] for m in _walk(url, {"q": "EMPRESA2", "limit": 25})]
    assert got == sorted(s.address for s in seeded if "empresa2" in s.address)
    # LIKE's wildcards are literal in a search: "_" matches no address here.
    assert _walk(url, {"q": "buzon_"}) == []


def test_listing_refuses_bad_queries_and_strangers(
    clean_database: TestDatabase, start_services: Callable[..., Services]
) -> None:
    """A malformed cursor, limit or state is a 422 that names the field, not a 500;
    without the admin token the listing is a 401."""
    seed_mailboxes(clean_database.dsn, 3)
    url = f"{start_services('auth').auth_url}/api/mailboxes"
    for params in (
        {"cursor": "%%%"},
        {"cursor": "AA"},
        {"limit": 0},
        {"limit": 5000},
        {"state": "gone"},
        {"limit": "ten"},
    ):
        response = requests.get(url, params=params, headers=ADMIN, timeout=10)
        assert response.status_code == 422, (params, response.text)
    assert requests.get(url, params={"limit": 1}, timeout=10).status_code == 401
    empty = requests.get(url, headers={"Authorization": "Bearer "}, timeout=10)
    assert empty.status_code == 401


def test_status_page_counts_everything_and_pages_the_table(
    clean_database: TestDatabase, start_services: Callable[..., Services]
) -> None:
    """The summary counts every mailbox by state while the table shows one page of
    100 with a link to the next; a state filter and an address search narrow the table,
    never the summary."""
    seeded = seed_mailboxes(clean_database.dsn, COUNT)
    status = f"{start_services('auth').auth_url}/status"

    page = requests.get(status, headers=ADMIN, timeout=10)
    assert page.status_code == 200
    counts = dict(re.findall(r'data-state="(\w+)" data-count="(\d+)"', page.text))
    assert counts == {s: str(sum(1 for m in seeded if m.state == s)) for s in STATES}
    assert len(re.findall(r"<tr data-address=", page.text)) == 100
    following = re.search(r'id="next-page" rel="next" href="\?([^"]+)"', page.text)
    assert following is not None
    second = requests.get(
        f"{status}?{following.group(1).replace('&amp;', '&')}", headers=ADMIN, timeout=10
    )
    second_rows = re.findall(r'<tr data-address="([^"]+)"', second.text)
    assert second_rows[0] == sorted(s.address for s in seeded)[100]

    paused = requests.get(status, params={"state": "paused"}, headers=ADMIN, timeout=10)
    states = set(re.findall(r'<tr data-address="[^"]+" data-state="(\w+)"', paused.text))
    assert states == {"paused"}
    found = requests.get(status, params={"q": "buzon00007@"}, headers=ADMIN, timeout=10)
    assert re.findall(r'<tr data-address="([^"]+)"', found.text) == ["buzon00007@empresa1.example"]
    assert dict(re.findall(r'data-state="(\w+)" data-count="(\d+)"', found.text)) == counts
    nothing = requests.get(status, params={"q": "nadie"}, headers=ADMIN, timeout=10)
    assert 'id="no-match"' in nothing.text
