"""``bandeja auth``: the HTTP service and the token refresh loop, in one process."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

import uvicorn
from prometheus_client import REGISTRY
from psycopg import Connection
from psycopg_pool import ConnectionPool

from common.db import create_pool
from common.runtime import readiness_checks
from common.settings import Settings
from common.tokens import TokenCipher
from services.auth import metrics, store
from services.auth.app import AuthContext, create_app
from services.auth.flow_purge import FlowPurger
from services.auth.identity import IdentityClient
from services.auth.refresher import Refresher


def token_health(pool: ConnectionPool[Connection[Any]]) -> dict[str, Any]:
    with pool.connection() as conn:
        states = store.mailbox_counts_by_state(conn)
        row = conn.execute(
            "SELECT extract(epoch FROM min(t.access_expires_at) - now()) AS s"
            " FROM mailbox_tokens t JOIN mailboxes m ON m.id = t.mailbox_id"
            " WHERE m.state = 'active'"
        ).fetchone()
    earliest = row["s"] if row else None
    return {
        "states": states,
        "earliest_expiry_seconds": float(earliest) if earliest is not None else None,
    }


def run(settings: Settings) -> int:
    settings.require_secrets()
    pool = create_pool(settings.database_url, name="auth")
    ctx = AuthContext(settings, pool, IdentityClient(settings), TokenCipher(settings.fernet))
    if settings.client_secret_expires_at is not None:
        metrics.CLIENT_SECRET_EXPIRY.set(
            settings.client_secret_expires_at.replace(
                tzinfo=settings.client_secret_expires_at.tzinfo or UTC
            ).timestamp()
        )
    REGISTRY.register(metrics.TokenHealthCollector(lambda: token_health(pool)))
    refresher = Refresher(settings, pool, ctx.identity, ctx.cipher)
    stop = threading.Event()
    thread = threading.Thread(
        target=refresher.run_forever, args=(stop,), name="refresher", daemon=True
    )
    thread.start()
    purger = FlowPurger(pool, settings.flow_purge_interval)
    purge_thread = threading.Thread(
        target=purger.run_forever, args=(stop,), name="flow-purge", daemon=True
    )
    purge_thread.start()
    liveness = {
        "refresher": refresher.heartbeat.check,
        "flow_purge": purger.heartbeat.check,
    }
    app = create_app(ctx, liveness, readiness_checks(settings))
    server = _Server(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            # The client address the rate limit counts: X-Forwarded-For only from these.
            proxy_headers=True,
            forwarded_allow_ips=settings.trusted_proxies,
        )
    )
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    signal.signal(signal.SIGINT, lambda *_: setattr(server, "should_exit", True))
    server.run()
    stop.set()
    thread.join(timeout=10)
    purge_thread.join(timeout=10)
    pool.close()
    return 0


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after draining, so the process would die "by signal"
    instead of exiting 0; our handlers above ask it to stop and let it return."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
