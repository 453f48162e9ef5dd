"""Alert rules: valid for promtool, unit-tested, in sync with the PrometheusRule, built only
from metrics the services export, and each linked to its runbook."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import K8S, PROMETHEUS, REPO, promtool, render

RULES = PROMETHEUS / "rules.yml"
RUNBOOKS = REPO / "docs" / "runbooks.md"
DASHBOARD = REPO / "deploy" / "grafana" / "bandeja.json"
EXPORTED = PROMETHEUS / "exported_metrics.txt"

PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (no full parser: strings, label
    matchers, ranges and grouping clauses are stripped, then every identifier that is not
    a function call or keyword is a metric)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def base_name(name: str, exported: set[str]) -> str:
    """A histogram's series name (`x_bucket`, `x_count`, `x_sum`) as its exported name."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in exported:
            return name[: -len(suffix)]
    return name


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))

    walk(dash["panels"])
    for var in dash.get("templating", {}).get("list", []):
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        m = re.match(r"label_values\(\s*(.+?)\s*,\s*\w+\s*\)$", query or "")
        if m:
            exprs.append(m.group(1))
    return exprs


def test_promtool_check_rules() -> None:
    """promtool accepts the rule file."""
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests() -> None:
    """Every promtool unit test passes: alerts fire on their series and stay quiet otherwise."""
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    result = subprocess.run(
        [promtool(), "test", "rules", *map(str, tests)],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROMETHEUS,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_both_ways() -> None:
    """Each alert has a unit test where it fires and one where it must stay quiet."""
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for art in case.get("alert_rule_test", []):
                (fires if art.get("exp_alerts") else quiet).add(art["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert names - fires == set(), "alerts never shown to fire"
    assert names - quiet == set(), "alerts never shown to stay quiet"


def test_alerts_follow_conventions() -> None:
    """CamelCase names, `for:`, a severity, summary/description, and a runbook_url whose
    anchor is a heading of docs/runbooks.md."""
    headings = {
        re.sub(r"[^a-z0-9 _-]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("#")
    }
    for alert in _alerts():
        name = alert["alert"]
        assert re.fullmatch(r"Bandeja[A-Z][A-Za-z]+", name), name
        assert alert.get("for"), name
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, name
        ann = alert["annotations"]
        assert ann.get("summary"), name
        assert ann.get("description"), name
        url = ann["runbook_url"]
        assert "docs/runbooks.md#" in url, name
        assert url.split("#", 1)[1] == name.lower(), name
        assert name.lower() in headings, f"docs/runbooks.md has no section {name}"


def test_prometheusrule_matches_rules_file() -> None:
    """The PrometheusRule in the kustomize base carries exactly the plain rule file, and the
    generator reports it up to date."""
    (rule,) = [o for o in render(K8S / "base") if o["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    result = subprocess.run(
        [sys.executable, str(PROMETHEUS / "generate_prometheusrule.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_exported_metrics_list() -> None:
    """exported_metrics.txt is one metric name per line, unique, and names only the
    contract's metrics (bandeja_* and the default process_* collectors)."""
    lines = EXPORTED.read_text().splitlines()
    assert lines
    assert all(re.fullmatch(r"(bandeja|process)_[a-z0-9_]+", n) for n in lines)
    assert len(lines) == len(set(lines))


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    """No alert or dashboard panel depends on a metric the services do not export."""
    exported = set(EXPORTED.read_text().split())
    exprs = [a["expr"] for a in _alerts()] + dashboard_exprs()
    unknown = {}
    for expr in exprs:
        for name in metric_names(str(expr)):
            if base_name(name, exported) not in exported:
                unknown[name] = expr
    assert not unknown, f"metrics not in {EXPORTED.name}: {unknown}"


def test_metric_name_extraction() -> None:
    """The PromQL scan finds metrics and skips functions, keywords, labels and strings."""
    expr = (
        'label_replace(absent(a_b), "c", "x_y", "", "") or sum by (le, route) '
        '(rate(h_bucket{route=~"z_w"}[$__rate_interval])) / on (q) group_left c_total - time()'
    )
    assert metric_names(expr) == {"a_b", "h_bucket", "c_total"}


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Every dashboard query is valid PromQL (checked by promtool as recording rules, with
    Grafana's variables substituted)."""
    rules = []
    for i, expr in enumerate(dashboard_exprs()):
        concrete = expr.replace("$__rate_interval", "5m").replace("$namespace", ".*")
        rules.append({"record": f"dashboard:query_{i}", "expr": concrete})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_importable() -> None:
    """The dashboard is a Grafana dashboard JSON with a datasource variable, unique panel
    ids and every panel bound to the chosen Prometheus."""
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"]
    assert dash["uid"]
    assert dash["schemaVersion"] >= 30
    assert "id" not in dash or dash["id"] is None
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"], p["title"]


AGGREGATIONS = r"\b(sum|min|max|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)\b"


def test_every_alert_is_grouped_by_namespace() -> None:
    """Every aggregation in an alert keeps `namespace` (`by (namespace, ...)`): dev and
    production alert apart, and a live dev auth cannot hide a dead production one.
    absent() drops every label, so no alert uses it."""
    for alert in _alerts():
        expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', alert["expr"])
        assert "absent(" not in expr, alert["alert"]
        for m in re.finditer(AGGREGATIONS + r"\s*(by|without)?\s*(\([^)]*\))?\s*\(", expr):
            clause, labels = m.group(2), m.group(3) or ""
            where = f"{alert['alert']}: `{m.group(0)}` drops namespace"
            assert clause == "by", where
            assert re.search(r"\bnamespace\b", labels), where
