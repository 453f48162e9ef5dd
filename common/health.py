"""Liveness and readiness checks, and the small HTTP server workers expose them on.

Liveness never depends on PostgreSQL or RabbitMQ: restarting a pod cannot fix a broker
outage (docs/architecture.md#ops-kubernetes). Readiness does, so a rollout waits for
dependencies, and for the schema: a pod is ready only once the migrations its code expects
are applied.

Every endpoint is a plain function, run by Starlette in its thread pool: a slow check or
collector never holds the event loop that answers the others.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress

import pika
import psycopg
import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from common.broker import tuned_url
from common.migrate import missing_migrations

log = structlog.get_logger(__name__)

Check = Callable[[], None]


class Heartbeat:
    """Touched by a process's main loop; stale when that loop has stopped turning."""

    def __init__(self, max_age: float = 120.0) -> None:
        self.max_age = max_age
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()

    def check(self) -> None:
        age = time.monotonic() - self._last
        if age > self.max_age:
            raise RuntimeError(f"main loop silent for {age:.0f}s")


class SchemaBehind(RuntimeError):
    """The database lacks migrations this code expects (``bandeja migrate`` not yet run)."""


def database_check(dsn: str) -> Check:
    """PostgreSQL answers and holds every migration this code ships. A database ahead of
    the code (a rollback after a migration) is fine: migrations only expand."""

    def check() -> None:
        with psycopg.connect(dsn, connect_timeout=3, options="-c statement_timeout=3000") as conn:
            missing = missing_migrations(conn)
        if missing:
            raise SchemaBehind(f"migrations not applied: {', '.join(missing)}")

    return check


def broker_check(url: str) -> Check:
    def check() -> None:
        params = pika.URLParameters(tuned_url(url))
        params.socket_timeout = 3
        params.connection_attempts = 1
        pika.BlockingConnection(params).close()

    return check


def run_checks(checks: dict[str, Check]) -> tuple[bool, dict[str, str]]:
    results: dict[str, str] = {}
    # A copy: a process adds its liveness checks once it has started its loops.
    for name, check in dict(checks).items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by type
            detail = f": {exc}" if isinstance(exc, SchemaBehind) else ""
            results[name] = f"failing: {type(exc).__name__}{detail}"
    return all(v == "ok" for v in results.values()), results


def health_routes(liveness: dict[str, Check], readiness: dict[str, Check]) -> list[Route]:
    def healthz(_: Request) -> JSONResponse:
        ok, results = run_checks(liveness)
        return JSONResponse(results, status_code=200 if ok else 503)

    def readyz(_: Request) -> JSONResponse:
        ok, results = run_checks(readiness)
        return JSONResponse(results, status_code=200 if ok else 503)

    def metrics(_: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]


class OpsServer:
    """Serves /healthz, /readyz and /metrics for a worker process in a background thread.

    The port is bound here, in the caller's thread: uvicorn reports a bind failure with
    ``sys.exit`` inside its own thread, which would end only that thread and leave a worker
    running without probes or metrics (and a probe answered by whoever holds the port).
    """

    def __init__(self, port: int, liveness: dict[str, Check], readiness: dict[str, Check]) -> None:
        self._socket = _listening_socket(port)
        self.liveness = liveness
        app = Starlette(routes=health_routes(liveness, readiness))
        config = uvicorn.Config(app, log_config=None, access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, args=([self._socket],), name="ops-server", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        with suppress(RuntimeError):
            self._thread.join(timeout=5)
        self._socket.close()


def wait_until_ready(
    checks: dict[str, Check],
    stop: threading.Event,
    *,
    first_delay: float = 1.0,
    max_delay: float = 30.0,
) -> bool:
    """Block until every readiness check passes, retrying with capped, jittered backoff;
    False when ``stop`` is set first. A worker started before PostgreSQL, RabbitMQ or its
    migrations waits here, not ready, instead of exiting into a crash loop."""
    delay = first_delay
    while not stop.is_set():
        ok, results = run_checks(checks)
        if ok:
            return True
        log.warning("waiting_for_dependencies", checks=results, retry_in=round(delay, 1))
        stop.wait(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not a secret
        delay = min(delay * 2, max_delay)
    return False


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("0.0.0.0", port))  # noqa: S104 - scraped and probed from outside the pod
    except OSError as exc:
        sock.close()
        reason = f"ops server cannot listen on port {port}: {exc.strerror}"
        raise OSError(exc.errno, reason) from exc
    return sock
