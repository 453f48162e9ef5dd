"""The data lifecycle: raw mail kept only as long as configured, and a mailbox erased on
request (docs/architecture.md#lifecycle)."""
