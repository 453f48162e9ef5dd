"""`make chaos`: Bandeja under faults, end to end, then the invariants.

    python -m tests.chaos.run            # full: 40 mailboxes x 75 mails, 30 fault rounds
    python -m tests.chaos.run --short    # CI:   12 mailboxes x 25 mails, 12 fault rounds
    python -m tests.chaos.run --seed 7   # replay a fault schedule

Everything runs on private servers in one temp directory (PostgreSQL cluster, RabbitMQ
node, the Microsoft 365 stand-in), torn down at the end, so the machine's shared
PostgreSQL and RabbitMQ are never touched. Exit status 0 only when no mail is lost or
duplicated and every invariant holds (see invariants.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg

from services.relay.topology import policy_arguments
from standin.testing import StandIn
from tests.chaos import invariants
from tests.chaos.erp import ResilientConsumer
from tests.chaos.faults import KINDS, Injected, Targets, inject, schedule
from tests.chaos.infra import PrivatePostgres, PrivateRabbit
from tests.chaos.observer import SeenObserver
from tests.chaos.seed import Seeder
from tests.chaos.supervisor import Supervisor
from tests.support.flows import connect_mailbox
from tests.support.services import (
    CLIENT_ID,
    CLIENT_SECRET,
    free_port,
    new_token_keys,
    service_env,
)


@dataclass(frozen=True)
class Mode:
    name: str
    mailboxes: int
    per_mailbox: int
    rounds: int
    gap: tuple[float, float]  # seconds between fault rounds
    quiet_timeout: float


SHORT = Mode("short", 12, 25, 12, (1.5, 4.0), 150)
FULL = Mode("full", 40, 75, 30, (2.0, 6.0), 420)


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Run:
    mode: Mode
    seed: int
    root: Path
    stack: contextlib.ExitStack

    def start_servers(self) -> None:
        self.postgres = PrivatePostgres(self.root).start()
        self.stack.callback(self.postgres.stop)
        self.rabbit = PrivateRabbit(self.root).start()
        self.stack.callback(self.rabbit.stop)
        self.rabbit.ctl(*policy_arguments("/"))  # the alternate exchange, as operators apply it
        log(
            f"private PostgreSQL on :{self.postgres.port}, RabbitMQ {self.rabbit.node} "
            f"on :{self.rabbit.port}"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("BANDEJA_")}
        subprocess.run(
            [sys.executable, "-m", "services", "migrate"],
            check=True,
            capture_output=True,
            timeout=120,
            env={**env, "BANDEJA_DATABASE_URL": self.postgres.dsn},
        )
        (self.root / "standin").mkdir()
        self.standin = self.stack.enter_context(StandIn(self.root / "standin"))
        self.auth_port = free_port()
        base = f"http://127.0.0.1:{self.auth_port}"
        self.standin.identity.control.register_client(
            CLIENT_ID, CLIENT_SECRET, [f"{base}/oauth/callback", f"{base}/admin-consent/callback"]
        )

    def create_mailboxes(self) -> None:
        control = self.standin.identity.control
        tenants = [control.create_tenant(f"chaos{n}.example") for n in range(3)]
        self.addresses = []
        for n in range(self.mode.mailboxes):
            tenant = tenants[n % len(tenants)]
            address = f"facturas{n}@{tenant['domain']}"
            control.create_user(address, tenant=tenant["id"])
            self.addresses.append(address)
        self.seeder = Seeder(self.standin, f"{self.seed}-{secrets.token_hex(3)}")

    def start_system(self) -> None:
        self.env = service_env(
            database_url=self.postgres.dsn,
            broker_url=self.rabbit.url,
            standin=self.standin,
            http_port=self.auth_port,
            token_keys=new_token_keys(),
            poll_interval=2.0,
        )
        self.env["BANDEJA_LOG_FORMAT"] = "json"
        self.erp = ResilientConsumer(self.rabbit.url).start()
        self.stack.callback(self.erp.stop)
        (self.root / "logs").mkdir()
        self.supervisor = Supervisor(self.env, self.root / "logs").start()
        self.stack.callback(self.supervisor.stop)
        self.observer = SeenObserver(self.standin.dovecot.admin_session, self.addresses).start()
        self.stack.callback(self.observer.stop)

    def connect(self) -> None:
        for address in self.addresses:
            page = connect_mailbox(f"http://127.0.0.1:{self.auth_port}", self.standin, address)
            if page.status_code != 200 or "Buzón conectado" not in page.text:
                raise RuntimeError(f"connect {address}: {page.status_code} {page.text[:300]}")

    def faults(self, rng: random.Random) -> list[Injected]:
        targets = Targets(
            self.supervisor, self.rabbit, self.postgres, self.standin, self.addresses, rng
        )
        done = []
        for number, kind in enumerate(schedule(rng, self.mode.rounds), 1):
            time.sleep(rng.uniform(*self.mode.gap))
            try:
                injected = inject(kind, targets)
            except Exception as exc:
                injected = Injected(kind, time.time(), 0.0, f"NOT INJECTED: {exc!r}")
            done.append(injected)
            log(
                f"round {number:2d}: {kind:<17} {injected.detail} "
                f"(unseen {self.observer.total_unseen()})"
            )
        self.standin.identity.control.clear_failures()
        return done

    def wait_quiet(self, trickle: threading.Thread) -> bool:
        trickle.join()
        deadline = time.monotonic() + self.mode.quiet_timeout
        calm = 0
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.postgres.dsn, connect_timeout=5) as conn:
                    row = conn.execute(
                        "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL),"
                        " (SELECT count(*) FROM raw_messages r WHERE NOT EXISTS (SELECT 1"
                        "  FROM documents d WHERE d.raw_message_id = r.id))"
                    ).fetchone()
                pending, orphans = row if row else (-1, -1)
            except psycopg.Error:
                pending = orphans = -1
            unseen = self.observer.total_unseen()
            calm = calm + 1 if (unseen, pending, orphans) == (0, 0, 0) else 0
            if calm >= 3:
                return True
            time.sleep(1)
        log(
            f"not quiet after {self.mode.quiet_timeout}s: unseen={unseen} "
            f"outbox={pending} raw-without-document={orphans}"
        )
        return False

    def wait_events(self, expected: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last, stable = -1, 0
        while time.monotonic() < deadline:
            ids = {e["id"] for e in self.erp.events() if e["type"] == invariants.PROCESSED}
            stable = stable + 1 if len(ids) == last else 0
            last = len(ids)
            if len(ids) >= expected and stable >= 2:
                return
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run")
    parser.add_argument("--short", action="store_true", help="the CI size (~3 minutes)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args(argv)
    mode = SHORT if args.short else FULL
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    root = Path(tempfile.mkdtemp(prefix="bandeja-chaos-"))
    root.chmod(0o755)  # postgres, vmail and dovecot users must traverse it
    log(f"mode={mode.name} seed={seed} dir={root}")
    try:
        with contextlib.ExitStack() as stack:
            return _run(Run(mode, seed, root, stack))
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _run(run: Run) -> int:
    mode, rng = run.mode, random.Random(run.seed)
    run.start_servers()
    run.create_mailboxes()
    first = max(1, mode.per_mailbox // 3)
    for address in run.addresses:
        run.seeder.append(address, first)
    run.start_system()
    run.connect()
    log(f"{len(run.addresses)} mailboxes connected, {len(run.seeder.seeded)} mails seeded")
    rest = [(a, (mode.per_mailbox - first) // 2) for a in run.addresses]
    rest += [(a, mode.per_mailbox - first - (mode.per_mailbox - first) // 2) for a in run.addresses]
    stop = threading.Event()
    estimate = mode.rounds * sum(mode.gap) / 2
    trickle = run.seeder.trickle(rest, estimate * 0.8, stop)
    injected = run.faults(rng)
    faults_end = time.time()
    quiet = run.wait_quiet(trickle)
    ready = run.supervisor.wait_all_ready(60)
    run.wait_events(len(run.seeder.seeded))
    outcome = evaluate(run, quiet, ready, faults_end)
    report(run, injected, outcome)
    codes = run.supervisor.stop()
    log(f"SIGTERM exit codes: {codes}")
    outcome.process_problems += [
        f"{name} exited {code} on SIGTERM" for name, code in codes.items() if code != 0
    ]
    failures = outcome.failures()
    for failure in failures:
        log(f"FAIL {failure}")
    log("PASS" if not failures else f"FAILED ({len(failures)} invariants); seed={run.seed}")
    return 1 if failures else 0


def evaluate(run: Run, quiet: bool, ready: bool, faults_end: float) -> invariants.Outcome:
    out = invariants.Outcome()
    seeded, dsn = run.seeder.seeded, run.postgres.dsn
    owner = invariants.check_documents(dsn, seeded, out)
    invariants.check_events(run.erp.events(), owner, out)
    invariants.check_seen_after_stored(dsn, seeded, run.observer.first_seen, out)
    invariants.check_leftovers(dsn, seeded, run.observer.first_seen, out)
    if not quiet:
        out.process_problems.append("system never became quiet")
    status = run.supervisor.status()
    for name, state in status.items():
        if not (state["alive"] and state["readyz"] == 200):
            out.process_problems.append(f"{name} not up and ready at the end: {state}")
    for exit_ in run.supervisor.unexpected_exits():
        if exit_.at > faults_end:
            out.process_problems.append(f"{exit_.service} exited {exit_.code} after the faults")
    if not ready:
        out.process_problems.append("not every service ready within 60 s after the faults")
    if run.erp.invalid:
        out.event_problems += [f"invalid event: {i}" for i in run.erp.invalid[:5]]
    return out


def report(run: Run, injected: list[Injected], out: invariants.Outcome) -> None:
    kinds = Counter(i.kind for i in injected if not i.detail.startswith("NOT"))
    missed = [i for i in injected if i.detail.startswith("NOT")]
    status = run.supervisor.status()
    margins = sorted(out.seen_margin_ms)
    cycles = sorted(run.observer.cycles) or [0.0]
    print("\n| fault | injected |\n|---|---|")
    for kind in KINDS:
        print(f"| {kind} | {kinds.get(kind, 0)} |")
    print(f"| **total** | **{sum(kinds.values())}** |")
    for miss in missed:
        print(f"| {miss.kind} (failed to inject) | {miss.detail[:80]} |")
    print("\n| result | value |\n|---|---|")
    rows = [
        ("mode / seed", f"{run.mode.name} / {run.seed}"),
        ("mailboxes", len(run.addresses)),
        ("mails seeded", out.seeded),
        ("documents", out.documents),
        ("duplicates", sum(out.duplicates.values())),
        ("lost", len(out.lost)),
        ("unknown / bad documents", f"{len(out.unknown_documents)} / {len(out.bad_documents)}"),
        (
            "processed events received (deliveries / distinct ids)",
            f"{sum(1 for e in run.erp.events() if e['type'] == invariants.PROCESSED)} / "
            f"{len({e['id'] for e in run.erp.events() if e['type'] == invariants.PROCESSED})}",
        ),
        ("event invariant problems", len(out.event_problems)),
        ("\\Seen before stored", len(out.seen_violations)),
        (
            "\\Seen minus fetched_at, min / median (ms)",
            f"{margins[0]:.0f} / {margins[len(margins) // 2]:.0f}" if margins else "n/a",
        ),
        (
            "observer poll cycle, median / max (ms)",
            f"{cycles[len(cycles) // 2] * 1000:.0f} / {cycles[-1] * 1000:.0f}",
        ),
        ("ERP consumer reconnects", run.erp.reconnects),
        ("observer errors (reconnects)", sum(run.observer.errors.values())),
        *((f"{k}", v) for k, v in out.leftovers.items()),
        *(
            (
                f"{name}: killed+restarted / unexpected exits / ready",
                f"{s['killed_and_restarted']} / {s['unexpected_exits']} / {s['readyz']}",
            )
            for name, s in status.items()
        ),
    ]
    for key, value in rows:
        print(f"| {key} | {value} |")
    for exit_ in run.supervisor.unexpected_exits():
        tail = "\n    ".join(exit_.log_tail.strip().splitlines()[-8:])
        print(
            f"\nunexpected exit: {exit_.service} code={exit_.code} at "
            f"{time.strftime('%H:%M:%S', time.localtime(exit_.at))}\n    {tail}"
        )
    print(flush=True)


if __name__ == "__main__":
    sys.exit(main())
