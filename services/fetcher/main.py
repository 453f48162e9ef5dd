"""``bandeja fetcher``: fetch workers plus the scheduler, in one process."""

from __future__ import annotations

import socket

from common.broker import FETCH_QUEUE, setup_broker
from common.db import create_pool
from common.runtime import run_worker_process
from common.settings import Settings
from common.tokens import TokenCipher


def run(settings: Settings) -> int:
    settings.require_secrets(admin=False)
    broker = setup_broker(settings.broker_url)
    from services.fetcher import actors  # after setup_broker: actors bind at import
    from services.fetcher.fetch import FetchDeps
    from services.fetcher.scheduler import Scheduler

    pool = create_pool(settings.database_url, name="fetcher", max_size=settings.worker_threads + 4)
    actors.bind(
        FetchDeps(
            settings=settings,
            pool=pool,
            cipher=TokenCipher(settings.fernet),
            owner=f"{socket.gethostname()}-{id(pool)}",
        )
    )
    scheduler = Scheduler(pool, settings.database_url, settings.poll_interval)
    run_worker_process(
        settings,
        broker,
        {FETCH_QUEUE},
        loops=[("scheduler", scheduler.run_forever)],
        liveness={"scheduler": scheduler.heartbeat.check},
    )
    pool.close()
    return 0
