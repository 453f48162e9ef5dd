"""``bandeja relay``: the outbox relay."""

from __future__ import annotations

from common.db import create_pool
from common.health import OpsServer
from common.runtime import readiness_checks, stop_event_on_signals
from common.settings import Settings
from services.relay.publisher import EventPublisher
from services.relay.relay import Relay


def run(settings: Settings) -> int:
    stop = stop_event_on_signals()
    pool = create_pool(settings.crm_dsn, name="relay", max_size=2)
    relay = Relay(pool, settings.crm_dsn, EventPublisher(settings.broker_url))
    ops = OpsServer(
        settings.metrics_port,
        liveness={"relay": relay.heartbeat.check},
        readiness=readiness_checks(settings),
    )
    ops.start()
    relay.run_forever(stop)
    ops.stop()
    pool.close()
    return 0
