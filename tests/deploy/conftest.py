"""Shared fixtures for the deployment tests: the repo paths, the required tools, the
rendered kustomize overlays. Nothing here needs a cluster or the network."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
PROMETHEUS = DEPLOY / "prometheus"


def require_tool(name: str, install_hint: str) -> str:
    """The tool's path; fails (never skips) when it is missing, saying how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH; the deployment tests need it: {install_hint}")
    return path


def kubectl() -> str:
    return require_tool(
        "kubectl",
        "install kubectl >= 1.27 (bundles kustomize v5), e.g. `apt-get install kubectl` "
        "from the Kubernetes apt repository or the binary release",
    )


def promtool() -> str:
    return require_tool("promtool", "`apt-get install prometheus` (Debian ships promtool in it)")


def render(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize PATH` parsed into objects."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


_RENDERED: dict[str, list[dict[str, Any]]] = {}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """(overlay name, its rendered objects), rendered once per session."""
    name = request.param
    if name not in _RENDERED:
        _RENDERED[name] = render(K8S / "overlays" / name)
    return name, _RENDERED[name]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload that runs pods."""
    out = []
    for o in objects:
        if o["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            out.append((f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]))
        elif o["kind"] == "CronJob":
            spec = o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            out.append((f"CronJob/{o['metadata']['name']}", spec))
    return out
