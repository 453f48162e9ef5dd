"""Session-wide real servers: PostgreSQL database, RabbitMQ vhost, the Microsoft stand-in.

Integration and end-to-end tests fail (never skip) when one is missing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from standin.testing import StandIn
from tests.support.infra import TestDatabase, TestVhost
from tests.support.services import CLIENT_ID, CLIENT_SECRET, free_port

_counter = itertools.count()


@pytest.fixture(scope="session")
def database() -> Iterator[TestDatabase]:
    db = TestDatabase().create()
    yield db
    db.drop()


@pytest.fixture
def clean_database(database: TestDatabase) -> TestDatabase:
    database.truncate()
    return database


@pytest.fixture(scope="session")
def vhost() -> Iterator[TestVhost]:
    host = TestVhost().create()
    yield host
    host.drop()


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    directory = tmp_path_factory.mktemp("standin")
    directory.chmod(0o755)
    with StandIn(directory) as stand_in:
        yield stand_in


@pytest.fixture(scope="session")
def auth_port(standin: StandIn) -> int:
    """The auth service's port for this session, chosen once the stand-in listens (so
    nothing of it can hold the port) and never handed out again; the app's redirect URIs
    are registered with it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    standin.identity.control.register_client(
        CLIENT_ID, CLIENT_SECRET, [f"{base}/oauth/callback", f"{base}/admin-consent/callback"]
    )
    return port


@pytest.fixture
def tenant(standin: StandIn) -> dict:
    """A fresh tenant where users may consent for themselves."""
    return dict(standin.identity.control.create_tenant(f"tenant{next(_counter)}.example"))


def new_address(tenant: dict, name: str = "user") -> str:
    return f"{name}{next(_counter)}@{tenant['domain']}"
