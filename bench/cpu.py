"""Where a run's CPU went: seconds per part of the system, from psutil, over one window.

Everything shares the same two cores, so the cost of a peer is not only its own process:
Dovecot, PostgreSQL and RabbitMQ work for it too. Dovecot forks one ``imap`` process per
session and it exits at LOGOUT, so its CPU is not in any snapshot; the machine-wide busy
time minus what the long-lived processes used is reported as ``exited`` for that reason.

PostgreSQL's share is also split by whom its processes worked for: each client backend's
process title ends with its client's address and port, which names the service holding
that connection; the rest are the server's own processes (WAL writer, checkpointer).
"""

from __future__ import annotations

import os
import re

import psutil

_RABBITMQ = {"beam.smp", "erl_child_setup", "epmd", "inet_gethost"}
_DOVECOT = {"dovecot", "imap", "imap-login", "auth", "anvil", "log", "config", "stats"}
_POSTGRES_PORT = 5432
# "postgres: 15/main: user database 127.0.0.1(54321) idle": the client's port.
_BACKEND_CLIENT_PORT = re.compile(r" \S+\((\d+)\) ")


def _group(proc: psutil.Process, services: dict[int, str], bench: int) -> str:
    if proc.pid in services:
        return services[proc.pid]
    if proc.pid == bench:
        return "bench process (bare loop, fetchmail child, event consumer)"
    name = proc.name()
    if name == "postgres":
        return "postgresql"
    if name in _RABBITMQ:
        return "rabbitmq"
    if name in _DOVECOT:
        return "dovecot"
    if "standin" in " ".join(proc.cmdline()):
        return "identity emulator"
    return "other"


def _postgresql_client(proc: psutil.Process, clients: dict[int, str]) -> str:
    """Whom one PostgreSQL process worked for: a service, "other clients" or the server."""
    match = _BACKEND_CLIENT_PORT.search(" ".join(proc.cmdline()) + " ")
    if match is None:
        return "server (WAL writer, checkpointer, ...)"
    return clients.get(int(match.group(1)), "other clients")


def _database_clients(services: dict[int, str]) -> dict[int, str]:
    """Local port of each PostgreSQL connection a service holds → that service."""
    clients = {}
    for pid, name in services.items():
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for connection in connections:
            if connection.raddr and connection.raddr.port == _POSTGRES_PORT:
                clients[connection.laddr.port] = name
    return clients


class _Sample:
    """CPU seconds of every process at one moment, by group; PostgreSQL's also by client."""

    def __init__(self, services: dict[int, str]) -> None:
        bench = os.getpid()
        clients = _database_clients(services)
        self.cpu: dict[int, tuple[str, float]] = {}
        self.postgresql: dict[int, str] = {}
        for proc in psutil.process_iter():
            try:
                times = proc.cpu_times()
                cpu = times.user + times.system
                if proc.pid == bench:  # fetchmail runs as a child of the bench and has exited
                    cpu += times.children_user + times.children_system
                group = _group(proc, services, bench)
                self.cpu[proc.pid] = (group, cpu)
                if group == "postgresql":
                    self.postgresql[proc.pid] = _postgresql_client(proc, clients)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue

    def used_since(self, before: _Sample) -> dict[int, float]:
        return {
            pid: max(cpu - before.cpu.get(pid, (group, 0.0))[1], 0.0)
            for pid, (group, cpu) in self.cpu.items()
        }


def _machine_busy() -> float:
    times = psutil.cpu_times()
    busy: float = sum(times) - times.idle
    # iowait and steal exist on Linux only; they are idle time for this purpose.
    return busy - float(getattr(times, "iowait", 0.0)) - float(getattr(times, "steal", 0.0))


class CpuAccount:
    """``with CpuAccount(services) as account: ...`` then ``account.milliseconds_per(n)``."""

    def __init__(self, services: dict[str, int] | None = None) -> None:
        self._services = {pid: name for name, pid in (services or {}).items()}
        self.seconds: dict[str, float] = {}
        self.postgresql_seconds: dict[str, float] = {}

    def __enter__(self) -> CpuAccount:
        self._before = _Sample(self._services)
        self._busy_before = _machine_busy()
        return self

    def __exit__(self, *exc: object) -> None:
        after = _Sample(self._services)
        busy = _machine_busy() - self._busy_before
        groups: dict[str, float] = {}
        by_client: dict[str, float] = {}
        for pid, used in after.used_since(self._before).items():
            group = after.cpu[pid][0]
            groups[group] = groups.get(group, 0.0) + used
            # A backend that ended inside the window is in neither sample: "exited".
            if client := after.postgresql.get(pid):
                by_client[client] = by_client.get(client, 0.0) + used
        groups["exited (Dovecot imap sessions, mostly)"] = max(busy - sum(groups.values()), 0.0)
        groups["machine total"] = busy
        self.seconds = groups
        self.postgresql_seconds = by_client

    def milliseconds_per(self, mails: int) -> dict[str, float]:
        return _per(self.seconds, mails)

    def postgresql_milliseconds_per(self, mails: int) -> dict[str, float]:
        """PostgreSQL's share by the service whose connection it served."""
        return _per(self.postgresql_seconds, mails)


def _per(seconds: dict[str, float], mails: int) -> dict[str, float]:
    ordered = sorted(seconds.items(), key=lambda kv: -kv[1])
    return {name: round(1000 * sec / max(mails, 1), 2) for name, sec in ordered if sec > 0.005}
