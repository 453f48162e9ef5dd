"""`python -m standin.exchange` as a process, switched through its JSON control endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import Exo
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from standin.exchange.server import standin_cert

_REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def cli_proxy(exo: Exo, tmp_path: Path) -> Iterator[tuple[int, int]]:
    identity = exo.standin.identity
    pair = standin_cert(identity.state_dir, tmp_path)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "standin.exchange",
            "--listen-port",
            "0",
            "--upstream-host",
            "127.0.0.1",
            "--upstream-port",
            str(exo.standin.dovecot.imap_port),
            "--tls",
            "--cert",
            str(pair.cert),
            "--key",
            str(pair.key),
            "--introspection-url",
            identity.introspection_url,
            "--ca",
            identity.ca_path,
            "--control-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=_REPO,
        env={**os.environ, "PYTHONPATH": str(_REPO)},
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().split()
        assert ready[0] == "READY", ready
        fields = dict(item.split("=") for item in ready[1:])
        yield int(fields["port"]), int(fields["control"])
    finally:
        process.terminate()
        process.wait(10)


def test_cli_proxy_serves_tls_and_obeys_its_control_endpoint(
    exo: Exo, cli_proxy: tuple[int, int]
) -> None:
    """READY line, Exchange greeting over TLS, a throttle set over HTTP, counters read back."""
    port, control_port = cli_proxy
    http = requests.Session()
    http.trust_env = False
    base = f"http://127.0.0.1:{control_port}"
    address = exo.new_user()
    http.post(
        f"{base}/faults/throttle", json={"match": address, "backoff_ms": 20}, timeout=5
    ).raise_for_status()
    client = IMAPClient("127.0.0.1", port=port, ssl=True, ssl_context=exo.ssl_context(), timeout=10)
    try:
        assert b"Microsoft Exchange" in client.welcome
        client.oauth2_login(address, exo.app_token())
        with pytest.raises(IMAPClientError, match="Suggested Backoff Time: 20 milliseconds"):
            client.select_folder("INBOX")
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()
    stats = http.get(f"{base}/stats", timeout=5).json()
    assert stats["logins"] == {address: 1}
    assert stats["commands"]["SELECT"] == 2
    assert http.post(f"{base}/faults/nope", json={}, timeout=5).status_code == 404
