"""``bandeja processor``: mail processing workers."""

from __future__ import annotations

from common.broker import PROCESS_QUEUE, setup_broker
from common.db import create_pool
from common.runtime import (
    readiness_checks,
    run_worker_process,
    serve_ops_until_ready,
    stop_event_on_signals,
)
from common.settings import Settings


def run(settings: Settings) -> int:
    stop = stop_event_on_signals()
    ops = serve_ops_until_ready(settings, readiness_checks(settings, crm=True), stop)
    if ops is None:
        return 0
    broker = setup_broker(settings.broker_url)
    from services.processor import actors  # after setup_broker: actors bind at import
    from services.processor.budget import MemoryBudget
    from services.processor.process import ProcessDeps

    threads = settings.processor_threads
    pool = create_pool(settings.crm_dsn, name="processor", max_size=threads + 2)
    actors.bind(
        ProcessDeps(
            pool=pool,
            max_message_bytes=settings.max_message_bytes,
            budget=MemoryBudget(settings.process_bytes_in_flight),
        ),
        max_retries=settings.process_max_retries,
    )
    run_worker_process(settings, broker, {PROCESS_QUEUE}, ops, stop, worker_threads=threads)
    pool.close()
    return 0
