"""``bandeja processor``: mail processing workers."""

from __future__ import annotations

from common.broker import PROCESS_QUEUE, setup_broker
from common.db import create_pool
from common.runtime import run_worker_process
from common.settings import Settings


def run(settings: Settings) -> int:
    broker = setup_broker(settings.broker_url)
    from services.processor import actors  # after setup_broker: actors bind at import
    from services.processor.budget import MemoryBudget
    from services.processor.process import ProcessDeps

    pool = create_pool(settings.crm_dsn, name="processor", max_size=settings.worker_threads + 2)
    actors.bind(
        ProcessDeps(
            pool=pool,
            max_message_bytes=settings.max_message_bytes,
            budget=MemoryBudget(settings.process_bytes_in_flight),
        ),
        max_retries=settings.process_max_retries,
    )
    run_worker_process(settings, broker, {PROCESS_QUEUE})
    pool.close()
    return 0
