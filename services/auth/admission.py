"""Which mailbox row a finished sign-in may connect, or why it may connect none.

A delegated mailbox belongs to one account, (tenant id, object id). A sign-in by another
account never takes it over; a mailbox an administrator disconnected comes back only
through a connect link minted after the disconnection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.auth.id_token import SignedInAccount


@dataclass(frozen=True)
class Admission:
    existing_id: int | None = None  # None: a new mailbox
    refusal: str | None = None  # a reason shown on the page and logged for the operator


def admit(
    rows: list[dict[str, Any]],
    account: SignedInAccount,
    *,
    ticket_minted_at: datetime | None,
    ticket_required: bool,
) -> Admission:
    """Decide from the rows about this account or its address (``candidates_for_account``)."""
    by_account = [r for r in rows if _is_account(r, account)]
    by_address = [r for r in rows if r["address"] == account.username]
    if by_account and by_address and by_account[0]["id"] != by_address[0]["id"]:
        # The account's mailbox was renamed onto an address another account holds.
        return Admission(refusal="account_mismatch")
    found = next(iter(by_account or by_address), None)
    if found is None:
        needs_ticket = ticket_required and ticket_minted_at is None
        return Admission(refusal="ticket_required" if needs_ticket else None)
    if found["state"] == "disconnected":
        disconnected_at = found["disconnected_at"]
        if ticket_minted_at is None or (
            disconnected_at is not None and ticket_minted_at <= disconnected_at
        ):
            return Admission(refusal="mailbox_disconnected")
        # A link minted after an administrator disconnected it: the ERP may hand the
        # mailbox to whoever now holds the address.
        return Admission(existing_id=found["id"])
    if not _is_account(found, account) and (
        found["object_id"] is not None or found["tenant_id"] != account.tenant_id
    ):
        # Recorded for another account, or (a row from before object ids were kept, or
        # an app-only one) for another tenant.
        return Admission(refusal="account_mismatch")
    return Admission(existing_id=found["id"])


def _is_account(row: dict[str, Any], account: SignedInAccount) -> bool:
    return bool(row["object_id"] == account.object_id and row["tenant_id"] == account.tenant_id)
