-- A processor that dies while parsing (an OOM kill, a crash inside a C extension) leaves
-- its message unacknowledged; RabbitMQ hands it to the next processor, which would die the
-- same way, for ever. processing_since marks the mails being processed right now; when
-- the message comes back redelivered, the marks still set name the mails the dead process
-- was on, and each gets a crash counted. A mail that stopped the processor three times is
-- recorded as failed instead of being parsed again (services/processor/crashes.py).
ALTER TABLE raw_messages
    ADD COLUMN processing_since timestamptz,
    ADD COLUMN processing_crashes smallint NOT NULL DEFAULT 0;
