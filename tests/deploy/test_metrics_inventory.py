"""The metrics the code registers, compared with what deploy/ claims: every one is listed
in exported_metrics.txt and shown on the dashboard (or says why not), every rule names only
registered metrics, and queue regexes name only queues something exports (issue 17)."""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

from prometheus_client import REGISTRY

from common.broker import WORKER_QUEUES
from common.queue_metrics import queues_of
from tests.deploy.conftest import REPO
from tests.deploy.test_prometheus import (
    DASHBOARD,
    EXPORTED,
    _alerts,
    base_name,
    dashboard_exprs,
    metric_names,
)

# Exported, deliberately without a dashboard panel.
NO_PANEL = {
    "process_virtual_memory_bytes": "resident memory is the panel; virtual size says little",
    "process_start_time_seconds": "restarts show as pod restarts in Kubernetes' own views",
    "process_open_fds": "for ad-hoc queries when a process runs out of descriptors",
    "process_max_fds": "for ad-hoc queries, with process_open_fds",
}
CONTRACT = re.compile(r"(bandeja|process)_[a-z0-9_]+")


def _metric_modules() -> list[str]:
    """Every module of the services that uses prometheus_client (found by reading the
    code, so a new metrics module cannot be forgotten here)."""
    modules = []
    for package in ("common", "services"):
        for path in sorted((REPO / package).rglob("*.py")):
            if "prometheus_client" in path.read_text():
                modules.append(".".join(path.relative_to(REPO).with_suffix("").parts))
    return modules


def registered_metrics() -> set[str]:
    """Names as exposed (counters with ``_total``, histograms by base name) of every
    metric the services' modules register in prometheus_client's default registry."""
    for module in _metric_modules():
        importlib.import_module(module)
    names = set()
    # prometheus_client lists registered collectors nowhere publicly; describe() (or
    # collect()) gives each one's families even before any value is set.
    for collector in list(REGISTRY._collector_to_names):
        describe = getattr(collector, "describe", None)
        for family in describe() if describe else collector.collect():
            name = f"{family.name}_total" if family.type == "counter" else family.name
            if CONTRACT.fullmatch(name):
                names.add(name)
    return names


def _dashboard_panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_the_scan_finds_the_known_metric_modules() -> None:
    """The module scan is not empty-handed (else every check below would pass vacuously)."""
    modules = set(_metric_modules())
    assert {"services.auth.metrics", "services.processor.metrics", "common.middleware"} <= modules
    assert {"bandeja_process_crashes_total", "bandeja_database_up"} <= registered_metrics()


def test_exported_metrics_list_is_the_registry() -> None:
    """exported_metrics.txt names exactly the metrics the code registers."""
    listed = set(EXPORTED.read_text().split())
    registered = registered_metrics()
    assert registered - listed == set(), f"registered but not in {EXPORTED.name}"
    assert listed - registered == set(), f"in {EXPORTED.name} but registered nowhere"


def test_every_metric_has_a_panel_or_a_reason() -> None:
    """Each registered metric appears in a dashboard query, or NO_PANEL says why not."""
    registered = registered_metrics()
    shown = {base_name(n, registered) for e in dashboard_exprs() for n in metric_names(e)}
    assert registered - shown - set(NO_PANEL) == set(), "metrics with no panel and no reason"
    assert set(NO_PANEL) <= registered
    assert not set(NO_PANEL) & shown, "a metric with a panel still listed in NO_PANEL"


def test_rules_name_only_registered_metrics() -> None:
    """Every alert expression names only metrics some module registers."""
    registered = registered_metrics()
    for alert in _alerts():
        names = metric_names(alert["expr"])
        unknown = {n for n in names if base_name(n, registered) not in registered}
        assert not unknown, (alert["alert"], unknown)


def _queue_matchers(expr: str) -> list[tuple[str, str]]:
    return re.findall(r'queue\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"', expr)


def test_queue_matchers_name_only_exported_queues() -> None:
    """A queue named in a rule or a panel is one whose depth the workers export: their
    work queues with the delay (.DQ) and dead-letter (.XQ) queues."""
    queues = {q for base in WORKER_QUEUES for q in queues_of(base)}
    exprs = [a["expr"] for a in _alerts()] + dashboard_exprs()
    seen = 0
    for expr in exprs:
        for op, value in _queue_matchers(expr):
            pattern = value.replace("\\\\", "\\")
            seen += 1
            if op == "=" or re.fullmatch(r"[\w.|-]+", pattern.replace("\\.", ".")):
                literal = pattern.replace("\\.", ".")
                assert set(literal.split("|")) <= queues, expr
            else:
                assert any(re.fullmatch(pattern, q) for q in queues), expr
    assert seen >= 4


def test_every_panel_is_described() -> None:
    """Every panel says what it shows (Grafana shows it as the panel's info tooltip)."""
    for panel in _dashboard_panels():
        assert len(panel.get("description", "")) >= 20, panel["title"]


def test_no_axis_mixes_units() -> None:
    """Series with different units never share an axis: a second unit is moved to the
    right axis by a field override."""
    for panel in _dashboard_panels():
        if panel["type"] != "timeseries":
            continue
        default = panel["fieldConfig"]["defaults"].get("unit")
        axes: dict[str, set[str | None]] = {"left": set(), "right": set()}
        overrides = {
            o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
            for o in panel["fieldConfig"].get("overrides", [])
            if o["matcher"]["id"] == "byFrameRefID"
        }
        for target in panel["targets"]:
            props = overrides.get(target["refId"], {})
            axis = props.get("custom.axisPlacement", "left")
            axes["right" if axis == "right" else "left"].add(props.get("unit", default))
        assert all(len(units) <= 1 for units in axes.values()), panel["title"]


def test_backlog_is_summed_over_fetchers() -> None:
    """Each fetcher reports its own share of the unread backlog: the panel adds them."""
    exprs = [e for e in dashboard_exprs() if "bandeja_unread_backlog" in e]
    assert exprs
    assert all(e.lstrip().startswith("sum(") or e.lstrip().startswith("sum ") for e in exprs)
