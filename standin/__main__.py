"""`python -m standin up --dir DIR [--client-id ID] [--client-secret S] [--redirect-uri URI]`.

Starts the identity emulator and Dovecot, seeds a demo tenant, users and app registration,
writes `DIR/standin.env` for a Bandeja process, and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import time
import uuid
from pathlib import Path

from standin.testing import StandIn

DEMO_DOMAIN = "contoso.example"
DEMO_USERS = (("alice", True), ("bob", False))


def _seed(standin: StandIn, args: argparse.Namespace) -> dict[str, str]:
    control = standin.identity.control
    tenant = control.create_tenant(DEMO_DOMAIN, args.tenant_id)
    client = control.register_client(args.client_id, args.client_secret, args.redirect_uri)
    control.grant_admin_consent(tenant["id"], client["client_id"])
    for name, is_admin in DEMO_USERS:
        control.create_user(f"{name}@{DEMO_DOMAIN}", is_admin=is_admin)
    standin.dovecot.create_users({f"{n}@{DEMO_DOMAIN}": args.imap_password
                                  for n, _ in DEMO_USERS})
    return {
        "BANDEJA_AUTHORITY_HOST": standin.identity.base_url,
        "BANDEJA_CLIENT_ID": client["client_id"],
        "BANDEJA_CLIENT_SECRET": client["secret"],
        "BANDEJA_IMAP_HOST": standin.dovecot.host,
        "BANDEJA_IMAP_PORT": str(standin.dovecot.imaps_port),
        "BANDEJA_IMAP_TLS": "true",
        "BANDEJA_CA_BUNDLE": str(Path(standin.identity.ca_path).resolve()),
        "STANDIN_CONTROL_URL": f"{standin.identity.base_url}/_control",
        "STANDIN_TENANT_ID": tenant["id"],
        "STANDIN_IMAP_PLAIN_PORT": str(standin.dovecot.imap_port),
        "STANDIN_DEMO_USERS": ",".join(f"{n}@{DEMO_DOMAIN}" for n, _ in DEMO_USERS),
        "STANDIN_DEMO_IMAP_PASSWORD": args.imap_password,
    }


def up(args: argparse.Namespace) -> None:
    directory = args.dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with StandIn(directory) as standin:
        env = _seed(standin, args)
        env_file = directory / "standin.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        # The CA sits in the identity state dir; expose it where the brief promises it.
        (directory / "ca.pem").write_bytes(Path(standin.identity.ca_path).read_bytes())
        env_file.write_text(env_file.read_text().replace(
            env["BANDEJA_CA_BUNDLE"], str(directory / "ca.pem")))
        print(f"READY {env_file}", flush=True)
        while not stop["now"]:
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m standin")
    commands = parser.add_subparsers(dest="command", required=True)
    parser_up = commands.add_parser("up", help="start the emulator and Dovecot")
    parser_up.add_argument("--dir", type=Path, required=True)
    parser_up.add_argument("--client-id", default=str(uuid.uuid4()))
    parser_up.add_argument("--client-secret", default=secrets.token_urlsafe(24))
    parser_up.add_argument("--tenant-id", default=None)
    parser_up.add_argument("--redirect-uri", action="append",
                           default=None, help="repeatable; default http://localhost:8000/auth/callback")
    parser_up.add_argument("--imap-password", default="standin",
                           help="PLAIN password of the demo users")
    args = parser.parse_args(argv)
    if args.redirect_uri is None:
        args.redirect_uri = ["http://localhost:8000/auth/callback"]
    up(args)
    sys.exit(0)


if __name__ == "__main__":
    main()
