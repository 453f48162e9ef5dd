"""Many mailboxes in steady state: two fetcher replicas polling every mailbox once a poll
interval, mail dropped into random mailboxes, and what that costs.

Measured: freshness (APPEND into Dovecot → ``document.processed`` event) p50/p95/max,
the age of each mailbox's last completed poll, fetcher CPU / RSS / threads per replica,
PostgreSQL connections per service, and how the fetch runs split between the replicas
(with any overlap of two runs of one mailbox found in their logs). The token-refresh load
of the fleet is computed from auth's own schedule (``services/auth/schedule.py``).
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.events import EventSink
from bench.report import percentile
from bench.seed import pdf_size_for
from bench.stack import Harness, Stack
from services.auth.schedule import next_refresh_at
from tests.support.mail import invoice_mail

_numbers = 700_000


class ProcessSampler(threading.Thread):
    """Every ``interval`` s: each fetcher's RSS and threads, PostgreSQL connections per
    application, and the age of the oldest completed poll."""

    def __init__(self, stack: Stack, pids: dict[str, int], interval: float = 5.0) -> None:
        super().__init__(name="fleet-sampler", daemon=True)
        self.stack = stack
        self.processes = {n: psutil.Process(p) for n, p in pids.items()}
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            sample: dict[str, Any] = {"t": time.monotonic()}
            for name, proc in self.processes.items():
                sample[name] = {
                    "rss_mb": proc.memory_info().rss / 1e6,
                    "threads": proc.num_threads(),
                }
            sample["pg"] = dict(
                self.stack.rows(
                    "SELECT coalesce(nullif(application_name, ''), '?'), count(*)"
                    " FROM pg_stat_activity WHERE datname = current_database() GROUP BY 1"
                )
            )
            sample["poll_age_max_s"] = float(
                self.stack.scalar(
                    "SELECT coalesce(extract(epoch FROM max(now() - last_fetch_at)), 0)"
                    " FROM mailboxes WHERE state = 'active'"
                )
            )
            self.samples.append(sample)

    def stop(self) -> list[dict[str, Any]]:
        self._halt.set()
        self.join(10)
        return self.samples


def refresh_load(
    mailboxes: int, lifetime: float = 3600.0, hours: float = 6.0, seed: int = 19
) -> dict[str, Any]:
    """Token-endpoint calls per second when auth keeps ``mailboxes`` tokens of ``lifetime``
    fresh on its schedule, all connected at once (the worst start): simulated refresh by
    refresh with :func:`next_refresh_at`, counted per minute after the first lifetime."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(hours=hours)
    per_minute: Counter[int] = Counter()
    for _ in range(mailboxes):
        issued = start
        while True:
            due = next_refresh_at(issued, issued + timedelta(seconds=lifetime), rng)
            if due >= end:
                break
            per_minute[int((due - start).total_seconds() // 60)] += 1
            issued = due
    settled = [per_minute.get(m, 0) for m in range(int(lifetime // 60), int(hours * 60))]
    mean_period = lifetime * (1 - sum((0.15, 0.30)) / 2)
    return {
        "mailboxes": mailboxes,
        "token_lifetime_s": lifetime,
        "expected_per_s": round(mailboxes / mean_period, 2),
        "simulated_mean_per_s": round(sum(settled) / len(settled) / 60, 2),
        "simulated_peak_minute_per_s": round(max(settled) / 60, 2),
        "first_hour_peak_minute_per_s": round(
            max(per_minute.get(m, 0) for m in range(int(lifetime // 60))) / 60, 2
        ),
    }


def _drop_mail(
    stack: Stack, addresses: list[str], per_minute: float, seconds: float, rng: random.Random
) -> dict[str, tuple[str, float]]:
    """APPEND a 60 KB invoice into a random mailbox about ``per_minute`` times a minute;
    subject → (mailbox, monotonic time the APPEND returned)."""
    global _numbers  # noqa: PLW0603 - a bench-wide mail counter
    dovecot = stack.harness.standin.dovecot
    dropped: dict[str, tuple[str, float]] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _numbers += 1
        address = rng.choice(addresses)
        raw, _ = invoice_mail(_numbers, to=address, pdf_size=pdf_size_for(60_000))
        dovecot.append(address, raw)
        dropped[f"Factura electrónica N° {1000 + _numbers}"] = (address, time.monotonic())
        time.sleep(rng.expovariate(per_minute / 60))
    return dropped


def _fetch_runs(log_paths: dict[str, Path]) -> dict[str, Any]:
    """Fetch runs per replica, and runs of one mailbox by two replicas that overlapped in
    time (each run's interval is its log time less its duration)."""
    runs: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    per_replica: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    for name, path in log_paths.items():
        for line in path.read_text(errors="replace").splitlines():
            if '"level": "warning"' in line or '"level": "error"' in line:
                try:
                    entry = json.loads(line)
                    problems[f"{entry['event'][:80]}:{entry.get('error_type', '')}"] += 1
                except (ValueError, KeyError):
                    problems["unparsed"] += 1
            if '"fetch_finished"' not in line:
                continue
            try:
                entry = json.loads(line)
                end = datetime.fromisoformat(entry["timestamp"]).timestamp()
            except (ValueError, KeyError):
                continue
            per_replica[name] += 1
            runs[int(entry["mailbox_id"])].append((end - float(entry["seconds"]), end, name))
    overlaps = 0
    for intervals in runs.values():
        intervals.sort()
        for (_s1, e1, n1), (s2, _e2, n2) in itertools.pairwise(intervals):
            overlaps += n1 != n2 and s2 < e1
    return {
        "ok_runs_per_replica": dict(per_replica),
        "mailboxes_fetched": len(runs),
        "overlapping_runs_across_replicas": overlaps,
        "fetcher_warnings": dict(problems),
    }


def run(
    harness: Harness,
    mailboxes: int,
    minutes: float,
    *,
    mails_per_minute: float,
    poll_interval: float = 60.0,
    connect_threads: int = 8,
    warmup_intervals: float = 1.0,
) -> dict[str, Any]:
    stack = Stack(harness, poll_interval=poll_interval).start()
    sink = EventSink(stack.vhost.url, "bandeja.document.#")
    out: dict[str, Any] = {
        "mailboxes": mailboxes,
        "minutes": minutes,
        "poll_interval_s": poll_interval,
        "mails_per_minute": mails_per_minute,
        "warmup_intervals": warmup_intervals,
        "env": dict(harness.extra_env),
    }
    rng = random.Random(19)
    try:
        addresses = harness.addresses("fleet", mailboxes)
        started = time.monotonic()
        stack.connect(addresses, threads=connect_threads)
        out["connect_s"] = round(time.monotonic() - started, 1)
        print(f"connected {mailboxes} in {out['connect_s']} s", flush=True)
        sink.start()
        stack.start_fetcher()
        stack.add_fetcher_replicas(1)
        pids = stack.pids()
        fetchers = {n: p for n, p in pids.items() if n.startswith("fetcher")}
        # Steady state from the start: each mailbox's first poll somewhere in the interval.
        stack.spread(addresses, poll_interval)
        # Warm-up: every mailbox polled (and logged in) once per interval. With parked
        # sessions a replica reuses only what it parked itself, so steady state there
        # is a few intervals in (each mailbox has been polled by every replica).
        time.sleep(poll_interval * warmup_intervals)
        print("warm-up done", flush=True)
        reuse0 = {n: _session_reuse(stack, n) for n in fetchers}
        sampler = ProcessSampler(stack, pids)
        sampler.start()
        cpu0 = {n: _cpu(p) for n, p in pids.items()}
        standin0 = {n: _tree_cpu(p) for n, p in _standin_pids(harness).items()}
        window0 = time.monotonic()
        dropped = _drop_mail(stack, addresses, mails_per_minute, minutes * 60, rng)
        window = time.monotonic() - window0
        cpu1 = {n: _cpu(p) for n, p in pids.items()}
        reuse1 = {n: _session_reuse(stack, n) for n in fetchers}
        standin1 = {n: _tree_cpu(p) for n, p in _standin_pids(harness).items()}
        samples = sampler.stop()
        events = sink.wait_for(
            lambda e: (
                e["type"] == "bandeja.document.processed" and e["data"].get("subject") in dropped
            ),
            len(dropped),
            timeout=3 * poll_interval,
        )
        fresh = [t - dropped[e["data"]["subject"]][1] for t, e in events]
        out.update(
            {
                "measured_window_s": round(window, 1),
                "mails": len(fresh),
                "freshness_p50_s": round(percentile(fresh, 50), 1),
                "freshness_p95_s": round(percentile(fresh, 95), 1),
                "freshness_max_s": round(max(fresh), 1),
                "cpu_cores": {n: round((cpu1[n] - cpu0[n]) / window, 3) for n in pids},
                "standin_cpu_cores": {
                    n: round((standin1[n] - standin0[n]) / window, 3) for n in standin1
                },
                "fetcher_cpu_cores_total": round(
                    sum(cpu1[n] - cpu0[n] for n in fetchers) / window, 3
                ),
                "fetcher_rss_mb_max": {
                    n: round(max(s[n]["rss_mb"] for s in samples), 1) for n in fetchers
                },
                "fetcher_threads_max": {n: max(s[n]["threads"] for s in samples) for n in fetchers},
                "pg_connections_max": _max_per_key([s["pg"] for s in samples]),
                "pg_connections_total_max": max(sum(s["pg"].values()) for s in samples),
                "poll_age_max_s": round(max(s["poll_age_max_s"] for s in samples), 1),
                "mailboxes_updates_hot": dict(
                    zip(
                        ("updates", "hot"),
                        stack.rows(
                            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                            " WHERE relname = 'mailboxes'"
                        )[0],
                        strict=True,
                    )
                ),
                "session_reuse_in_window": {
                    n: dict(Counter(reuse1[n]) - Counter(reuse0[n]))
                    for n in fetchers
                },
                **_fetch_runs({n: stack.log_path(n) for n in fetchers}),
            }
        )
    finally:
        try:
            sink.close()
        finally:
            out["exit_codes"] = stack.stop()
    return out


def _session_reuse(stack: Stack, name: str) -> dict[str, float]:
    """The replica's parked-session takes so far, by result (``reused``, ``dead``), from
    its own /metrics; every other fetch run logged in afresh."""
    text = requests.get(f"{stack.ops_url(name)}/metrics", timeout=5).text
    takes: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "bandeja_imap_session_reuse":
            takes.update({s.labels["result"]: s.value for s in family.samples
                          if s.name.endswith("_total")})
    return takes


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a server and all its children, live or reaped (Dovecot forks an
    imap process per login; a reaped one's time moves into the master's children_*)."""
    root = psutil.Process(pid)
    times = root.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in root.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += child_times.user + child_times.system
    return float(total)


def _standin_pids(harness: Harness) -> dict[str, int]:
    standin = harness.standin
    processes = {"identity": standin.identity._process, "dovecot": standin.dovecot._process}
    return {name: p.pid for name, p in processes.items() if p is not None}


def _max_per_key(rows: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        for key, value in row.items():
            out[key] = max(out.get(key, 0), value)
    return out
