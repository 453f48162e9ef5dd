"""What the admin API and the status page read: pages of mailboxes and counts by state.

Pages are keyset-paginated on the address (unique): a page costs the same at the 10,000th
mailbox as at the first, where OFFSET would read and discard every row before it. The
filters are served by the indexes of migration 0011 (state, tenant) and the address's
unique index; a search reads the addresses of one page's worth of matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection, sql

_COLUMNS = (
    "id, address, tenant_id, auth_kind, state, state_reason, last_fetch_at,"
    " last_error, erp_reference AS reference, created_at, updated_at"
)


@dataclass(frozen=True)
class MailboxFilter:
    state: str | None = None
    tenant_id: str | None = None
    search: str | None = None  # part of the address, any case


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    last_address: str | None  # where the next page starts after; None on the last page


def page_of_mailboxes(
    conn: Connection[Any], wanted: MailboxFilter, after: str | None, limit: int
) -> Page:
    """Up to ``limit`` mailboxes matching ``wanted``, by address, after ``after``."""
    where, params = _where(wanted)
    if after is not None:
        where.append(sql.SQL("address > %(after)s"))
        params["after"] = after
    query = sql.SQL("SELECT {columns} FROM mailboxes {where} ORDER BY address LIMIT %(n)s").format(
        columns=sql.SQL(_COLUMNS), where=_joined(where)
    )
    params["n"] = limit + 1  # one more tells whether another page follows
    rows = conn.execute(query, params).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1]["address"] if more else None)


def counts_by_state(conn: Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT state, count(*) AS n FROM mailboxes GROUP BY state").fetchall()
    return {r["state"]: r["n"] for r in rows}


def bound_statements(conn: Connection[Any], seconds: float) -> None:
    """Every statement of the current transaction gives up after ``seconds``."""
    conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(int(seconds * 1000)))


def _where(wanted: MailboxFilter) -> tuple[list[sql.Composable], dict[str, Any]]:
    where: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if wanted.state is not None:
        where.append(sql.SQL("state = %(state)s"))
        params["state"] = wanted.state
    if wanted.tenant_id is not None:
        where.append(sql.SQL("tenant_id = %(tenant)s"))
        params["tenant"] = wanted.tenant_id
    if wanted.search:
        # Addresses are stored lower-case; LIKE's wildcards in the search are literal.
        where.append(sql.SQL("address LIKE %(search)s"))
        params["search"] = f"%{_like_literal(wanted.search.lower())}%"
    return where, params


def _joined(where: list[sql.Composable]) -> sql.Composable:
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
