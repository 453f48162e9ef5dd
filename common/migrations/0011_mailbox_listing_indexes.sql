-- The admin API's and status page's filtered pages (services/auth/store/listing.py): a
-- page by state or by tenant walks its index in address order and stops after one page,
-- at 10,000 mailboxes as at ten. The unfiltered page uses the address's unique index.
CREATE INDEX mailboxes_state_address ON mailboxes (state, address);
CREATE INDEX mailboxes_tenant_address ON mailboxes (tenant_id, address);
