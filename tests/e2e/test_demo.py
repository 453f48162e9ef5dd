"""`make demo` for a newcomer: it stays up, the places it prints answer, a mail sent with
`demo send` shows up as an event, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import requests

from tests.deploy.conftest import REPO
from tests.support.infra import PG_ADMIN_DSN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


class Demo:
    """`python -m scripts.demo` with its output read line by line as it comes."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scripts.demo"], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def wait_for(self, pattern: str, timeout: float) -> str:
        """The first line (from now on) matching `pattern`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.output.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r}:\n{''.join(self.output)[-4000:]}")

    def printed(self, label: str) -> str:
        """The value printed after `label` in the "where to look" list."""
        for line in self.output:
            if line.strip().startswith(label):
                return line.strip()[len(label):].strip()
        raise AssertionError(f"{label!r} not printed:\n{''.join(self.output)}")


@pytest.fixture
def demo() -> Iterator[Demo]:
    name = f"bandeja_demo_test_{os.getpid()}"
    env = {k: v for k, v in os.environ.items()
           if k not in {"CI", "DEMO_ONESHOT", "DEMO_EXCHANGE"} and not k.startswith("BANDEJA_")}
    running = Demo({**env, "DEMO_NAME": name})
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait(10)
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_demo_stays_up_shows_where_to_look_and_stops_on_ctrl_c(demo: Demo) -> None:
    """After the walkthrough the demo keeps running: the status page (with the printed
    admin token), the connect page and each process's /metrics answer; `demo send` delivers
    a mail whose document.processed event the demo prints; SIGINT stops every process and
    the demo exits 0."""
    demo.wait_for(r"Ctrl-C stops everything", timeout=150)
    status_url, _, token = demo.printed("status page").partition("admin token:")
    status = requests.get(status_url.strip(), timeout=10,
                          headers={"Authorization": f"Bearer {token.strip()}"})
    assert status.status_code == 200
    assert "facturas@contoso.example" in status.text
    connect = requests.get(demo.printed("connect a mailbox"), allow_redirects=False, timeout=10)
    assert connect.status_code == 302
    metrics_urls = [demo.printed(f"metrics ({name})")
                    for name in ("auth", "fetcher", "processor", "relay")]
    for url in metrics_urls:
        page = requests.get(url, timeout=10)
        assert page.status_code == 200, url
        assert "bandeja_" in page.text, url

    send = subprocess.run(
        [sys.executable, "-m", "scripts.demo", "send"], cwd=REPO, env=demo.env,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert send.returncode == 0, send.stdout + send.stderr
    demo.wait_for(r"bandeja\.document\.processed .*Factura", timeout=60)

    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(90) == 0, "".join(demo.output)
    demo.wait_for(r"^\s+done$", timeout=5)
    for url in metrics_urls:
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)
