"""``bandeja relay``: the outbox relay."""

from __future__ import annotations

from common.db import create_pool
from common.runtime import readiness_checks, serve_ops_until_ready, stop_event_on_signals
from common.settings import Settings
from services.relay.publisher import EventPublisher
from services.relay.relay import Relay


def run(settings: Settings) -> int:
    stop = stop_event_on_signals()
    ops = serve_ops_until_ready(settings, readiness_checks(settings, crm=True), stop)
    if ops is None:
        return 0
    pool = create_pool(settings.crm_dsn, name="relay", max_size=2)
    relay = Relay(pool, settings.crm_dsn, EventPublisher(settings.broker_url))
    ops.liveness["relay"] = relay.heartbeat.check
    relay.run_forever(stop)
    ops.stop()
    pool.close()
    return 0
