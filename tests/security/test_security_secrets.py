"""Tokens never appear in plaintext anywhere Bandeja writes: database, logs, metrics,
events, pages (docs/architecture.md#ops-structlog). The known values are harvested by decrypting
what auth stores, since the emulator's control API does not list the tokens it issued."""

from __future__ import annotations

import json
import threading
import time

import psycopg
import requests
from cryptography.fernet import Fernet, MultiFernet
from psycopg import sql

from standin.control import sign_in
from standin.testing import StandIn
from tests.conftest import new_address
from tests.support.events import EventConsumer
from tests.support.flows import start_sign_in
from tests.support.mail import invoice_mail
from tests.support.services import ADMIN_TOKEN, CLIENT_SECRET, Services


class TokenHarvester:
    """Polls mailbox_tokens/tenants and decrypts every token value auth has stored."""

    def __init__(self, dsn: str, token_keys: str) -> None:
        self._dsn = dsn
        self._cipher = MultiFernet([Fernet(k) for k in token_keys.split(",") if k])
        self.access_tokens: set[str] = set()
        self.secrets: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TokenHarvester:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.harvest()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.harvest()

    def harvest(self) -> None:
        with psycopg.connect(self._dsn) as conn:
            rows = conn.execute(
                "SELECT access_token, token_cache FROM mailbox_tokens"
                " UNION ALL SELECT NULL, app_token_cache FROM tenants"
            ).fetchall()
        for access, cache in rows:
            if access is not None:
                token = self._cipher.decrypt(bytes(access)).decode()
                self.access_tokens.add(token)
                self.secrets.add(token)
            if cache is not None:
                self.secrets |= _cache_secrets(self._cipher.decrypt(bytes(cache)).decode())


def _cache_secrets(serialized: str) -> set[str]:
    if not serialized:
        return set()
    cache = json.loads(serialized)
    return {
        entry["secret"]
        for kind in ("AccessToken", "RefreshToken", "IdToken")
        for entry in cache.get(kind, {}).values()
        if entry.get("secret")
    }


def _forms(secret: str) -> set[str]:
    """The secret as text and as PostgreSQL's hex rendering of bytea, plus a JWT's
    signature alone (a token cut short still leaks it)."""
    forms = {secret, secret.encode().hex()}
    if secret.count(".") == 2 and len(secret.rsplit(".", 1)[1]) >= 20:
        forms.add(secret.rsplit(".", 1)[1])
    return forms


def dump_database(dsn: str) -> str:
    """Every row of every table, bytea included (as hex), via COPY ... TO STDOUT."""
    chunks: list[str] = []
    with psycopg.connect(dsn) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        for table in tables:
            query = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT").format(sql.Identifier(table))
            with conn.cursor().copy(query) as copy:
                chunks.extend(bytes(block).decode(errors="replace") for block in copy)
    assert "mailbox_tokens" in tables
    assert "raw_messages" in tables
    return "\n".join(chunks)


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_no_token_or_secret_appears_in_plaintext_anywhere(
    standin: StandIn,
    tenant: dict,
    services: Services,
    erp_consumer: EventConsumer,
) -> None:
    """Connect, fetch and process, force a refresh, revoke into
    needs_reauth; then no access, refresh or id token, authorization code, client secret,
    admin token or token key is in any table, log, /metrics page, event or error page."""
    address = new_address(tenant, "secrets")
    control = standin.identity.control
    control.create_user(address, tenant=tenant["id"])
    standin.dovecot.append(address, invoice_mail(1, to=address)[0])
    env = services.env
    pages: list[str] = []
    with TokenHarvester(env["BANDEJA_DATABASE_URL"], env["BANDEJA_TOKEN_KEYS"]) as harvest:
        browser, authorize = start_sign_in(services.auth_url, address)
        callback_url = sign_in(standin.identity.session(), authorize, address)
        code = requests.utils.urlparse(callback_url).query
        code = dict(p.split("=", 1) for p in code.split("&"))["code"]
        assert browser.get(callback_url, timeout=30).status_code == 200
        erp_consumer.wait_for("bandeja.document.processed", 1, timeout=40)

        # An access token IMAP rejects is renewed on demand (a short access-token lifetime
        # cannot be used for a proactive refresh: see the report on TOKEN_MARGIN).
        control.expire_access_tokens(address)
        standin.dovecot.append(address, invoice_mail(2, to=address)[0])
        erp_consumer.wait_for("bandeja.document.processed", 2, timeout=40)
        _wait(lambda: len(harvest.access_tokens) >= 2, 20, "a forced refresh")

        control.revoke_user(address)
        control.expire_access_tokens(address)
        erp_consumer.wait_for("bandeja.mailbox.reauth_needed", 1, timeout=40)

        pages.append(browser.get(callback_url, timeout=15).text)  # replayed: bad_state
        for token in list(harvest.secrets)[:3]:
            pages.append(
                browser.get(
                    f"{services.auth_url}/oauth/callback",
                    params={
                        "state": token,
                        "code": token,
                        "error": "invalid_grant",
                        "error_description": f"AADSTS50173 {token}",
                    },
                    timeout=15,
                ).text
            )
    secrets = {s for s in harvest.secrets if len(s) >= 16}
    assert any(s.startswith("rt.") for s in secrets), "no refresh token harvested"
    known = {
        "token": secrets,
        "authorization code": {code},
        "client secret": {CLIENT_SECRET},
        "admin token": {ADMIN_TOKEN},
        "token key": set(env["BANDEJA_TOKEN_KEYS"].split(",")),
    }

    places = {"database": dump_database(env["BANDEJA_DATABASE_URL"])}
    for name, process in services.running.items():
        places[f"{name} log"] = process.logs()
        places[f"{name} /metrics"] = requests.get(f"{process.ops_url}/metrics", timeout=10).text
    places["events"] = json.dumps(erp_consumer.events)
    places["error pages"] = "\n".join(pages)
    assert "sign_in_failed" in places["auth log"] or "bad_state" in places["auth log"]

    leaks = [
        (where, kind, value[:12] + "…")
        for kind, values in known.items()
        for value in values
        for form in _forms(value)
        for where, text in places.items()
        if form in text
    ]
    assert leaks == [], leaks
