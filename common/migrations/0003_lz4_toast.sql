-- Mail is stored twice (raw bytes, then the decoded attachments), mostly incompressible
-- (PDF, images, zip). pglz spends about 1.4 ms failing to compress a 60 KB value; lz4
-- about 0.4 ms, and it compresses better where it can (BENCHMARKS.md, "TOAST").
-- Catalog-only: existing values stay as they are, new ones use lz4. A server built
-- without lz4 keeps pglz rather than failing the migration.
DO $$
BEGIN
    ALTER TABLE raw_messages ALTER COLUMN raw SET COMPRESSION lz4,
                             ALTER COLUMN headers SET COMPRESSION lz4;
    ALTER TABLE raw_message_chunks ALTER COLUMN data SET COMPRESSION lz4;
    ALTER TABLE document_files ALTER COLUMN content SET COMPRESSION lz4;
    ALTER TABLE documents ALTER COLUMN body_text SET COMPRESSION lz4,
                          ALTER COLUMN body_html SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN event SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available in this PostgreSQL build; TOAST stays pglz';
END
$$;
