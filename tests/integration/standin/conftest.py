"""One emulator + Dovecot pair for the whole directory; each test makes its own users."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from standin.testing import StandIn
from tests.integration.standin.standin_helpers import REDIRECT_URI, World, next_id


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    with StandIn() as running:
        yield running


@pytest.fixture(scope="session")
def world(standin: StandIn) -> World:
    control = standin.identity.control
    tenant = control.create_tenant("contoso.example")
    client = control.register_client(redirect_uris=[REDIRECT_URI])
    return World(standin, tenant, client)


@pytest.fixture
def new_world(standin: StandIn) -> Callable[..., World]:
    """A separate tenant and app registration (for consent and secret tests)."""

    def make(user_consent_allowed: bool = True) -> World:
        control = standin.identity.control
        n = next_id()
        tenant = control.create_tenant(
            f"fabrikam{n}.example", user_consent_allowed=user_consent_allowed
        )
        client = control.register_client(redirect_uris=[REDIRECT_URI])
        return World(standin, tenant, client)

    return make
