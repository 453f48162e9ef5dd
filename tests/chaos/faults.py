"""The faults, each a small function, and the schedule that picks them at random."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from standin.testing import StandIn
from tests.chaos.infra import PrivatePostgres, PrivateRabbit
from tests.chaos.supervisor import SERVICES, Supervisor

KINDS = (
    *(f"kill_{name}" for name in SERVICES),
    "restart_rabbitmq",
    "restart_postgres",
    "drop_imap",
    "token_429",
    "token_503",
    "expire_tokens",
)


@dataclass
class Injected:
    kind: str
    at: float
    seconds: float
    detail: str


@dataclass
class Targets:
    supervisor: Supervisor
    rabbit: PrivateRabbit
    postgres: PrivatePostgres
    standin: StandIn
    addresses: list[str]
    rng: random.Random


def bandeja_imap_processes(standin: StandIn) -> list[psutil.Process]:
    """Dovecot `imap` children serving TLS clients (Bandeja), not our plain-port sessions.

    A TLS session's `imap` process talks to its `imap-login` proxy over a UNIX socket; a
    plain session's `imap` process holds the client's TCP socket on the plain port.
    """
    dovecot = standin.dovecot._process  # the runner exposes no pid
    if dovecot is None:
        return []
    master = psutil.Process(dovecot.pid)
    found = []
    for child in master.children(recursive=True):
        try:
            if child.name() != "imap":
                continue
            ports = {c.laddr.port for c in child.net_connections(kind="tcp") if c.laddr}
        except psutil.Error:
            continue
        if standin.dovecot.imap_port not in ports:
            found.append(child)
    return found


def drop_imap(t: Targets) -> str:
    """SIGKILL Bandeja's IMAP server processes, waiting (≤15 s) for a session to exist."""
    deadline = time.monotonic() + 15
    victims: list[psutil.Process] = []
    while time.monotonic() < deadline and not victims:
        victims = bandeja_imap_processes(t.standin)
        if not victims:
            time.sleep(0.05)
    for proc in victims:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            continue
    if not victims:
        raise RuntimeError("no Bandeja IMAP session within 15 s")
    return f"killed {len(victims)} imap processes"


def _token_failure(t: Targets, status: int) -> str:
    count = t.rng.randint(3, 8)
    t.standin.identity.control.inject_failure(status, count=count, retry_after=1)
    # Refreshes must happen while the endpoint fails: invalidate a few users' tokens so
    # IMAP rejects them and the fetcher asks auth for a forced refresh.
    victims = t.rng.sample(t.addresses, k=min(3, len(t.addresses)))
    for address in victims:
        t.standin.identity.control.expire_access_tokens(address)
    return f"{count} x {status} from /token; expired tokens of {len(victims)} users"


def _expire_all(t: Targets) -> str:
    t.standin.identity.control.expire_access_tokens()
    return "every access token inactive"


def _kill(name: str) -> Callable[[Targets], str]:
    def kill(t: Targets) -> str:
        return f"pid {t.supervisor.kill(name)}"

    return kill


ACTIONS: dict[str, Callable[[Targets], str]] = {
    **{f"kill_{name}": _kill(name) for name in SERVICES},
    "restart_rabbitmq": lambda t: f"down/up {t.rabbit.restart():.1f}s",
    "restart_postgres": lambda t: f"immediate stop + start {t.postgres.restart():.1f}s",
    "drop_imap": drop_imap,
    "token_429": lambda t: _token_failure(t, 429),
    "token_503": lambda t: _token_failure(t, 503),
    "expire_tokens": _expire_all,
}


def schedule(rng: random.Random, rounds: int) -> list[str]:
    """Every kind at least once, process kills weighted up, in a random order."""
    kinds = list(KINDS)
    weighted = [*KINDS, *(f"kill_{name}" for name in SERVICES), "drop_imap"]
    kinds += [rng.choice(weighted) for _ in range(max(0, rounds - len(kinds)))]
    rng.shuffle(kinds)
    return kinds


def inject(kind: str, targets: Targets) -> Injected:
    started = time.monotonic()
    at = time.time()
    detail = ACTIONS[kind](targets)
    return Injected(kind, at, time.monotonic() - started, detail)
