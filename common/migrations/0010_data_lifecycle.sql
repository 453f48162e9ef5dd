-- The data lifecycle (services/lifecycle/).
-- Retention: once a mail's document is older than BANDEJA_RAW_RETENTION_DAYS, its raw
-- bytes are deleted and its row stays as a small tombstone (mailbox, folder, UIDVALIDITY,
-- UID, Message-ID, SHA-256): the fetch's exactly-once guards still recognise the mail if
-- it turns up unread again, and `bandeja reprocess` knows there is nothing to re-parse.
ALTER TABLE raw_messages ADD COLUMN raw_deleted_at timestamptz;
-- The mails still holding their bytes, oldest first: what the sweeper scans. Bounded by
-- the retention window's volume, however long the tombstones pile up.
CREATE INDEX raw_messages_kept ON raw_messages (fetched_at) WHERE raw_deleted_at IS NULL;
-- Purging one mailbox finds its documents without scanning the CRM table.
CREATE INDEX documents_mailbox ON documents (mailbox_id);
