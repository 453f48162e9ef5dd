"""Process plumbing shared by every ``bandeja`` sub-command: signals, threads, workers."""

from __future__ import annotations

import faulthandler
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from dramatiq import Worker
from dramatiq.broker import Broker
from psycopg_pool import ConnectionPool

from common.health import Check, OpsServer, broker_check, database_check, wait_until_ready
from common.queue_metrics import QueueDepthMonitor, queues_of
from common.settings import Settings

log = structlog.get_logger(__name__)

# How long SIGTERM waits for in-flight actors; the longest (a fetch) is time-limited to
# 10 minutes, and deploy/k8s gives pods a grace period longer than this.
WORKER_SHUTDOWN_MS = 10 * 60 * 1000

# A loop waiting this long for a pooled connection after the stop is not going to get
# one: a healthy pool lends a free connection in milliseconds.
STUCK_ON_POOL_SECONDS = 1.0

# A shutdown still running this long after SIGTERM prints every thread's stack to stderr,
# once: where a stuck one waits. Below the shortest grace period (the relay's 30 s) and
# the tests' 30 s before SIGKILL. faulthandler prints files, lines and function names
# only, never a variable's value.
SHUTDOWN_STACKS_AFTER_SECONDS = 20.0


def stop_event_on_signals(
    stacks_after: float = SHUTDOWN_STACKS_AFTER_SECONDS,
) -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        if not stop.is_set():
            faulthandler.dump_traceback_later(stacks_after, exit=False)
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


def wait_for_stop(stop: threading.Event) -> None:
    """Block the main thread until SIGTERM or SIGINT set ``stop``.

    A timed wait, not stop.wait(): the kernel may deliver SIGTERM to any thread, and a
    main thread blocked in an untimed lock wait then does not run the Python handler
    until something wakes it. Waking every second lets the interpreter run a pending
    handler. A fetcher in a test went on polling for 30 s after its SIGTERM this way;
    tests/e2e/test_shutdown.py hands the signal to a worker thread and fails without it.
    """
    while not stop.wait(timeout=1.0):
        pass


def stop_loops(
    threads: list[threading.Thread], pool: ConnectionPool[Any], budget: float = 10.0
) -> None:
    """After ``stop`` is set: let the loops finish their turn within one ``budget``, then
    close the pool.

    A loop in the middle of its work finishes it: its connection stays usable. But while
    the database is away a loop waits for a connection for the pool's whole timeout (30
    s), and three loops joined one after another kept auth from exiting for 19-30 s of a
    pod's 45 s grace period. Once every loop left has waited for a connection a second,
    none of them holds one or can get one: closing the pool wakes them with PoolClosed.
    The relay, whose pods get 30 s, waited the same way in its main thread.
    """
    deadline = time.monotonic() + budget
    stuck_since: float | None = None
    while (alive := [t for t in threads if t.is_alive()]) and time.monotonic() < deadline:
        if pool.get_stats().get("requests_waiting", 0) >= len(alive):
            stuck_since = stuck_since or time.monotonic()
            if time.monotonic() - stuck_since >= STUCK_ON_POOL_SECONDS:
                break
        else:
            stuck_since = None
        alive[0].join(0.1)
    pool.close()
    for thread in threads:
        thread.join(1.0)


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
    wait_for_stop(stop)
    for thread in threads:
        thread.join(timeout=10)
    worker.stop(timeout=WORKER_SHUTDOWN_MS)
    broker.close()
    ops.stop()
    log.info("worker_stopped")
