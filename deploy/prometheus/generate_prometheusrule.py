"""Wrap deploy/prometheus/rules.yml into the PrometheusRule of the kustomize base.

rules.yml is the one source: a plain Prometheus rule file that promtool and a real
Prometheus load as is. The Prometheus Operator wants the same groups under
``spec.groups`` of a PrometheusRule, which kustomize cannot read from outside the base
directory, so the object is generated and committed. Run after editing rules.yml:

    python deploy/prometheus/generate_prometheusrule.py          # rewrite
    python deploy/prometheus/generate_prometheusrule.py --check  # exit 1 if stale
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules.yml"
TARGET = HERE.parent / "k8s" / "base" / "prometheusrule.yaml"

HEADER = (
    "# GENERATED from deploy/prometheus/rules.yml by\n"
    "# deploy/prometheus/generate_prometheusrule.py: edit rules.yml, then rerun it.\n"
)


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL) as literal blocks, as rules.yml has them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render() -> str:
    """The PrometheusRule manifest text for the current rules.yml."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "bandeja",
            "labels": {
                "app.kubernetes.io/name": "bandeja",
                "app.kubernetes.io/part-of": "bandeja",
            },
        },
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=1000)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
