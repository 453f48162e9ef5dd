"""``bandeja relay``: the outbox relay."""

from __future__ import annotations

from common.db import create_pool
from common.runtime import (
    readiness_checks,
    serve_ops_until_ready,
    start_loops,
    stop_event_on_signals,
    stop_loops,
    wait_for_stop,
)
from common.settings import Settings
from services.lifecycle.retention import RetentionSweeper
from services.relay.publisher import EventPublisher
from services.relay.relay import Relay


def run(settings: Settings) -> int:
    stop = stop_event_on_signals()
    ops = serve_ops_until_ready(settings, readiness_checks(settings, crm=True), stop)
    if ops is None:
        return 0
    pool = create_pool(settings.crm_dsn, name="relay", max_size=3)
    relay = Relay(pool, settings.crm_dsn, EventPublisher(settings.broker_url))
    # The relay also runs the retention sweeper: it is a plain loop process on the CRM
    # database, which holds both raw_messages and documents, and it is not scaled with mail
    # load as the processors are. SKIP LOCKED keeps its replicas apart (retention.py).
    sweeper = RetentionSweeper(pool, settings.raw_retention_days, settings.retention_interval)
    ops.liveness["relay"] = relay.heartbeat.check
    ops.liveness["retention"] = sweeper.heartbeat.check
    threads = start_loops([("relay", relay.run_forever), ("retention", sweeper.run_forever)], stop)
    wait_for_stop(stop)
    stop_loops(threads, pool)
    ops.stop()
    return 0
