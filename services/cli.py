"""``bandeja``: one entry point for every process (docs/architecture.md#contracts-cli)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import structlog
from pydantic import ValidationError

from common.logging import configure_logging, redactor
from common.settings import Settings
from common.tracing import setup_tracing

log = structlog.get_logger("bandeja")


def _settings(process: str) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        # pydantic's own text repeats the input values, which may be secrets.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise SystemExit(f"refusing to start: {problems}") from None
    configure_logging(level=settings.log_level, fmt=settings.log_format, process=process)
    setup_tracing(process)
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


def cmd_reprocess(args: argparse.Namespace) -> int:
    from common.broker import setup_broker
    from common.db import connect
    from common.health import broker_check
    from services.processor.errors import SendInterrupted
    from services.processor.reprocess import reprocess

    if not args.failed and args.stranded_minutes is None:
        print("bandeja reprocess: give --failed, --stranded-minutes N or both", file=sys.stderr)
        return 2
    settings = _settings("reprocess")
    if not args.dry_run:
        # Checked before any failed document is deleted, so a broker that is down
        # leaves everything as it was.
        try:
            broker_check(settings.broker_url)()
        except Exception as exc:  # noqa: BLE001 - any failure: reported by type, URL kept out
            print(
                f"bandeja reprocess: the broker does not answer ({type(exc).__name__});"
                " nothing changed",
                file=sys.stderr,
            )
            return 1
        setup_broker(settings.broker_url)
    with connect(settings.crm_dsn) as conn:
        try:
            summary = reprocess(
                conn,
                failed=args.failed,
                stranded_minutes=args.stranded_minutes,
                mailbox=args.mailbox,
                dry_run=args.dry_run,
            )
        except SendInterrupted as exc:
            print(
                f"bandeja reprocess: the broker failed after {exc.sent} of {exc.total}"
                " messages; the mails not sent have no document now: run"
                " `bandeja reprocess --stranded-minutes 0` once the broker answers",
                file=sys.stderr,
            )
            return 1
    print(json.dumps(summary))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from common.db import connect
    from services.lifecycle.purge import purge_mailbox

    settings = _settings("purge")
    address = args.mailbox.strip().lower()
    with connect(settings.database_url) as conn:
        purged = purge_mailbox(conn, address=address)
    if purged is None:
        print(f"bandeja purge: Bandeja holds nothing for {address}", file=sys.stderr)
        return 1
    print(json.dumps(purged.as_json()))
    return 0


def _purge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mailbox", required=True, metavar="ADDRESS", help="the mailbox address")


def _reprocess_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--failed", action="store_true", help="mails whose document is failed")
    parser.add_argument(
        "--stranded-minutes",
        type=float,
        metavar="N",
        help="mails stored over N minutes ago that have no document",
    )
    parser.add_argument("--mailbox", help="only this mailbox address")
    parser.add_argument("--dry-run", action="store_true", help="count, change nothing")


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "migrate": (cmd_migrate, "apply database migrations (idempotent)"),
    "auth": (cmd_auth, "run the auth service: OAuth flows, admin API, token refresh"),
    "fetcher": (cmd_fetcher, "run fetch workers and the scheduler"),
    "processor": (cmd_processor, "run the mail processing workers"),
    "relay": (cmd_relay, "publish outbox events to RabbitMQ"),
    "rotate-keys": (cmd_rotate_keys, "re-encrypt stored tokens with the newest key"),
    "reprocess": (cmd_reprocess, "send failed or stranded stored mails to the processor again"),
    "purge": (cmd_purge, "erase everything Bandeja holds for one mailbox, then tell the ERP"),
}
ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "reprocess": _reprocess_arguments,
    "purge": _purge_arguments,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bandeja", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (handler, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        command.set_defaults(handler=handler)
        if name in ARGUMENTS:
            ARGUMENTS[name](command)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
