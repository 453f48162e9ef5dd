"""A private PostgreSQL cluster and a private RabbitMQ node, for this run alone.

The chaos suite restarts both servers, so it must never touch the machine's shared ones
(127.0.0.1:5432 and :5672, used by other test runs at the same time). Each server here
lives in a temp directory, listens on a free port and is torn down at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pika
import psycopg

from tests.support.services import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def _as_postgres(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    # initdb and the postmaster refuse to run as root.
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class PrivatePostgres:
    """`initdb` + `pg_ctl` on a free port, trust auth, data directory owned by postgres."""

    def __init__(self, root: Path) -> None:
        self.root = root / "pg"
        self.data = self.root / "data"
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/bandeja"

    def start(self) -> PrivatePostgres:
        self.root.mkdir(parents=True)
        shutil.chown(self.root, "postgres", "postgres")
        _as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = 300\n"
                "shared_buffers = 64MB\n"
            )
        self._pg_ctl_start()
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bandeja")
        return self

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl_start(self) -> None:
        _as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def restart(self, mode: str = "immediate") -> float:
        """Stop (`immediate` is crash-like: no checkpoint, recovery at start) and start."""
        started = time.monotonic()
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self._pg_ctl_start()
        return time.monotonic() - started

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                _as_postgres(
                    str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
                )


class PrivateRabbit:
    """`rabbitmq-server` as its own Erlang node: own name, ports, mnesia, logs, config.

    Runs as root with HOME in the temp dir (its own Erlang cookie), no plugins, and an
    empty env file so /etc/rabbitmq/rabbitmq-env.conf (the shared node's) is not read.
    """

    def __init__(self, root: Path) -> None:
        self.root = root / "rabbit"
        self.node = f"chaos-{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: object = None

    def _env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RABBITMQ_", "ERL_", "BANDEJA_"))
        }
        env.update(
            HOME=str(self.root),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.root / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.root / "log"),
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=str(self.root / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            RABBITMQ_ENABLED_PLUGINS="",
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def start(self) -> PrivateRabbit:
        if not self.root.exists():
            self.root.mkdir(parents=True)
            (self.root / "log").mkdir()
            cookie = self.root / ".erlang.cookie"
            cookie.write_text(secrets.token_hex(16))
            cookie.chmod(0o400)
            (self.root / "rabbitmq-env.conf").write_text("")
            (self.root / "enabled_plugins").write_text("[].\n")
            (self.root / "rabbitmq.conf").write_text(
                f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
                "loopback_users = none\n"
                "vm_memory_high_watermark.relative = 0.6\n"
                "disk_free_limit.absolute = 50MB\n"
            )
        self._spawn()
        return self

    def _spawn(self) -> None:
        log = (self.root / "log" / "stdout.log").open("ab")
        self._process = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"rabbitmq-server exited {self._process.returncode}: {self.log_tail()}"
                )
            try:
                pika.BlockingConnection(
                    pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2")
                ).close()
                return
            except pika.exceptions.AMQPError:
                time.sleep(0.3)
            except (TimeoutError, OSError):
                time.sleep(0.3)
        raise RuntimeError(f"rabbitmq not ready in {timeout}s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.root / "log" / "stdout.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self._env(),
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def restart(self) -> float:
        started = time.monotonic()
        self._stop_node()
        self._spawn()
        return time.monotonic() - started

    def _stop_node(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(subprocess.SubprocessError):
            self.ctl("stop")
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(5)

    def stop(self) -> None:
        process = self._process
        self._stop_node()
        if process is not None:
            # The script's erl children share its session; make sure none is left.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, 9)
