-- Mail rules (common/rules.py): which mail becomes a document, which is skipped.
-- A mailbox's own rules are tried first, then its tenant's (mailbox_id NULL), then the
-- built-in default (process). `spec` is a common.rules.RuleSpec as JSON, validated by
-- the admin API before it is written.
CREATE TABLE mail_rules (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL,
    mailbox_id  bigint REFERENCES mailboxes(id) ON DELETE CASCADE,
    position    integer NOT NULL,
    spec        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX mail_rules_mailbox_order ON mail_rules (mailbox_id, position)
    WHERE mailbox_id IS NOT NULL;
CREATE UNIQUE INDEX mail_rules_tenant_order ON mail_rules (tenant_id, position)
    WHERE mailbox_id IS NULL;

-- A mail a rule skipped: no document. Recorded before any post-action is applied (like
-- raw mail), keyed like raw mail, so a run cut short neither records it twice nor
-- leaves it marked read unrecorded. `post_action` NULL: the rule left it unread.
-- The rule is copied by id and name: a rule edited later does not rewrite history.
CREATE TABLE skipped_mails (
    id                  bigserial PRIMARY KEY,
    mailbox_id          bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    folder              text NOT NULL,
    uidvalidity         bigint NOT NULL,
    uid                 bigint NOT NULL,
    raw_message_id      bigint REFERENCES raw_messages(id) ON DELETE CASCADE,
    message_id          text,
    size                bigint,
    rule_id             bigint,
    rule_name           text NOT NULL,
    stage               text NOT NULL CHECK (stage IN ('headers', 'attachments')),
    post_action         text,
    skipped_at          timestamptz NOT NULL DEFAULT now(),
    post_action_done_at timestamptz,
    UNIQUE (mailbox_id, folder, uidvalidity, uid)
);

-- The rule the fetcher matched on a stored mail's headers, for the processor to carry
-- into the document event; `rule` NULL: undecided until the attachments are parsed.
-- No row: the mailbox had no rules at fetch time (the default rule).
CREATE TABLE raw_message_rules (
    raw_message_id bigint PRIMARY KEY REFERENCES raw_messages(id) ON DELETE CASCADE,
    rule           jsonb
);
