"""The auth service's SQL, one module per table it owns:

- ``flows``: OAuth flows in flight (``oauth_flows``)
- ``tickets``: connect links' tickets (``connect_tickets``)
- ``tenants``: admin consent and the app-only token cache (``tenants``)
- ``mailboxes``: mailboxes, their states and the events those transitions write
- ``tokens``: encrypted tokens, their refresh claims and leases (``mailbox_tokens``)
- ``listing``: the admin API's and status page's pages of mailboxes and summary counts
- ``rules``: mail rules (``mail_rules``) and what the status page shows of the mails they
  skipped

Nothing else in ``services/auth`` writes SQL.
"""
