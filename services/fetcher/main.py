"""``bandeja fetcher``: fetch workers plus the scheduler, in one process."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

from common.broker import FETCH_QUEUE, setup_broker
from common.db import create_pool
from common.runtime import (
    readiness_checks,
    run_worker_process,
    serve_ops_until_ready,
    stop_event_on_signals,
)
from common.settings import Settings
from common.tokens import TokenCipher


def run(settings: Settings) -> int:
    settings.require_secrets(admin=False)
    stop = stop_event_on_signals()
    ops = serve_ops_until_ready(settings, readiness_checks(settings), stop)
    if ops is None:
        return 0
    broker = setup_broker(settings.broker_url)
    from services.fetcher import (
        actors,  # after setup_broker: actors bind at import
        store,
    )
    from services.fetcher.fetch import FetchDeps
    from services.fetcher.idle import IdleSupervisor
    from services.fetcher.scheduler import Scheduler
    from services.fetcher.sessions import SessionPool

    pool = create_pool(settings.database_url, name="fetcher", max_size=settings.worker_threads + 4)
    cipher = TokenCipher(settings.fernet)
    host = socket.gethostname()
    owner = f"{host}-{os.getpid()}"
    with pool.connection() as conn:
        store.recover_leases_of_previous_life(conn, host, owner)
    sessions = SessionPool(settings.imap_parked_sessions, settings.imap_session_keep_seconds)
    actors.bind(
        FetchDeps(settings=settings, pool=pool, cipher=cipher, owner=owner, sessions=sessions)
    )
    scheduler = Scheduler(pool, settings.database_url, settings.poll_interval)
    loops: list[tuple[str, Callable[[threading.Event], None]]] = [
        ("scheduler", scheduler.run_forever)
    ]
    liveness = {"scheduler": scheduler.heartbeat.check}
    if settings.idle_sessions > 0:
        idle_pool = create_pool(
            settings.database_url, name="fetcher-idle", max_size=min(settings.idle_sessions, 10)
        )
        supervisor = IdleSupervisor(settings, idle_pool, cipher, owner)
        loops.append(("idle", supervisor.run_forever))
        liveness["idle"] = supervisor.heartbeat.check
    run_worker_process(settings, broker, {FETCH_QUEUE}, ops, stop, loops=loops, liveness=liveness)
    sessions.close_all()
    pool.close()
    return 0
