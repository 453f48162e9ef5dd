"""Run Bandeja's processes as real OS processes, the way an operator would."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from standin.dovecot import die_with_parent
from standin.testing import StandIn

CLIENT_ID = "bandeja-test-client"
CLIENT_SECRET = "test-client-secret-9f2c7e"
ADMIN_TOKEN = "test-admin-token-4b1d0a7e93c2f5a8d6b1"


def free_port() -> int:
    """A port nothing listens on now, never handed out before by this test process, from
    this process's own slice of the range below the kernel's ephemeral ports.

    Below the ephemeral range, no outgoing connection (to PostgreSQL, RabbitMQ…) can take
    the port as its source port between the choice and the service's bind. Each pytest-xdist
    worker has its own slice, so two workers never hand out the same port; within a worker a
    port is given once, so a service not yet listening cannot be given its port twice. (A
    service whose port is taken anyway exits at start: `OpsServer` binds before it works.)
    """
    for port in _own_ports():
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("every port of this test process's slice has been handed out")


@functools.cache
def _own_ports() -> Iterator[int]:
    """This process's slice, walked once: a port comes out of it at most one time."""
    return iter(_own_slice())


def _own_slice() -> range:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    first = max(low - 16000, 10000)
    # Lanes keep test runs of several checkouts on one machine apart (BANDEJA_TEST_LANE of
    # BANDEJA_TEST_LANES); within a lane each pytest-xdist worker has its own slice.
    lanes = max(int(os.environ.get("BANDEJA_TEST_LANES", "1")), 1)
    lane = int(os.environ.get("BANDEJA_TEST_LANE", "0")) % lanes
    workers = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), 1)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    size = (low - first) // (lanes * workers)
    start = first + (lane * workers + worker) * size
    return range(start, start + size)


def service_env(
    *,
    database_url: str,
    broker_url: str,
    standin: StandIn,
    http_port: int,
    token_keys: str,
    poll_interval: float = 2.0,
) -> dict[str, str]:
    """Everything a Bandeja process needs, only through BANDEJA_* variables
    (docs/architecture.md#contracts-settings)."""
    return {
        "BANDEJA_DATABASE_URL": database_url,
        "BANDEJA_BROKER_URL": broker_url,
        "BANDEJA_CLIENT_ID": CLIENT_ID,
        "BANDEJA_CLIENT_SECRET": CLIENT_SECRET,
        "BANDEJA_AUTHORITY_HOST": standin.identity.base_url,
        "BANDEJA_IMAP_HOST": "127.0.0.1",
        "BANDEJA_IMAP_PORT": str(standin.dovecot.imaps_port),
        "BANDEJA_IMAP_TLS": "true",
        "BANDEJA_CA_BUNDLE": standin.identity.ca_path,
        "BANDEJA_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
        "BANDEJA_HTTP_PORT": str(http_port),
        "BANDEJA_HTTP_HOST": "127.0.0.1",
        "BANDEJA_TOKEN_KEYS": token_keys,
        "BANDEJA_ADMIN_TOKEN": ADMIN_TOKEN,
        "BANDEJA_POLL_INTERVAL": str(poll_interval),
        # Auth's /metrics shows mailbox states sampled this often (15 s in production).
        "BANDEJA_TOKEN_HEALTH_INTERVAL": "1",
        # Every test browser is 127.0.0.1: the per-address limit is tested on its own.
        "BANDEJA_PUBLIC_RATE_LIMIT": "100000/minute",
    }


def new_token_keys() -> str:
    return Fernet.generate_key().decode()


# How a Bandeja process is started: (subcommand, a name unique among the running ones, its
# BANDEJA_* settings) → the command line. The settings reach it through the environment.
Launcher = Callable[[str, str, dict[str, str]], list[str]]


def python_process(command: str, name: str, env: dict[str, str]) -> list[str]:
    """The checkout's code, run by this interpreter (the default)."""
    return [sys.executable, "-m", "services", command]


class ServiceProcess:
    def __init__(
        self,
        command: str,
        env: dict[str, str],
        log_dir: Path,
        metrics_port: int,
        launcher: Launcher = python_process,
    ) -> None:
        self.command = command
        self.metrics_port = metrics_port
        self.name = f"{command}-{metrics_port}"
        self.log_path = log_dir / f"{self.name}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("BANDEJA_")}
        full_env.update(env, BANDEJA_METRICS_PORT=str(metrics_port))
        self._log = self.log_path.open("ab")
        self._signalled: set[int] = set()
        self.process = subprocess.Popen(
            launcher(command, self.name, full_env),
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # A test that fails before stopping it must not leave a service behind.
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.command} exited {self.process.returncode}:\n{self.logs()[-3000:]}"
                )
            try:
                if requests.get(f"{self.ops_url}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.command} not ready in {timeout}s:\n{self.logs()[-3000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send_once(self, sig: int = signal.SIGTERM) -> None:
        """Signal once: a second SIGTERM arriving while the interpreter finalizes would
        meet the default handler (Python restores it at shutdown) and kill the process."""
        if self.process.poll() is None and sig not in self._signalled:
            self._signalled.add(sig)
            self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.send_once(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return int(self.process.returncode)


class Services:
    """auth, fetcher, processor and relay, each its own process."""

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        launcher: Launcher = python_process,
        ready_timeout: float = 30.0,
    ) -> None:
        self.env = env
        self.log_dir = log_dir
        self.launcher = launcher
        self.ready_timeout = ready_timeout
        self.running: dict[str, ServiceProcess] = {}

    @property
    def auth_url(self) -> str:
        return self.env["BANDEJA_PUBLIC_URL"]

    def start(self, *commands: str) -> Services:
        for command in commands or ("auth", "fetcher", "processor", "relay"):
            port = int(self.env["BANDEJA_HTTP_PORT"]) if command == "auth" else free_port()
            self.running[command] = ServiceProcess(
                command, self.env, self.log_dir, port, self.launcher
            )
        return self._wait_ready()

    def add_replicas(self, command: str, count: int) -> Services:
        """``count`` more processes of a worker service, named ``command-2``, ``command-3``…
        (what a Deployment's replicas or KEDA would run)."""
        first = sum(1 for name in self.running if name.split("-")[0] == command) + 1
        for n in range(first, first + count):
            process = ServiceProcess(command, self.env, self.log_dir, free_port(), self.launcher)
            self.running[f"{command}-{n}" if n > 1 else command] = process
        return self._wait_ready()

    def _wait_ready(self) -> Services:
        try:
            for proc in self.running.values():
                proc.wait_ready(self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> dict[str, int]:
        # Signal every process first so they drain in parallel, then collect them.
        for proc in self.running.values():
            proc.send_once(signal.SIGTERM)
        return {name: proc.stop() for name, proc in self.running.items()}

    def admin_get(self, path: str) -> requests.Response:
        return requests.get(
            f"{self.auth_url}{path}", timeout=10, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
