-- Per-tenant IMAP limits: Exchange Online throttles per tenant and caps connections
-- per mailbox (docs/architecture.md#exo-limits), so every fetcher replica shares these leases.
ALTER TABLE tenants ADD COLUMN imap_throttled_until timestamptz;

CREATE TABLE imap_slots (
    tenant_id   text NOT NULL,
    slot        integer NOT NULL,
    owner       text,
    lease_until timestamptz,
    PRIMARY KEY (tenant_id, slot)
);

-- IDLE: one watcher per mailbox across all replicas, held by a renewable lease.
ALTER TABLE mailboxes ADD COLUMN use_idle boolean NOT NULL DEFAULT true;
ALTER TABLE mailboxes ADD COLUMN idle_owner text;
ALTER TABLE mailboxes ADD COLUMN idle_lease_until timestamptz;

-- Big mail is stored in chunks as it is fetched, so a worker never holds it whole.
CREATE TABLE raw_message_chunks (
    raw_id bigint NOT NULL REFERENCES raw_messages(id) ON DELETE CASCADE,
    seq    integer NOT NULL,
    data   bytea NOT NULL,
    PRIMARY KEY (raw_id, seq)
);
ALTER TABLE raw_messages ADD COLUMN chunked boolean NOT NULL DEFAULT false;
