"""``make demo``: the whole system against the local Microsoft 365 stand-in.

Starts the identity emulator and Dovecot, Bandeja's four processes (each its own OS
process, configured only through BANDEJA_* variables), connects a mailbox through the
real HTTP sign-in flow, delivers sample invoices, prints the CRM documents and the
events a plain consumer received. Then it leaves everything running, prints where to
look (connect and status pages, /metrics, how to send a mail) and each new event as it
arrives, until Ctrl-C (or SIGTERM) stops everything it started.

``DEMO_ONESHOT=1``, or ``CI=true``: stop right after the walkthrough (nothing waits for
a person). ``DEMO_EXCHANGE=1`` puts the Exchange Online personality proxy in front of
Dovecot and throttles the tenant once, to show the fetcher backing off.

``python -m scripts.demo send [FILE.eml]``, beside a running demo: delivers the mail (a
sample invoice without FILE) into the demo mailbox in the stand-in.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pika
import psycopg
import requests
from cryptography.fernet import Fernet
from imapclient import IMAPClient

from services.relay.topology import policy_arguments
from standin.control import sign_in
from standin.dovecot import MASTER_SEPARATOR
from standin.samples import invoice_mail
from standin.testing import StandIn

DB_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# DEMO_NAME lets a second demo (or the demo's own test) run beside `make demo`.
DEMO_NAME = os.environ.get("DEMO_NAME", "bandeja_demo")
DB_NAME = DEMO_NAME
VHOST = DEMO_NAME.replace("_", "-")
CLIENT_ID, CLIENT_SECRET = "bandeja-demo", "demo-secret-0c5e"  # the emulator's demo app
ADMIN_TOKEN = "demo-admin-token-not-a-secret-0123456789"  # noqa: S105 - a throwaway demo token, printed on purpose
MAILBOX = "facturas@contoso.example"
# Where `demo send` finds the running demo's mailbox server (a local, throwaway login).
STATE = Path(__file__).resolve().parent.parent / "var" / f"{DEMO_NAME}.json"


def one_shot() -> bool:
    """Run the walkthrough and stop: in CI (CI=true, as CI services set it) or on request."""
    return os.environ.get("DEMO_ONESHOT") == "1" or os.environ.get("CI", "").lower() in {
        "1",
        "true",
        "yes",
    }


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_database() -> str:
    with psycopg.connect(DB_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"


def fresh_vhost() -> str:
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", VHOST], capture_output=True, check=False)
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", VHOST], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    # The alternate exchange for bandeja.events, by policy (docs/runbooks.md).
    subprocess.run(
        ["rabbitmqctl", "-q", *policy_arguments(VHOST)], check=True, capture_output=True
    )
    return f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"


def start(command: str, env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    log = (logs / f"{command}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "services", command],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        # Its own session: Ctrl-C reaches the demo only, which then stops each process
        # with one SIGTERM (a second signal while one drains would cut it short).
        start_new_session=True,
    )


def wait_ready(url: str, name: str) -> None:
    for _ in range(150):
        try:
            if requests.get(url, timeout=2).status_code == 200:
                print(f"   {name} ready ({url})")
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{name} did not become ready; see its log")


def erp_queue(amqp_url: str) -> pika.adapters.blocking_connection.BlockingChannel:
    channel = pika.BlockingConnection(pika.URLParameters(amqp_url)).channel()
    # As the README documents it; the demo's consumer comes before the relay.
    channel.exchange_declare("bandeja.events", exchange_type="topic", durable=True)
    channel.queue_declare("erp.demo", durable=True)
    channel.queue_bind("erp.demo", "bandeja.events", routing_key="bandeja.#")
    return channel


def connect_mailbox(auth_url: str, standin: StandIn) -> None:
    browser = requests.Session()
    browser.trust_env = False
    start_at = browser.get(
        f"{auth_url}/connect", params={"login_hint": MAILBOX}, allow_redirects=False, timeout=15
    )
    print(f"   GET /connect → 302 {start_at.headers['location'][:90]}…")
    callback = sign_in(standin.identity.session(), start_at.headers["location"], MAILBOX)
    print("   the person accepts on the sign-in page → back to /oauth/callback")
    page = browser.get(callback, timeout=30)
    outcome = "Buzón conectado" if "Buzón conectado" in page.text else "failed"
    print(f"   callback page: {page.status_code} {outcome}")


def collect_events(
    channel: pika.adapters.blocking_connection.BlockingChannel, want: int, timeout: float
) -> list[dict]:
    received: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, _, body = channel.basic_get("erp.demo", auto_ack=True)
        if method is None:
            if sum(e["type"] == "bandeja.document.processed" for e in received) >= want:
                return received
            time.sleep(0.2)
            continue
        received.append(json.loads(body))
    return received


def print_event(event: dict) -> None:
    data = event["data"]
    about = data.get("subject") or data.get("mailbox")
    print(f"   {event['type']:<30} id={event['id']}  {about}", flush=True)


def where_to_look(auth_url: str, metrics: dict[str, str], dsn: str, logs: Path) -> None:
    say("Bandeja is running. Where to look:")
    rows = [
        ("connect a mailbox", f"{auth_url}/connect?login_hint={MAILBOX}"),
        ("", "(the stand-in's sign-in page uses its own CA: accept the browser's warning)"),
        ("status page", f"{auth_url}/status   admin token: {ADMIN_TOKEN}"),
        ("admin API", f"curl -H 'Authorization: Bearer {ADMIN_TOKEN}' {auth_url}/api/mailboxes"),
        *((f"metrics ({name})", url) for name, url in metrics.items()),
        ("send a mail", f"{sys.executable} -m scripts.demo send [FILE.eml]"),
        ("", f"(a sample invoice without FILE, into {MAILBOX}; the event shows below)"),
        ("CRM documents", f"psql {dsn} -c 'SELECT id, state, subject FROM documents'"),
        ("logs", f"{logs}/*.log"),
    ]
    for label, value in rows:
        print(f"   {label:<20} {value}")
    print("\n   New events on bandeja.events appear below. Ctrl-C stops everything.", flush=True)


def watch_events(channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
    """Print each event as it arrives until SIGINT or SIGTERM."""
    # A plain flag, not a threading.Event: the handler runs in this thread, between any two
    # bytecodes, and Event.set() takes the lock that Event.wait() may be holding right then,
    # which hung the demo after Ctrl-C (services never told to stop).
    signalled: list[int] = []
    previous = {
        s: signal.signal(s, lambda number, _: signalled.append(number))
        for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        while not signalled:
            method, _, body = channel.basic_get("erp.demo", auto_ack=True)
            if method is None:
                time.sleep(0.5)
            else:
                print_event(json.loads(body))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("Ctrl-C: stopping")


def send(path: str | None) -> int:
    """`demo send [FILE]`: APPEND a mail to the running demo's mailbox."""
    if not STATE.exists():
        print(f"no running demo ({STATE} is missing): start `make demo` first")
        return 1
    state = json.loads(STATE.read_text())
    if path:
        raw = Path(path).read_bytes()
    else:
        raw, _ = invoice_mail(int(time.time()) % 100_000, to=MAILBOX, pdf_size=20_000)
    with IMAPClient("127.0.0.1", port=state["imap_port"], ssl=False, timeout=10) as client:
        client.login(f"{MAILBOX}{MASTER_SEPARATOR}standin", state["master_password"])
        client.append("INBOX", raw)
    print(f"delivered {len(raw)} bytes to {MAILBOX}; the fetcher reads it within"
          f" {state['poll_interval']} s, and the demo prints the events")
    return 0


def print_documents(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        docs = conn.execute(
            "SELECT d.id, d.state, d.subject, d.invoices,"
            " (SELECT json_agg(json_build_object('file', f.filename, 'bytes', f.size,"
            "   'sha256', left(f.sha256, 12))) FROM document_files f WHERE f.document_id = d.id)"
            " FROM documents d ORDER BY d.created_at"
        ).fetchall()
    for doc_id, state, subject, invoices, files in docs:
        print(f"   {doc_id}  [{state}]  {subject}")
        for f in files or []:
            print(f"      {f['file']:<24} {f['bytes']:>7} bytes  sha256 {f['sha256']}…")
        for inv in invoices:
            fields = inv["fields"]
            print(
                f"      invoice {inv['format']}: folio {fields.get('number')},"
                f" emisor {fields.get('issuer_tax_id')}, total {fields.get('total')}"
            )


def main() -> int:  # noqa: PLR0915 - a linear script reads best top to bottom
    exchange = os.environ.get("DEMO_EXCHANGE") == "1"
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bandeja-demo-")))
        work.chmod(0o755)
        say("starting the Microsoft 365 stand-in (identity emulator over HTTPS + Dovecot)")
        standin = stack.enter_context(StandIn(work / "standin"))
        http_port = free_port()
        auth_url = f"http://127.0.0.1:{http_port}"
        control = standin.identity.control
        control.register_client(
            CLIENT_ID,
            CLIENT_SECRET,
            [f"{auth_url}/oauth/callback", f"{auth_url}/admin-consent/callback"],
        )
        tenant = control.create_tenant("contoso.example")
        control.create_user(MAILBOX, tenant=tenant["id"], name="Facturas Contoso")
        print(f"   authority {standin.identity.base_url}, tenant {tenant['id']}")
        imap_port = standin.dovecot.imaps_port
        proxy = None
        if exchange:
            from standin.exchange.server import ExchangeProxy

            proxy = stack.enter_context(ExchangeProxy.for_standin(standin, tls=True))
            imap_port = proxy.port
            print(f"   Exchange Online personality proxy on 127.0.0.1:{proxy.port}")

        say("fresh database and RabbitMQ vhost; bandeja migrate")
        dsn, amqp = fresh_database(), fresh_vhost()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BANDEJA_")}
        env.update(
            {
                "BANDEJA_DATABASE_URL": dsn,
                "BANDEJA_BROKER_URL": amqp,
                "BANDEJA_CLIENT_ID": CLIENT_ID,
                "BANDEJA_CLIENT_SECRET": CLIENT_SECRET,
                "BANDEJA_AUTHORITY_HOST": standin.identity.base_url,
                "BANDEJA_IMAP_HOST": "127.0.0.1",
                "BANDEJA_IMAP_PORT": str(imap_port),
                "BANDEJA_CA_BUNDLE": standin.identity.ca_path,
                "BANDEJA_PUBLIC_URL": auth_url,
                "BANDEJA_HTTP_PORT": str(http_port),
                "BANDEJA_HTTP_HOST": "127.0.0.1",
                "BANDEJA_TOKEN_KEYS": Fernet.generate_key().decode(),
                "BANDEJA_ADMIN_TOKEN": ADMIN_TOKEN,
                "BANDEJA_POLL_INTERVAL": "5",
                "BANDEJA_LOG_FORMAT": "json",
            }
        )
        subprocess.run(
            [sys.executable, "-m", "services", "migrate"], env=env, check=True, capture_output=True
        )
        channel = erp_queue(amqp)

        say("starting bandeja auth, fetcher, processor and relay as separate processes")
        processes = {}
        metrics = {}

        def stop_all() -> None:
            for proc in processes.values():
                proc.send_signal(signal.SIGTERM)
            for proc in processes.values():
                proc.wait(30)

        stack.callback(stop_all)
        for command in ("auth", "fetcher", "processor", "relay"):
            port = http_port if command == "auth" else free_port()
            processes[command] = start(command, {**env, "BANDEJA_METRICS_PORT": str(port)}, work)
            metrics[command] = f"http://127.0.0.1:{port}/metrics"
            wait_ready(f"http://127.0.0.1:{port}/readyz", command)

        say(f"connecting {MAILBOX} through the real sign-in flow")
        connect_mailbox(auth_url, standin)
        if proxy is not None:
            proxy.faults.throttle("contoso.example", backoff_ms=2000, count=1)
            print("   the proxy will throttle the tenant once (Suggested Backoff Time: 2000 ms)")

        say("delivering 3 invoices (PDF + DTE XML) to the mailbox")
        for n in range(3):
            raw, _ = invoice_mail(n, to=MAILBOX, pdf_size=40_000)
            standin.dovecot.append(MAILBOX, raw)
        events = collect_events(channel, 3, timeout=60)

        say("CRM documents")
        print_documents(dsn)
        say("events received by a plain consumer on bandeja.events")
        for event in events:
            print_event(event)
        unread = standin.dovecot.unseen_uids(MAILBOX)
        print(f"\n   unread mail left in the mailbox: {len(unread)}")
        if proxy is not None:
            print(
                f"   proxy: throttled replies sent, gaps before the next command (ms):"
                f" {[round(g or 0) for g in proxy.stats.backoff_gaps_ms(MAILBOX)]}"
            )
        processed = sum(e["type"] == "bandeja.document.processed" for e in events)
        if not one_shot():
            STATE.parent.mkdir(exist_ok=True)
            STATE.touch(mode=0o600)
            STATE.write_text(json.dumps({
                "imap_port": standin.dovecot.imap_port,
                "master_password": standin.dovecot.master_password,
                "poll_interval": env["BANDEJA_POLL_INTERVAL"],
            }))
            stack.callback(STATE.unlink, missing_ok=True)
            where_to_look(auth_url, metrics, dsn, work)
            watch_events(channel)
        say(f"stopping everything (logs were in {work})")
    with psycopg.connect(DB_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", VHOST], capture_output=True, check=False)
    print("   done" if processed == 3 else f"   only {processed} of 3 documents arrived")
    return 0 if processed == 3 else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["send"]:
        sys.exit(send(sys.argv[2] if len(sys.argv) > 2 else None))
    sys.exit(main())
