"""Process plumbing shared by every ``bandeja`` sub-command: signals, threads, workers."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from dramatiq import Worker
from dramatiq.broker import Broker

from common.health import Check, OpsServer, broker_check, database_check, wait_until_ready
from common.queue_metrics import QueueDepthMonitor, queues_of
from common.settings import Settings

log = structlog.get_logger(__name__)

# How long SIGTERM waits for in-flight actors; the longest (a fetch) is time-limited to
# 10 minutes, and deploy/k8s gives pods a grace period longer than this.
WORKER_SHUTDOWN_MS = 10 * 60 * 1000


def stop_event_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def readiness_checks(settings: Settings, *, crm: bool = False) -> dict[str, Check]:
    """PostgreSQL (reachable, migrated) and RabbitMQ. The processor and the relay write
    only the CRM database (``BANDEJA_CRM_DATABASE_URL``), so they probe that one."""
    database = (
        {"crm_database": database_check(settings.crm_dsn)}
        if crm
        else {"database": database_check(settings.database_url)}
    )
    return {**database, "broker": broker_check(settings.broker_url)}


def serve_ops_until_ready(
    settings: Settings, readiness: dict[str, Check], stop: threading.Event
) -> OpsServer | None:
    """Serve /healthz, /readyz and /metrics at once, then wait for the dependencies.

    The port is bound first: a port in use ends the process here, before any work. While
    PostgreSQL, RabbitMQ or the migrations are missing, the process stays up and live,
    reports not ready and retries with backoff (a Kubernetes rollout simply waits). None
    when SIGTERM came first."""
    ops = OpsServer(settings.metrics_port, liveness={}, readiness=readiness)
    ops.start()
    if wait_until_ready(readiness, stop):
        return ops
    ops.stop()
    return None


def start_loops(
    loops: Iterable[tuple[str, Callable[[threading.Event], None]]], stop: threading.Event
) -> list[threading.Thread]:
    threads = []
    for name, loop in loops:
        thread = threading.Thread(target=loop, args=(stop,), name=name, daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def run_worker_process(
    settings: Settings,
    broker: Broker,
    queues: set[str],
    ops: OpsServer,
    stop: threading.Event,
    loops: Iterable[tuple[str, Callable[[threading.Event], None]]] = (),
    liveness: dict[str, Check] | None = None,
    worker_threads: int | None = None,
) -> None:
    """Consume ``queues`` with an embedded dramatiq worker until ``stop`` (SIGTERM), on
    ``worker_threads`` threads (``settings.worker_threads`` unless given).

    One OS process per pod with threads inside: ``--processes`` would default to the
    node's CPU count (docs/architecture.md#ops-dramatiq-processes); scale with replicas instead.
    """
    depths = QueueDepthMonitor(
        settings.broker_url,
        tuple(q for base in sorted(queues) for q in queues_of(base)),
        interval=settings.queue_metrics_interval,
    )
    loops = [*loops, ("queue-depth", depths.run_forever)]
    worker_threads = worker_threads or settings.worker_threads
    worker = Worker(broker, queues=queues, worker_threads=worker_threads)

    def workers_alive() -> None:
        dead = [t.name for t in worker.workers if not t.is_alive()]
        if dead:
            raise RuntimeError(f"worker threads died: {dead}")

    ops.liveness.update({"workers": workers_alive, **(liveness or {})})
    worker.start()
    threads = start_loops(loops, stop)
    log.info("worker_started", queues=sorted(queues), threads=worker_threads)
    # A timed wait, not stop.wait(): the kernel may deliver SIGTERM to any thread, and a
    # main thread blocked in an untimed lock wait then does not run the Python handler
    # until something wakes it. Waking every second lets the interpreter run a pending
    # handler. A fetcher in a test went on polling for 30 s after its SIGTERM this way;
    # tests/e2e/test_shutdown.py hands the signal to a worker thread and fails without it.
    while not stop.wait(timeout=1.0):
        pass
    for thread in threads:
        thread.join(timeout=10)
    worker.stop(timeout=WORKER_SHUTDOWN_MS)
    broker.close()
    ops.stop()
    log.info("worker_stopped")
