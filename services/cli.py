"""``bandeja``: one entry point for every process (DESIGN.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import structlog

from common.logging import configure_logging, redactor
from common.settings import Settings

log = structlog.get_logger("bandeja")


def _settings(process: str) -> Settings:
    settings = Settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, process=process)
    for secret in (settings.client_secret, settings.admin_token):
        redactor.add_known_secret(secret.get_secret_value())
    for key in settings.token_keys.get_secret_value().split(","):
        redactor.add_known_secret(key.strip())
    return settings


def cmd_migrate(_: argparse.Namespace) -> int:
    from common.migrate import migrate

    settings = _settings("migrate")
    for dsn in dict.fromkeys([settings.database_url, settings.crm_dsn]):
        applied = migrate(dsn)
        log.info("migrations_done", applied=applied)
    return 0


def cmd_auth(_: argparse.Namespace) -> int:
    from services.auth.main import run

    return run(_settings("auth"))


def cmd_fetcher(_: argparse.Namespace) -> int:
    from services.fetcher.main import run

    return run(_settings("fetcher"))


def cmd_processor(_: argparse.Namespace) -> int:
    from services.processor.main import run

    return run(_settings("processor"))


def cmd_relay(_: argparse.Namespace) -> int:
    from services.relay.main import run

    return run(_settings("relay"))


def cmd_rotate_keys(_: argparse.Namespace) -> int:
    from common.db import connect
    from common.tokens import TokenCipher, rotate_all

    settings = _settings("rotate-keys")
    with connect(settings.database_url) as conn, conn.transaction():
        count = rotate_all(conn, TokenCipher(settings.fernet))
    log.info("keys_rotated", values=count)
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "migrate": (cmd_migrate, "apply database migrations (idempotent)"),
    "auth": (cmd_auth, "run the auth service: OAuth flows, admin API, token refresh"),
    "fetcher": (cmd_fetcher, "run fetch workers and the scheduler"),
    "processor": (cmd_processor, "run the mail processing workers"),
    "relay": (cmd_relay, "publish outbox events to RabbitMQ"),
    "rotate-keys": (cmd_rotate_keys, "re-encrypt stored tokens with the newest key"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bandeja", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (handler, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text).set_defaults(handler=handler)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
