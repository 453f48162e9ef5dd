"""PostgreSQL access: connection pools, the NOTIFY channel names, and which database
errors are the data's fault rather than the database's."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

OUTBOX_CHANNEL = "bandeja_outbox"
TOKEN_REFRESH_CHANNEL = "bandeja_token_refresh"  # noqa: S105 - a channel name
MAILBOX_CHANNEL = "bandeja_mailbox"


# SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
# The database refused this input, whoever sends it and however often: data exception
# (22: a NUL, an invalid encoding, a value out of range), integrity constraint violation
# (23), program limit exceeded (54: an index row over the b-tree limit). psycopg files
# 54 under OperationalError, beside the outages, so the class is read, not the type.
_REFUSED_INPUT_CLASSES = frozenset({"22", "23", "54"})
# The database, not the data, failed: connection exception (08), transaction rollback
# (40: serialization failure, deadlock), insufficient resources (53), object not in
# prerequisite state (55: lock not available), operator intervention (57: admin shutdown,
# query canceled), system error (58).
_OUTAGE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})


def refuses_input(exc: BaseException) -> bool:
    """Whether a database error is the fault of the data sent, not of the database.

    Such an error comes back on every retry: it is the one mail's own failure, and the
    rest of its mailbox must not wait behind it. Anything else is retried: retrying after
    an outage is safe, marking mail failed for an outage is not.
    """
    if not isinstance(exc, psycopg.Error):
        return False
    if exc.sqlstate:
        return exc.sqlstate[:2] in _REFUSED_INPUT_CLASSES
    # Raised by psycopg itself before anything reached the server, e.g. a str holding
    # NUL, which PostgreSQL text cannot store.
    return isinstance(exc, psycopg.DataError)


def is_outage(exc: BaseException) -> bool:
    """Whether a database error means the database is unwell: retry the work later, whole.

    Errors in neither class (a trigger's RAISE, a programming error) are for the caller
    to judge.
    """
    if not isinstance(exc, psycopg.Error):
        return False
    if exc.sqlstate:
        return exc.sqlstate[:2] in _OUTAGE_CLASSES
    # No SQLSTATE: psycopg's own errors, a lost or refused connection among them.
    return not isinstance(exc, psycopg.DataError)


def create_pool(dsn: str, *, name: str, max_size: int = 10) -> ConnectionPool[Connection[dict]]:  # type: ignore[type-arg]
    """A pool whose connections return rows as dicts and survive a database restart.

    ``check`` validates a connection before lending it, so a pool outlives a PostgreSQL
    restart without handing out dead connections.
    """
    return ConnectionPool(
        dsn,
        min_size=1,
        max_size=max_size,
        name=name,
        kwargs={"row_factory": dict_row, "application_name": f"bandeja-{name}"},
        check=check_if_server_spoke,
        reconnect_timeout=300,
        open=True,
    )


@contextmanager
def single_statements(pool: ConnectionPool[Connection[Any]]) -> Iterator[Connection[Any]]:
    """A pooled connection in autocommit mode, for work that is one statement.

    Outside autocommit psycopg sends ``BEGIN`` and ``COMMIT`` as round trips of their own
    (``BaseConnection._start_query``): a one-statement transaction is three round trips
    where one does. The connection goes back to the pool as it came, not in autocommit.
    """
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            if not conn.closed:
                conn.autocommit = False


def check_if_server_spoke(conn: Connection[Any]) -> None:
    """The pool's check before lending a connection: a round trip only when the server
    wrote to the connection while it sat idle in the pool.

    A backend that is ended (a restart, a failover, ``pg_terminate_backend``) first sends
    its FATAL error and then closes the socket, so a dead pooled connection is readable;
    an idle healthy one has nothing to read. ``ConnectionPool.check_connection`` on every
    checkout was one extra round trip per transaction, 14 % of the fetcher's time in a
    quiet poll (BENCHMARKS.md, "10,000 mailboxes").
    """
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)


def connect(dsn: str, *, autocommit: bool = False, **kwargs: Any) -> Connection[dict]:  # type: ignore[type-arg]
    return Connection.connect(dsn, row_factory=dict_row, autocommit=autocommit, **kwargs)


class NotificationListener:
    """LISTEN on a channel; a wake-up hint only, so callers poll as well.

    Notifications are not kept for listeners that are away (PostgreSQL docs, NOTIFY), and
    the connection is re-opened lazily after a database restart.
    """

    def __init__(self, dsn: str, channel: str) -> None:
        self._dsn = dsn
        self._channel = channel
        self._conn: Connection[Any] | None = None

    def wait(self, timeout: float) -> None:
        try:
            if self._conn is None or self._conn.closed:
                # Bounded: an unreachable server must not stall the caller's loop (and
                # its heartbeat) for the operating system's TCP timeout.
                self._conn = connect(self._dsn, autocommit=True, connect_timeout=5)
                self._conn.execute(f"LISTEN {self._channel}")
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                pass
        except Exception:  # noqa: BLE001 - the database is away; poll again later
            self.close()
            time.sleep(min(timeout, 2.0))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
