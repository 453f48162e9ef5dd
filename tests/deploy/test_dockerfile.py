"""The container image definition: pinned base, non-root numeric user, installed from the
repo, `bandeja` as entry point. (No Docker engine here: the Dockerfile is read, not built.)"""

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


def test_multi_stage_with_pinned_base() -> None:
    """Two or more stages; every external base image has an exact Python patch version."""
    froms = [rest for op, rest in _instructions() if op == "FROM"]
    assert len(froms) >= 2
    stages = {m.group(1) for f in froms if (m := re.search(r"\bAS\s+(\S+)", f, re.I))}
    for f in froms:
        image = f.split()[0]
        if image in stages:
            continue
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image


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
