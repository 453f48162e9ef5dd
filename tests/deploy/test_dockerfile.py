"""The container image definition: digest-pinned base, locked and hashed dependencies,
non-root numeric user, `bandeja` as entry point. (Read here; tests/e2e/test_image.py builds
and runs it.)"""

from __future__ import annotations

import json
import re

from tests.deploy.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _build_args() -> dict[str, str]:
    """The defaults of ARGs declared before the first FROM (the ones FROM lines can use)."""
    args = {}
    for op, rest in _instructions():
        if op == "FROM":
            break
        if op == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name] = default
    return args


def test_multi_stage_with_digest_pinned_base() -> None:
    """Two or more stages; every external base image, as built by default, has an exact
    Python patch version and a digest (a re-pushed tag cannot change what is built)."""
    args = _build_args()
    froms = [rest for op, rest in _instructions() if op == "FROM"]
    assert len(froms) >= 2
    stages = {m.group(1) for f in froms if (m := re.search(r"\bAS\s+(\S+)", f, re.I))}
    for f in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], f.split()[0])
        if image in stages:
            continue
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image


def test_installs_the_locked_dependencies_with_hashes() -> None:
    """The dependencies come from requirements.lock, every one checked against its hash,
    and nothing else is resolved when the package itself is installed."""
    runs = [rest for op, rest in _instructions() if op == "RUN"]
    assert any(
        "--require-hashes" in run and "-r requirements.lock" in run for run in runs
    ), runs
    package_installs = [r for r in runs if re.search(r"pip install (.*\s)?\.(\s|$)", r)]
    assert package_installs
    for run in package_installs:
        assert "--no-deps" in run
        assert "--no-index" in run


def test_runs_as_numeric_non_root_user() -> None:
    """The final USER is numeric and not 0, so runAsNonRoot can verify it."""
    users = [rest for op, rest in _instructions() if op == "USER"]
    assert users
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0


def test_installs_the_repo_and_runs_bandeja() -> None:
    """The package is installed from the repo with pip and the entry point is `bandeja`."""
    ins = _instructions()
    assert any(op == "RUN" and re.search(r"pip install (.*\s)?\.(\s|$)", rest) for op, rest in ins)
    entry = [rest for op, rest in ins if op == "ENTRYPOINT"]
    assert entry
    assert json.loads(entry[-1]) == ["bandeja"]


def test_dockerignore_keeps_secrets_and_venv_out() -> None:
    """The build context excludes the venv, git metadata and local .env files."""
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".env"):
        assert entry in ignored, entry


def test_dockerignore_keeps_the_standin_out() -> None:
    """The Microsoft 365 stand-in (development only) is not in the build context."""
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "standin" in ignored
    assert "tests" in ignored
