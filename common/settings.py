"""The one typed settings object, read from ``BANDEJA_*`` variables once at start-up.

Nothing else in the code base reads ``os.environ``: processes build a :class:`Settings`
in their entry point and pass it down.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from functools import cached_property
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet
from limits import RateLimitItem, parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DELEGATED_IMAP_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"
APP_ONLY_IMAP_SCOPE = "https://outlook.office365.com/.default"
DEFAULT_PROCESS_BYTES_IN_FLIGHT = 48 * 1024 * 1024
# Retries of a processing message before its mails are settled (services/processor/actors.py).
DEFAULT_PROCESS_MAX_RETRIES = 8
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# 32 characters of a random token (e.g. `openssl rand -hex 32`) put guessing out of reach;
# the public status login would otherwise be a password prompt for a short word.
MIN_ADMIN_TOKEN_LENGTH = 32


class Settings(BaseSettings):
    """Every knob of every Bandeja process (docs/architecture.md#contracts-settings)."""

    model_config = SettingsConfigDict(
        env_prefix="BANDEJA_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "postgresql://localhost/bandeja"
    crm_database_url: str | None = None
    broker_url: str = "amqp://guest:guest@localhost:5672/"

    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    authority_host: str = "https://login.microsoftonline.com"
    # The tenant segment used to start a delegated sign-in; refreshes then target the
    # user's own tenant (docs/architecture.md#identity-authorities).
    sign_in_tenant: str = "organizations"

    imap_host: str = "outlook.office365.com"
    imap_port: int = 993
    imap_tls: bool = True
    imap_timeout: float = 60.0
    ca_bundle: Path | None = None

    public_url: str = "http://localhost:8080"
    http_port: int = 8080
    http_host: str = "0.0.0.0"  # noqa: S104 - a service in a pod listens on every interface

    token_keys: SecretStr = Field(default=SecretStr(""))
    admin_token: SecretStr = Field(default=SecretStr(""))

    poll_interval: float = 60.0
    metrics_port: int = 9191
    worker_threads: int = 8
    # The processor's threads: parsing is CPU under the GIL, so threads past the two that
    # overlap one mail's database round trips with another's parse only contend for it
    # (2 rather than 8: 5-30 % less processor CPU per mail and more mails a second in the
    # throughput bench, BENCHMARKS.md). Scale processors with replicas, one per core.
    processor_threads: int = 2
    queue_metrics_interval: float = 15.0
    # How often auth reads mailbox states and token expiry for /metrics, in the background.
    token_health_interval: float = 15.0
    log_format: str = "json"
    log_level: str = "INFO"

    # Mails per FETCH, per stored transaction and per processing message (also capped at
    # 16 MiB). Every batch costs a FETCH and a STORE, three fetcher transactions, a
    # publish and its confirm, a processor message with its transactions, and a relay
    # turn: 50 instead of 20 took 0.4-0.9 ms of CPU off every 60 KB mail and gave 11-25 %
    # more mails a second end to end; 100 gave nothing more (BENCHMARKS.md).
    fetch_batch_size: int = 50
    max_message_bytes: int = 50 * 1024 * 1024
    # Above this size a mail is fetched in partial FETCHes and stored chunk by chunk.
    chunk_threshold_bytes: int = 4 * 1024 * 1024
    imap_connections_per_tenant: int = 8
    # Logged-in sessions a fetcher process keeps between runs (one per mailbox), and for
    # how long: polls skip the handshake and login, as Exchange prefers. Off by default:
    # each fetcher replica parks its own, so a mailbox may have one idle session per
    # replica; turn it on with one replica, or where that many connections are fine.
    imap_parked_sessions: int = 0
    imap_session_keep_seconds: float = 300.0
    # IDLE sessions one fetcher process holds at most; 0 turns push off (polling only).
    idle_sessions: int = 200
    # Re-issue IDLE well within Exchange's undocumented timeout (RFC 2177: < 29 min).
    idle_renew_seconds: float = 600.0
    # Retries of a processing message (backoff 1 s doubling to 2 min, jittered: 8 ≈ 5 minutes)
    # before its mails are settled: one last attempt each, else a `failed` document.
    process_max_retries: int = Field(default=DEFAULT_PROCESS_MAX_RETRIES, ge=0, le=20)
    # Raw mail bytes one processor process loads and parses at once (parsing peaks at about
    # 8-11x a mail's size, 22x for a mail that is mostly an XML attachment): 48 MiB keeps
    # eight threads on large mails under 1 GiB, and on XML-heavy ones near 1.3 GiB, within
    # the 2 GiB pod limit (services/processor/budget.py).
    process_bytes_in_flight: int = Field(default=DEFAULT_PROCESS_BYTES_IN_FLIGHT, ge=1024 * 1024)
    # Consecutive "no such mailbox / no rights" failures before a mailbox goes to error.
    mailbox_error_threshold: int = 3
    oauth_state_ttl: float = 600.0
    # Connect links minted by the ERP (POST /api/connect-links): their lifetime, and
    # whether a bare /connect?login_hint= is refused (only a needs_reauth mailbox may
    # still be reconnected by its own reconnect link).
    connect_ticket_ttl: float = Field(default=86400.0, gt=0)
    connect_requires_ticket: bool = False
    # Comma-separated tenant ids whose users may sign in; empty: any tenant.
    allowed_tenants: str = ""
    # Days a mail's raw bytes (and a failed document) are kept after its document was
    # written; a mail without a document is never deleted (services/lifecycle/retention.py).
    raw_retention_days: float = Field(default=30.0, ge=0)
    # Seconds between the relay's retention sweeps.
    retention_interval: float = Field(default=300.0, gt=0)
    # Where people ask for their data to be erased (an e-mail address or a URL), shown
    # on the data page; empty: the page tells them to ask the organisation that connected them.
    data_contact: str = ""
    # Expired sign-in flows are deleted this often (every unauthenticated /connect adds one).
    flow_purge_interval: float = Field(default=60.0, gt=0)
    # Requests one client address may make to the public routes (/connect, the callbacks,
    # /admin-consent, the status login), in the `limits` notation ("60/minute;600/hour").
    public_rate_limit: str = "60/minute"
    # Proxies whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips: addresses or
    # networks, comma-separated): the ingress controller's pods, so the rate limit counts
    # people, not the ingress.
    trusted_proxies: str = "127.0.0.1"
    # How long a status-page login lasts (the cookie's Max-Age, also checked server-side).
    status_session_seconds: int = Field(default=8 * 3600, gt=0)
    client_secret_expires_at: datetime | None = None

    @field_validator("authority_host", "public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("allowed_tenants")
    @classmethod
    def _tenant_ids(cls, value: str) -> str:
        ids = [t.strip().lower() for t in value.split(",") if t.strip()]
        bad = [t for t in ids if not _GUID.match(t)]
        if bad:
            raise ValueError(f"BANDEJA_ALLOWED_TENANTS: not tenant ids (GUIDs): {bad}")
        return ",".join(ids)

    @property
    def allowed_tenant_ids(self) -> frozenset[str]:
        return frozenset(t for t in self.allowed_tenants.split(",") if t)

    @field_validator("admin_token")
    @classmethod
    def _long_admin_token(cls, value: SecretStr) -> SecretStr:
        # Empty means "not set here" (workers never get it); auth refuses that separately.
        if value.get_secret_value() and len(value.get_secret_value()) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(
                f"BANDEJA_ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters"
            )
        return value

    @field_validator("public_rate_limit")
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        parse_many(value)  # raises ValueError on a notation `limits` does not understand
        return value

    @model_validator(mode="after")
    def _imap_tls_unless_loopback(self) -> Settings:
        # Without TLS the XOAUTH2 bearer token crosses the network in clear: only a server
        # on this machine (a local test Dovecot) may be reached that way.
        if not self.imap_tls and not _is_loopback(self.imap_host):
            raise ValueError(
                f"BANDEJA_IMAP_TLS=false is refused for {self.imap_host!r}: plain IMAP is "
                "allowed only to a loopback address"
            )
        return self

    @property
    def public_rate_limits(self) -> list[RateLimitItem]:
        return parse_many(self.public_rate_limit)

    @property
    def crm_dsn(self) -> str:
        return self.crm_database_url or self.database_url

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/oauth/callback"

    @property
    def admin_consent_redirect_uri(self) -> str:
        return f"{self.public_url}/admin-consent/callback"

    @cached_property
    def fernet(self) -> MultiFernet:
        """The token cipher: the first key encrypts, every key decrypts (rotation)."""
        keys = [k.strip() for k in self.token_keys.get_secret_value().split(",") if k.strip()]
        if not keys:
            raise ValueError("BANDEJA_TOKEN_KEYS is empty: refusing to handle tokens")
        return MultiFernet([Fernet(k.encode()) for k in keys])

    def require_secrets(self, *, admin: bool = True) -> None:
        """Fail at start-up, not at the first request, when a mandatory secret is missing."""
        wanted = [("BANDEJA_TOKEN_KEYS", self.token_keys)]
        if admin:
            wanted.append(("BANDEJA_ADMIN_TOKEN", self.admin_token))
        missing = [name for name, value in wanted if not value.get_secret_value()]
        if missing:
            raise SystemExit(f"refusing to start: {', '.join(missing)} not set")
        _ = self.fernet


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
