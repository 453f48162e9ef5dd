-- A delegated mailbox belongs to one Entra account, named by (tenant id, object id) from
-- a validated id_token: `oid` is immutable and, with `tid`, the key Microsoft recommends
-- (https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference).
-- The address stays an attribute (the IMAP login name). object_id is NULL for app-only
-- mailboxes and for rows connected before this migration: those get it on their next
-- refresh or reconnect.
ALTER TABLE mailboxes
    ADD COLUMN object_id       text,
    ADD COLUMN erp_reference   text,                -- the ERP's own id for its customer
    ADD COLUMN disconnected_at timestamptz;         -- when an administrator disconnected it
CREATE UNIQUE INDEX mailboxes_identity ON mailboxes (tenant_id, object_id)
    WHERE object_id IS NOT NULL;
UPDATE mailboxes SET disconnected_at = updated_at WHERE state = 'disconnected';

-- Connect links the ERP mints (POST /api/connect-links): single-use, expiring. Only a
-- SHA-256 of the ticket is kept; the ticket itself exists only in the link.
CREATE TABLE connect_tickets (
    ticket_hash   bytea PRIMARY KEY,
    address       text NOT NULL,
    erp_reference text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    mailbox_id    bigint REFERENCES mailboxes(id) ON DELETE SET NULL
);
CREATE INDEX connect_tickets_expiry ON connect_tickets (expires_at);

-- A flow is finished only by the browser that started it: SHA-256 of its flow cookie.
-- ticket_hash: the connect link the flow was started from, consumed when it succeeds.
ALTER TABLE oauth_flows
    ADD COLUMN browser_binding bytea,
    ADD COLUMN ticket_hash     bytea;
