"""Shared helpers for the stand-in's own tests (imported by name: this dir has no __init__)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from standin.testing import StandIn, redirect_params, sign_in

IMAP_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"
REDIRECT_URI = "https://bandeja.test/auth/callback"
_counter = itertools.count(1)


@dataclass
class World:
    standin: StandIn
    tenant: dict[str, Any]
    client: dict[str, Any]

    @property
    def control(self) -> Any:
        return self.standin.identity.control

    def new_user(self, **flags: Any) -> str:
        address = f"user{next(_counter)}@{self.tenant['domain']}"
        self.control.create_user(address, **flags)
        return address

    def app(self, tenant: str = "organizations", secret: str | None = None) -> Any:
        return self.standin.identity.msal_app(
            self.client["client_id"], secret or self.client["secret"], tenant
        )

    def sign_in(
        self,
        address: str,
        app: Any = None,
        action: str = "accept",
    ) -> tuple[Any, dict[str, Any], dict[str, str]]:
        """Run the auth-code flow to the redirect; returns (app, flow, callback params)."""
        app = app or self.app()
        flow = app.initiate_auth_code_flow(
            [IMAP_SCOPE], redirect_uri=REDIRECT_URI, login_hint=address
        )
        url = sign_in(self.standin.identity.session(), flow["auth_uri"], address, action)
        return app, flow, redirect_params(url)

    def tokens(self, address: str) -> tuple[Any, dict[str, Any]]:
        app, flow, params = self.sign_in(address)
        result = app.acquire_token_by_auth_code_flow(flow, params)
        assert "access_token" in result, result
        return app, result


def next_id() -> int:
    return next(_counter)
