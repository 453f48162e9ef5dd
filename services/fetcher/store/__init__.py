"""All of the fetcher's SQL, one module per noun.

- ``mailboxes``: the fetch-run lease on the mailbox row, folder positions, the
  post-action, the ``error`` state, making a mailbox due now.
- ``runs``: a fetch run's first statement (lease, tenant slot, folder position, token),
  the renewal of lease and slot with each stored batch, and the last statement of a run
  that went well.
- ``access_tokens``: reading the mailbox's access token for a login.
- ``raw_mail``: the raw mail store (the claim check) and its enqueued / done marks.
- ``tenant_limits``: tenant-wide IMAP connection slots and throttling.
- ``idle_leases``: which process watches which mailbox with IDLE.
- ``rules``: the mailbox's mail rules, the mails they skipped, the rule matched on a
  stored mail's headers.
- ``schedule``: which mailboxes are due (the scheduler's claim), when the next falls
  due, every active mailbox's poll age.

The fetch run's names are re-exported here (``store.start_run(...)``); the tenant
limits, IDLE leases, rules and schedule are used through their modules.
"""

from services.fetcher.store.access_tokens import UsableToken, usable_access_token, usable_from_row
from services.fetcher.store.mailboxes import (
    LEASE_TTL,
    LeasedMailbox,
    move_to_error,
    post_action,
    recover_leases_of_previous_life,
    release_failed,
    save_position,
    wake_mailbox,
)
from services.fetcher.store.raw_mail import (
    StoredMail,
    mark_enqueued,
    mark_post_action_done,
    save_raw_batch,
    save_raw_chunked,
    stored_uids,
)
from services.fetcher.store.runs import RunStartRow, finish_ok, renew_run, slot_owner, start_run

__all__ = [
    "LEASE_TTL",
    "LeasedMailbox",
    "RunStartRow",
    "StoredMail",
    "UsableToken",
    "finish_ok",
    "mark_enqueued",
    "mark_post_action_done",
    "move_to_error",
    "post_action",
    "recover_leases_of_previous_life",
    "release_failed",
    "renew_run",
    "save_position",
    "save_raw_batch",
    "save_raw_chunked",
    "slot_owner",
    "start_run",
    "stored_uids",
    "usable_access_token",
    "usable_from_row",
    "wake_mailbox",
]
