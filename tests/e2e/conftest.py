"""Bandeja's four processes against the real servers and the stand-in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from standin.testing import StandIn
from tests.support.events import EventConsumer
from tests.support.infra import TestDatabase, TestVhost
from tests.support.services import Services, new_token_keys, service_env


@pytest.fixture
def services_env(
    clean_database: TestDatabase, vhost: TestVhost, standin: StandIn, auth_port: int
) -> dict[str, str]:
    vhost.purge_work_queues()
    return service_env(
        database_url=clean_database.dsn,
        broker_url=vhost.url,
        standin=standin,
        http_port=auth_port,
        token_keys=new_token_keys(),
    )


@pytest.fixture
def services(services_env: dict[str, str], tmp_path: Path) -> Iterator[Services]:
    running = Services(services_env, tmp_path).start()
    yield running
    codes = running.stop()
    assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"


@pytest.fixture
def erp_consumer(vhost: TestVhost, request: pytest.FixtureRequest) -> Iterator[EventConsumer]:
    consumer = EventConsumer(vhost.url, f"erp-{request.node.name}"[:200])
    yield consumer
    consumer.close()


@pytest.fixture
def start_services(
    services_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., Services]]:
    """Start the services with extra ``BANDEJA_*`` settings; every start is stopped after."""
    started: list[Services] = []

    def start(*commands: str, **overrides: str) -> Services:
        env = {**services_env, **{f"BANDEJA_{k.upper()}": v for k, v in overrides.items()}}
        running = Services(env, tmp_path).start(*commands)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
