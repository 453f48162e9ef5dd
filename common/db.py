"""PostgreSQL access: connection pools and the NOTIFY channel names."""

from __future__ import annotations

import time
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

OUTBOX_CHANNEL = "bandeja_outbox"
TOKEN_REFRESH_CHANNEL = "bandeja_token_refresh"  # noqa: S105 - a channel name
MAILBOX_CHANNEL = "bandeja_mailbox"


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
        check=ConnectionPool.check_connection,
        reconnect_timeout=300,
        open=True,
    )


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
