"""One stand-in and one Exchange proxy in front of its Dovecot for this directory."""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from imapclient import IMAPClient

from standin.exchange import ExchangeProxy
from standin.testing import StandIn, redirect_params, sign_in

IMAP_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"
APP_SCOPE = ["https://outlook.office365.com/.default"]
REDIRECT_URI = "https://bandeja.test/auth/callback"
_numbers = itertools.count(1)


@dataclass
class Exo:
    """The stand-in, the proxy, one tenant with admin consent, and ways to get tokens."""

    standin: StandIn
    proxy: ExchangeProxy
    tenant: dict[str, Any]
    client: dict[str, Any]

    @property
    def control(self) -> Any:
        return self.standin.identity.control

    def new_user(self) -> str:
        address = f"user{next(_numbers)}@{self.tenant['domain']}"
        self.control.create_user(address, tenant=self.tenant["id"])
        return address

    def app(self, tenant: str = "organizations") -> Any:
        return self.standin.identity.msal_app(
            self.client["client_id"], self.client["secret"], tenant
        )

    def app_token(self) -> str:
        """Client credentials: logs in as any address of the tenant's domain."""
        result = self.app(self.tenant["id"]).acquire_token_for_client(APP_SCOPE)
        return str(result["access_token"])

    def user_token(self, address: str) -> str:
        """Delegated token through the auth-code flow (expire_access_tokens(address) hits it)."""
        app = self.app()
        flow = app.initiate_auth_code_flow(
            [IMAP_SCOPE], redirect_uri=REDIRECT_URI, login_hint=address
        )
        url = sign_in(self.standin.identity.session(), flow["auth_uri"], address)
        result = app.acquire_token_by_auth_code_flow(flow, redirect_params(url))
        assert "access_token" in result, result
        return str(result["access_token"])

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.standin.identity.ca_path)

    def imap(self) -> IMAPClient:
        return IMAPClient(
            "127.0.0.1", port=self.proxy.port, ssl=True, ssl_context=self.ssl_context(), timeout=10
        )

    def login(self, address: str, token: str | None = None) -> IMAPClient:
        client = self.imap()
        client.oauth2_login(address, token or self.app_token())
        return client


@pytest.fixture(scope="session")
def exo_world() -> Iterator[Exo]:
    with (
        StandIn() as standin,
        ExchangeProxy.for_standin(standin, token_check_interval=0.3) as proxy,
    ):
        control = standin.identity.control
        tenant = control.create_tenant("exo-proxy.example")
        client = control.register_client(redirect_uris=[REDIRECT_URI])
        control.grant_admin_consent(tenant["id"], client["client_id"])
        yield Exo(standin, proxy, tenant, client)


@pytest.fixture
def exo(exo_world: Exo) -> Exo:
    exo_world.proxy.faults.reset()
    return exo_world
