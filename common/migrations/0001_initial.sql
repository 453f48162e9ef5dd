-- Service state: tenants, mailboxes, encrypted tokens, OAuth flows in flight.
CREATE TABLE tenants (
    tenant_id          text PRIMARY KEY,            -- Entra tenant GUID (tid)
    admin_consented_at timestamptz,
    app_token_cache    bytea,                       -- Fernet-encrypted msal cache (client credentials)
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mailboxes (
    id               bigserial PRIMARY KEY,
    address          text NOT NULL UNIQUE,           -- lower-case SMTP address
    tenant_id        text NOT NULL,
    auth_kind        text NOT NULL DEFAULT 'delegated'
                     CHECK (auth_kind IN ('delegated', 'app_only')),
    state            text NOT NULL DEFAULT 'active'
                     CHECK (state IN ('active', 'needs_reauth', 'paused', 'disconnected', 'error')),
    state_reason     jsonb,
    folder           text NOT NULL DEFAULT 'INBOX',
    post_action      text NOT NULL DEFAULT 'mark_read'
                     CHECK (post_action IN ('mark_read', 'move', 'flag')),
    move_to_folder   text,
    poll_interval    double precision,               -- NULL: the global BANDEJA_POLL_INTERVAL
    next_fetch_at    timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    lease_owner      text,
    last_fetch_at    timestamptz,
    last_error       text,
    error_count      integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mailboxes_due ON mailboxes (next_fetch_at) WHERE state = 'active';

CREATE TABLE mailbox_tokens (
    mailbox_id          bigint PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
    token_cache         bytea,                       -- Fernet(msal SerializableTokenCache JSON)
    home_account_id     text,
    access_token        bytea,                       -- Fernet(current access token) for the fetcher
    access_expires_at   timestamptz,
    refresh_due_at      timestamptz NOT NULL DEFAULT now(),
    refresh_requested   boolean NOT NULL DEFAULT false, -- IMAP rejected the token: refresh now, forced
    refresh_lease_until timestamptz,
    last_refresh_at     timestamptz,
    failure_count       integer NOT NULL DEFAULT 0,
    generation          integer NOT NULL DEFAULT 0,  -- bumped on reconnect: a refresh in flight must not overwrite newer tokens
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mailbox_tokens_due ON mailbox_tokens (refresh_due_at);

CREATE TABLE oauth_flows (
    state       text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('connect', 'admin_consent')),
    flow        bytea NOT NULL,                      -- Fernet(msal auth-code flow: holds the PKCE verifier)
    login_hint  text,
    lang        text NOT NULL DEFAULT 'es',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz
);

-- Fetcher: per-folder sync position and the raw mail it stored (claim check).
CREATE TABLE folder_state (
    mailbox_id  bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    folder      text NOT NULL,
    uidvalidity bigint NOT NULL,
    last_uid    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, folder)
);

CREATE TABLE raw_messages (
    id          bigserial PRIMARY KEY,
    mailbox_id  bigint NOT NULL REFERENCES mailboxes(id),
    folder      text NOT NULL,
    uidvalidity bigint NOT NULL,
    uid         bigint NOT NULL,
    message_id  text,
    sha256      text NOT NULL,
    size        bigint NOT NULL,
    raw         bytea,                                -- NULL when over the size cap (headers kept)
    headers     bytea,
    too_large   boolean NOT NULL DEFAULT false,
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    enqueued_at timestamptz,
    post_action_done_at timestamptz,
    UNIQUE (mailbox_id, folder, uidvalidity, uid)
);
CREATE INDEX raw_messages_dedupe ON raw_messages (mailbox_id, message_id, sha256);

-- CRM: documents and their files.
CREATE TABLE documents (
    id             uuid PRIMARY KEY,
    raw_message_id bigint NOT NULL UNIQUE,
    mailbox_id     bigint NOT NULL,
    mailbox        text NOT NULL,
    tenant_id      text NOT NULL,
    state          text NOT NULL CHECK (state IN ('processed', 'failed', 'too_large')),
    reason         text,
    message_id     text,
    subject        text,
    from_header    text,
    from_address   text,
    received_at    timestamptz,
    body_text      text,
    body_html      text,
    invoices       jsonb NOT NULL DEFAULT '[]',
    defects        jsonb NOT NULL DEFAULT '[]',
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE document_files (
    id                bigserial PRIMARY KEY,
    document_id       uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    position          integer NOT NULL,
    filename          text NOT NULL,
    original_filename text,
    content_type      text NOT NULL,
    disposition       text NOT NULL,
    source            text NOT NULL,
    size              bigint NOT NULL,
    sha256            text NOT NULL,
    content           bytea NOT NULL,
    UNIQUE (document_id, position)
);

-- Transactional outbox: every event, written in the transaction that caused it.
CREATE TABLE outbox (
    id           uuid PRIMARY KEY,                    -- the CloudEvent id (stable)
    event_type   text NOT NULL,
    event        jsonb NOT NULL,                      -- the whole CloudEvent, structured mode
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text
);
CREATE INDEX outbox_pending ON outbox (created_at) WHERE published_at IS NULL;
