-- Raw mail in pages: every mail the fetcher stores from now on goes to raw_message_chunks
-- in pages of at most 8,000 bytes (services/fetcher/store/raw_mail.py, PAGE_BYTES), one
-- row each, kept whole in the table's own 8 KiB page (STORAGE PLAIN: never compressed,
-- never moved out of line; a longer row is refused, not silently toasted).
--
-- Why: TOAST cut a 60 KB mail into 30 chunks of about 2 KB, each its own heap insert,
-- TOAST-index insert and WAL record, after an lz4 attempt on the whole value. As 8 pages
-- written by one COPY it costs PostgreSQL 0.16-0.28 ms of CPU instead of 0.38-0.53
-- (BENCHMARKS.md, "Eleventh round"). Reading the pages back with string_agg costs what
-- detoasting did.
--
-- Catalog-only: rows stored before keep their bytes where they are (raw_messages.raw, or
-- chunks of up to 1 MiB, which stay readable); raw_bytes() below reads either layout.
ALTER TABLE raw_message_chunks ALTER COLUMN data SET STORAGE PLAIN;

-- A stored mail's bytes, whichever layout holds them; NULL once retention deleted them
-- (and for a mail over the size cap, whose headers are in raw_messages.headers).
-- Written as a column of the row: SELECT r.raw_bytes FROM raw_messages r WHERE ...
CREATE FUNCTION raw_bytes(r raw_messages) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN r.chunked
        THEN (SELECT string_agg(c.data, ''::bytea ORDER BY c.seq)
              FROM raw_message_chunks c WHERE c.raw_id = r.id)
        ELSE r.raw END
$$;
