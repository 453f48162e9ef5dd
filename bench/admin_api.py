"""The admin API and status page at 10,000 mailboxes (issue 19):
``python -m bench.admin_api [--mailboxes N] [--requests N]``, or ``bench.run --only admin-api``.

A scratch database gets N mailboxes (five states, two tenants, three domains, written by
COPY: no sign-ins, no tokens), one auth process serves it, and each request below is asked
``--requests`` times, one at a time: the first page, a state filter, a tenant and state
filter, an address search, a page deep in the cursor chain, and the status page the same
ways. Reported per request: wall-clock p50/p95/max (noisy on a shared host) and the auth
process's CPU time per request (psutil; steadier). The target is "well under a second".
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from bench.report import Report
from bench.stack import Harness
from tests.support.infra import TestDatabase, TestVhost
from tests.support.mailboxes import TENANTS, seed_mailboxes
from tests.support.services import ADMIN_TOKEN, Services, new_token_keys, service_env

TARGET_SECONDS = 1.0
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _cursor(address: str) -> str:
    return base64.urlsafe_b64encode(address.encode()).decode().rstrip("=")


def cases(addresses: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """name → (path, query): what an operator or the ERP asks for."""
    deep = sorted(addresses)[-150]  # the last pages of the chain
    return {
        "api_first_page": ("/api/mailboxes", {}),
        "api_first_page_1000": ("/api/mailboxes", {"limit": 1000}),
        "api_state_error": ("/api/mailboxes", {"state": "error"}),
        "api_tenant_paused": ("/api/mailboxes", {"tenant_id": TENANTS[1], "state": "paused"}),
        "api_search_address": ("/api/mailboxes", {"q": "buzon0999"}),
        "api_search_no_match": ("/api/mailboxes", {"q": "nadie@"}),
        "api_deep_cursor": ("/api/mailboxes", {"cursor": _cursor(deep)}),
        "status_first_page": ("/status", {}),
        "status_needs_reauth": ("/status", {"state": "needs_reauth"}),
        "status_search": ("/status", {"q": "buzon0999"}),
        "status_deep_cursor": ("/status", {"cursor": _cursor(deep)}),
    }


def _time_case(
    url: str, params: dict[str, Any], repeats: int, server: psutil.Process
) -> dict[str, Any]:
    session = requests.Session()
    session.get(url, params=params, headers=ADMIN, timeout=30)  # warm: plans, pool, jinja
    walls: list[float] = []
    cpu_before = sum(server.cpu_times()[:2])
    rows = 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = session.get(url, params=params, headers=ADMIN, timeout=30)
        walls.append(time.perf_counter() - started)
        response.raise_for_status()
        rows = (
            len(response.json())
            if url.endswith("/api/mailboxes")
            else response.text.count("<tr data-address=")
        )
    cpu = (sum(server.cpu_times()[:2]) - cpu_before) / repeats
    walls.sort()
    p95 = walls[min(len(walls) - 1, round(0.95 * (len(walls) - 1)))]
    return {
        "rows": rows,
        "p50_ms": round(statistics.median(walls) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
        "max_ms": round(walls[-1] * 1000, 1),
        "auth_cpu_ms_per_request": round(cpu * 1000, 2),
        "target_p95_<1s": "PASS" if p95 < TARGET_SECONDS else "FAIL",
    }


def run(h: Harness, mailboxes: int = 10_000, repeats: int = 40) -> dict[str, Any]:
    database, vhost = TestDatabase().create(), TestVhost().create()
    running: Services | None = None
    try:
        seeded = seed_mailboxes(database.dsn, mailboxes)
        env = service_env(
            database_url=database.dsn,
            broker_url=vhost.url,
            standin=h.standin,
            http_port=h.auth_port,
            token_keys=new_token_keys(),
        )
        running = Services(env, Path(h.directory)).start("auth")
        server = psutil.Process(running.running["auth"].process.pid)
        result: dict[str, Any] = {"mailboxes": mailboxes, "requests_per_case": repeats}
        for name, (path, params) in cases([s.address for s in seeded]).items():
            result[name] = _time_case(f"{running.auth_url}{path}", params, repeats, server)
            print(f"{name:<24} {result[name]}", flush=True)
        return result
    finally:
        if running is not None:
            running.stop()
        vhost.drop()
        database.drop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.admin_api", description=__doc__)
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=40, help="timed requests per case")
    args = parser.parse_args(argv)
    report, harness = Report(), Harness().start()
    try:
        report.add("admin_api", "result", run(harness, args.mailboxes, args.requests))
    finally:
        harness.stop()
        print(f"results: {report.save(sys.argv)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
