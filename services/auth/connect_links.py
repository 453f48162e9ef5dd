"""Connect links the ERP mints for its customers: ``POST /api/connect-links``.

A link carries a random ticket (only its SHA-256 is stored): it names the mailbox's
address and the ERP's own reference for the customer, connects one mailbox once, and
expires (``BANDEJA_CONNECT_TICKET_TTL``). The reference is stored on the mailbox and sent
in its every event.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any
from urllib.parse import urlencode

import structlog
from pydantic import BaseModel, EmailStr, Field, ValidationError
from starlette.responses import JSONResponse, Response

from services.auth.context import AuthContext
from services.auth.json_api import invalid
from services.auth.store import tickets

log = structlog.get_logger(__name__)

_TICKET = re.compile(r"^[A-Za-z0-9_-]{43}$")


class ConnectLinkRequest(BaseModel):
    address: EmailStr
    reference: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")


def ticket_hash(ticket: str | None) -> bytes | None:
    """The stored form of a ticket; None for anything we could not have issued."""
    if ticket is None or not _TICKET.match(ticket):
        return None
    return hashlib.sha256(ticket.encode()).digest()


def mint(ctx: AuthContext, body: Any) -> Response:
    try:
        wanted = ConnectLinkRequest.model_validate(body)
    except ValidationError as exc:
        return invalid(exc)
    ticket = secrets.token_urlsafe(32)
    digest = ticket_hash(ticket)
    assert digest is not None
    with ctx.pool.connection() as conn:
        expires_at = tickets.save_ticket(
            conn,
            digest,
            str(wanted.address).lower(),
            wanted.reference,
            ctx.settings.connect_ticket_ttl,
        )
    log.info("connect_link_minted", expires_at=expires_at.isoformat())
    url = f"{ctx.settings.public_url}/connect?{urlencode({'ticket': ticket})}"
    return JSONResponse({"url": url, "expires_at": expires_at.isoformat()}, status_code=201)
