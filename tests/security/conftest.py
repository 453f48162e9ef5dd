"""Fixtures for the security suite: the e2e fixtures, plus auth alone and a module-wide auth."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from standin.testing import StandIn
from tests.conftest import auth_port, clean_database, database, standin, tenant, vhost  # noqa: F401
from tests.e2e.conftest import (  # noqa: F401
    erp_consumer,
    services,
    services_env,
    start_services,
)
from tests.support.infra import TestDatabase, TestVhost
from tests.support.services import Services, new_token_keys, service_env

StartAuth = Callable[..., Services]


@pytest.fixture
def start_auth(
    services_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> Iterator[StartAuth]:
    """Start the auth process alone, with extra BANDEJA_* settings; stopped after the test."""
    started: list[Services] = []

    def start(**overrides: str) -> Services:
        running = Services({**services_env, **overrides}, tmp_path).start("auth")
        started.append(running)
        return running

    yield start
    for running in started:
        codes = running.stop()
        assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


@pytest.fixture
def auth(start_auth: StartAuth) -> Services:
    return start_auth()


@pytest.fixture(scope="module")
def module_auth(
    database: TestDatabase,  # noqa: F811
    vhost: TestVhost,  # noqa: F811
    standin: StandIn,  # noqa: F811
    auth_port: int,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Services]:
    """One auth process for a whole module (the fuzzer runs many operations against it)."""
    database.truncate()
    env = service_env(
        database_url=database.dsn,
        broker_url=vhost.url,
        standin=standin,
        http_port=auth_port,
        token_keys=new_token_keys(),
    )
    running = Services(env, tmp_path_factory.mktemp("auth-logs")).start("auth")
    yield running
    codes = running.stop()
    assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"
