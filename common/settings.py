"""The one typed settings object, read from ``BANDEJA_*`` variables once at start-up.

Nothing else in the code base reads ``os.environ``: processes build a :class:`Settings`
in their entry point and pass it down.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DELEGATED_IMAP_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"
APP_ONLY_IMAP_SCOPE = "https://outlook.office365.com/.default"
DEFAULT_PROCESS_BYTES_IN_FLIGHT = 48 * 1024 * 1024


class Settings(BaseSettings):
    """Every knob of every Bandeja process (DESIGN.md, "Contracts")."""

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
    # user's own tenant (MS365.md §1.4).
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
    queue_metrics_interval: float = 15.0
    log_format: str = "json"
    log_level: str = "INFO"

    fetch_batch_size: int = 20
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
    process_max_retries: int = Field(default=8, ge=0, le=20)
    # Raw mail bytes one processor process loads and parses at once (parsing peaks at about
    # 8-11x a mail's size, 22x for a mail that is mostly an XML attachment): 48 MiB keeps
    # eight threads on large mails under 1 GiB, and on XML-heavy ones near 1.3 GiB, within
    # the 2 GiB pod limit (services/processor/budget.py).
    process_bytes_in_flight: int = Field(default=DEFAULT_PROCESS_BYTES_IN_FLIGHT, ge=1024 * 1024)
    # Consecutive "no such mailbox / no rights" failures before a mailbox goes to error.
    mailbox_error_threshold: int = 3
    oauth_state_ttl: float = 600.0
    client_secret_expires_at: datetime | None = None

    @field_validator("authority_host", "public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

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
