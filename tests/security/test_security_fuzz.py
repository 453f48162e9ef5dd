"""Fuzz the auth service's HTTP API from docs/openapi.yaml (schemathesis, bounded).

Every generated request, with and without the admin token, must get an answer that the
description allows: never a 5xx, never a stack trace or exception name in the body.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    status_code_conformance,
)

from tests.support.services import ADMIN_TOKEN, CLIENT_SECRET, Services

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# What a leaked traceback looks like, whatever renders it.
STACK_TRACE = re.compile(
    r'Traceback \(most recent call last\)|File "[^"]+", line \d+|'
    r"\b(?:psycopg|starlette|msal|jinja2|uvicorn)\.|\b\w+(?:Error|Exception)\b:"
)


SCHEMA = schemathesis.openapi.from_path(OPENAPI)
OPERATIONS = {op.ok().label: op.ok() for op in SCHEMA.get_all_operations()}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


def _assert_clean(response: requests.Response) -> None:
    body = response.text
    assert not STACK_TRACE.search(body), body[:500]
    assert ADMIN_TOKEN not in body
    assert CLIENT_SECRET not in body


# schemathesis's own pytest plugin (``from_fixture``/``parametrize``) breaks on pytest 9
# ("'Function' object has no attribute '_nodeid'"), so hypothesis drives the strategies.
# Negative generation needs parameters to break; parameterless routes are fuzzed positively.
CASES = [(label, GenerationMode.POSITIVE) for label in sorted(OPERATIONS)] + [
    (label, GenerationMode.NEGATIVE)
    for label, operation in sorted(OPERATIONS.items())
    if list(operation.iter_parameters())
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_auth_api_never_errors_or_leaks_under_fuzzing(
    module_auth: Services, label: str, mode: GenerationMode
) -> None:
    """Generated requests (valid and invalid ones), with and without the admin token, get
    documented answers: no 5xx, no traceback or exception name, no secret in the body."""
    operation = OPERATIONS[label]
    base_url = module_auth.auth_url

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=15,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, headers=ADMIN, allow_redirects=False, timeout=20)
        if mode is GenerationMode.POSITIVE:
            case.validate_response(response, checks=CHECKS)
        else:
            case.validate_response(response, checks=[not_a_server_error])
        _assert_clean(response)
        if mode is GenerationMode.POSITIVE and case.path.startswith("/api/"):
            anonymous = case.call(base_url=base_url, allow_redirects=False, timeout=20)
            assert anonymous.status_code == 401, anonymous.text
            _assert_clean(anonymous)

    fuzz()
