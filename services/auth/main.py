"""``bandeja auth``: the HTTP service and the token refresh loop, in one process."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC

import uvicorn

from common.db import create_pool
from common.runtime import readiness_checks, start_loops, stop_loops
from common.settings import Settings
from common.tokens import TokenCipher
from services.auth import metrics
from services.auth.app import create_app
from services.auth.context import AuthContext
from services.auth.flow_purge import FlowPurger
from services.auth.identity import IdentityClient
from services.auth.refresher import Refresher
from services.auth.token_health import TokenHealthSampler


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
    refresher = Refresher(settings, pool, ctx.identity, ctx.cipher)
    purger = FlowPurger(pool, settings.flow_purge_interval)
    stop = threading.Event()
    threads = start_loops(
        [
            ("refresher", refresher.run_forever),
            ("token-health", TokenHealthSampler(pool, settings.token_health_interval).run_forever),
            ("flow-purge", purger.run_forever),
        ],
        stop,
    )
    app = create_app(
        ctx,
        {"refresher": refresher.heartbeat.check, "flow_purge": purger.heartbeat.check},
        readiness_checks(settings),
    )
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
    stop_loops(threads, pool)
    return 0


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after draining, so the process would die "by signal"
    instead of exiting 0; our handlers above ask it to stop and let it return."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
