"""What the image installs is reproducible and audited: requirements.lock pins every
runtime dependency with hashes, `make audit` audits that lock (not the dev virtualenv) and
says BLOCKED when nothing answered, and the production package leaves the stand-in out."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts import audit_dependencies
from tests.deploy.conftest import REPO

LOCK = REPO / "requirements.lock"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# What an extra of a direct dependency adds (pip-compile --strip-extras flattens them).
EXTRA_PACKAGES = {("dramatiq", "rabbitmq"): ["pika"],
                  ("psycopg", "binary"): ["psycopg-binary"],
                  ("psycopg", "pool"): ["psycopg-pool"],
                  ("pyjwt", "crypto"): ["cryptography"]}


def _locked() -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (version, [hashes])} from requirements.lock."""
    text = re.sub(r"\\\n\s*", " ", LOCK.read_text())
    pins = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split(" --hash=")
        name, _, version = spec.strip().partition("==")
        assert version, f"not pinned to one version: {line}"
        pins[canonicalize_name(name)] = (version, options)
    return pins


def test_every_runtime_dependency_is_locked_with_hashes() -> None:
    """Each dependency of the package (and of its extras) and the build backend is pinned
    to one version that satisfies pyproject.toml, with at least one sha256 hash."""
    pins = _locked()
    wanted = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    wanted += [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in requirements.lock (run `make lock`)"
        version, _ = pins[name]
        assert req.specifier.contains(version, prereleases=True), f"{req}: locked {version}"
        for extra in req.extras:
            for package in EXTRA_PACKAGES[(name, extra)]:
                assert package in pins, f"{req}: {package} is not locked"
    for name, (_, hashes) in pins.items():
        assert hashes, f"{name} has no hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h.strip()) for h in hashes), name


def test_lock_is_made_for_the_image_python() -> None:
    """The lock was resolved for the image's Python minor version (3.11)."""
    header = LOCK.read_text().split("\n\n", 1)[0]
    assert "with Python 3.11" in header
    assert "--generate-hashes" in header


def test_the_production_package_leaves_the_standin_out(tmp_path: Path) -> None:
    """The built wheel (what the image installs) holds common and services, not standin/
    and not the tests. Built from a clean copy: setuptools' build/ directory in a checkout
    may hold files of an earlier configuration."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source)
    for name in ("common", "services", "standin", "tests", "scripts"):
        shutil.copytree(REPO / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=120,
    )
    (wheel,) = tmp_path.glob("bandeja-*.whl")
    tops = {name.split("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"common", "services"} <= tops
    assert not tops & {"standin", "tests", "scripts", "bench"}


def _fake_pip_audit(
    monkeypatch: pytest.MonkeyPatch, dependencies: list[dict[str, Any]]
) -> list[list[str]]:
    """Replace the pip-audit run by one writing `dependencies` as its JSON report."""
    calls = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        output = Path(command[command.index("--output") + 1])
        output.write_text(json.dumps({"dependencies": dependencies, "fixes": []}))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(audit_dependencies.subprocess, "run", run)
    return calls


def test_audit_reads_the_lock_file(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """`make audit` audits requirements.lock as pinned, without resolving or installing."""
    calls = _fake_pip_audit(monkeypatch, [{"name": "msal", "version": "1.0", "vulns": []}])
    assert audit_dependencies.main() == 0
    (command,) = calls
    assert command[command.index("--requirement") + 1] == str(LOCK)
    assert {"--require-hashes", "--no-deps", "--disable-pip"} <= set(command)
    assert "audit: ok, 1 packages audited" in capsys.readouterr().out


def test_audit_says_blocked_when_no_advisory_source_answers(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Every package skipped (offline, or a mirror without PyPI's JSON API): BLOCKED, never
    'no vulnerabilities'."""
    skipped = [{"name": n, "skip_reason": "Dependency not found on PyPI"} for n in ("a", "b")]
    _fake_pip_audit(monkeypatch, skipped)
    assert audit_dependencies.main() == 0
    out = capsys.readouterr().out
    assert out.startswith("audit: BLOCKED")
    assert "none vulnerable" not in out


def test_audit_fails_on_a_known_vulnerability(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A vulnerable locked package fails the audit and names the advisory."""
    _fake_pip_audit(monkeypatch, [{"name": "jinja2", "version": "3.1.0",
                                   "vulns": [{"id": "GHSA-h5c8-rqwp-cp95"}]}])
    assert audit_dependencies.main() == 1
    assert "GHSA-h5c8-rqwp-cp95" in capsys.readouterr().out
