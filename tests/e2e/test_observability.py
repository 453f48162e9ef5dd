"""Metrics named by alerts and dashboards are really exported, and a real Prometheus
server with the project's rules sees the re-authorization alert (issue 6)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests
import yaml

from standin.testing import StandIn
from tests.conftest import new_address
from tests.deploy.test_prometheus import RULES, _alerts, dashboard_exprs, metric_names
from tests.support.events import EventConsumer
from tests.support.flows import connect_mailbox
from tests.support.mail import invoice_mail
from tests.support.services import ServiceProcess, Services, free_port
from tests.support.waiting import wait_until

HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


def _exported(services: Services) -> set[str]:
    urls = [f"{services.auth_url}/metrics"] + [
        f"{p.ops_url}/metrics" for name, p in services.running.items() if name != "auth"
    ]
    names: set[str] = set()
    for url in urls:
        for line in requests.get(url, timeout=10).text.splitlines():
            if line and not line.startswith("#"):
                names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def _start_observed(
    standin: StandIn, tenant: dict, start_services: Callable[..., Services], name: str
) -> tuple[Services, str]:
    services = start_services(
        client_secret_expires_at="2027-06-30T00:00:00Z", queue_metrics_interval="1"
    )
    address = new_address(tenant, name)
    standin.identity.control.create_user(address, tenant=tenant["id"])
    assert connect_mailbox(services.auth_url, standin, address).status_code == 200
    return services, address


def test_every_metric_in_alerts_and_dashboards_is_exported(
    standin: StandIn,
    tenant: dict,
    start_services: Callable[..., Services],
    erp_consumer: EventConsumer,
) -> None:
    """Scrape the four running processes: no alert rule or dashboard panel names a metric
    that nothing exports (no dangling names)."""
    services, address = _start_observed(standin, tenant, start_services, "metrics")
    standin.dovecot.append(address, invoice_mail(1, to=address)[0])
    erp_consumer.wait_for("bandeja.document.processed", 1, timeout=40)
    time.sleep(2)
    exported = _exported(services)
    wanted = set()
    for alert in _alerts():
        wanted |= metric_names(alert["expr"])
    for expr in dashboard_exprs():
        wanted |= metric_names(expr)
    missing = {
        name
        for name in wanted
        if name not in exported
        and not any(name + s in exported for s in HISTOGRAM_SERIES)
        and not any(name.endswith(s) and name in exported for s in HISTOGRAM_SERIES)
    }
    assert missing == set()
    listed = set((RULES.parent / "exported_metrics.txt").read_text().split())
    not_exported = {
        n
        for n in listed
        if n not in exported and not any(n + s in exported for s in HISTOGRAM_SERIES)
    }
    assert not_exported == set()


def test_prometheus_sees_the_reauth_alert_go_pending(
    standin: StandIn,
    tenant: dict,
    start_services: Callable[..., Services],
    tmp_path: Path,
) -> None:
    """A real Prometheus scraping the services with deploy/prometheus/rules.yml loaded:
    revoking a grant in the emulator makes BandejaMailboxesNeedReauth pending."""
    binary = shutil.which("prometheus")
    assert binary, "install Debian's prometheus package (make setup does)"
    services, address = _start_observed(standin, tenant, start_services, "alerted")
    targets = [services.auth_url.removeprefix("http://")] + [
        f"127.0.0.1:{p.metrics_port}" for name, p in services.running.items() if name != "auth"
    ]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES.resolve())],
                "scrape_configs": [
                    {"job_name": "bandeja", "static_configs": [{"targets": targets}]}
                ],
            }
        )
    )
    port = free_port()
    prometheus = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    api = f"http://127.0.0.1:{port}/api/v1"

    def alert_states() -> dict[str, str]:
        try:
            alerts = requests.get(f"{api}/alerts", timeout=5).json()["data"]["alerts"]
        except requests.RequestException:
            return {}
        return {a["labels"]["alertname"]: a["state"] for a in alerts}

    def scraped() -> bool:
        try:
            result = requests.get(f"{api}/query", params={"query": "up"}, timeout=5).json()
        except requests.RequestException:
            return False
        ups = [r["value"][1] for r in result["data"]["result"]]
        return len(ups) == len(targets) and all(v == "1" for v in ups)

    try:
        wait_until(scraped, 60, what="Prometheus scraping every service")
        time.sleep(3)
        assert "BandejaMailboxesNeedReauth" not in alert_states()
        standin.identity.control.revoke_user(address)
        standin.identity.control.expire_access_tokens(address)
        wait_until(
            lambda: alert_states().get("BandejaMailboxesNeedReauth") == "pending",
            60,
            what="the re-authorization alert to go pending",
        )
    finally:
        prometheus.terminate()
        prometheus.wait(10)


def test_a_worker_whose_metrics_port_is_taken_exits_saying_so(
    services_env: dict[str, str], tmp_path: Path
) -> None:
    """A worker that cannot serve its probes and metrics must not work unseen: it exits
    at start, non-zero, naming the port, before it takes any message."""
    for command in ("fetcher", "processor", "relay"):
        with socket.socket() as holder:
            holder.bind(("0.0.0.0", 0))  # where the ops server binds
            holder.listen()
            port = holder.getsockname()[1]
            worker = ServiceProcess(command, services_env, tmp_path, port)
            try:
                returncode = worker.process.wait(60)
            finally:
                worker.stop()
        assert returncode != 0, command
        assert f"ops server cannot listen on port {port}" in worker.logs(), worker.logs()[-2000:]
