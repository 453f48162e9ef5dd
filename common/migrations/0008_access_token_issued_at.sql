-- When the current access token was issued, so "too close to expiry" can be a share of the
-- token's lifetime instead of a fixed number of seconds: a fixed 30 s margin made every
-- 30 s token look expired at once and asked for a refresh on each look. Set by a trigger
-- whenever a new token arrives (its expiry changes), so every writer of mailbox_tokens
-- (connect, reconnect, refresh) keeps it right without repeating it; re-encrypting
-- (`bandeja rotate-keys`) keeps the expiry and so the issue time.
ALTER TABLE mailbox_tokens ADD COLUMN access_issued_at timestamptz;
UPDATE mailbox_tokens SET access_issued_at = COALESCE(last_refresh_at, updated_at)
    WHERE access_expires_at IS NOT NULL;

CREATE FUNCTION mailbox_tokens_access_issued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.access_expires_at IS DISTINCT FROM OLD.access_expires_at THEN
        NEW.access_issued_at := now();
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER mailbox_tokens_access_issued
    BEFORE INSERT OR UPDATE OF access_expires_at ON mailbox_tokens
    FOR EACH ROW EXECUTE FUNCTION mailbox_tokens_access_issued();
