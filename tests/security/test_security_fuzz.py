"""Fuzz the auth service's HTTP API from docs/openapi.yaml (schemathesis, bounded).

Every generated request, with and without the admin token, must get an answer that the
description allows: never a 5xx, never a stack trace or exception name in the body. Every
documented route is fuzzed (the status page and its login included), the callbacks'
``error*`` parameters behind a really issued state, and methods no route serves.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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


def _issued_state(base_url: str, start_path: str) -> str:
    """A state Bandeja really issued: start a flow and read it from the redirect."""
    start = requests.get(f"{base_url}{start_path}", allow_redirects=False, timeout=20)
    assert start.status_code == 302, start.text
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    assert state
    return state


@pytest.mark.parametrize(
    ("label", "start_path"),
    [
        ("GET /oauth/callback", "/connect"),
        ("GET /admin-consent/callback", "/admin-consent"),
    ],
)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_callback_error_parameters_are_fuzzed_behind_a_real_state(
    module_auth: Services, label: str, start_path: str, mode: GenerationMode
) -> None:
    """The callbacks' ``error``, ``error_description`` and ``error_subcode`` as schemathesis
    generates them, each behind a state Bandeja issued (a made-up state is refused before
    they are read): a failure page, never a 5xx or a traceback."""
    operation = OPERATIONS[label]
    base_url = module_auth.auth_url

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: schemathesis.Case) -> None:
        query = {k: v for k, v in (case.query or {}).items() if k != "code"}
        query.setdefault("error", "invalid_request")
        case.query = {**query, "state": _issued_state(base_url, start_path)}
        response = case.call(base_url=base_url, allow_redirects=False, timeout=30)
        case.validate_response(response, checks=[not_a_server_error])
        assert response.status_code == 400, (case.query, response.text[:300])
        _assert_clean(response)

    fuzz()


_KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
_INVENTED_METHODS = st.from_regex(r"\A[A-Z][A-Z0-9_-]{0,15}\Z").filter(
    lambda m: m not in _KNOWN_METHODS
)
_PATHS = sorted({operation.path for operation in OPERATIONS.values()})


def test_invented_methods_get_405_or_404_never_an_error(module_auth: Services) -> None:
    """Methods no route serves, on every documented path and on unknown ones: 405 or 404
    with a clean body, with and without the admin token."""
    base_url = module_auth.auth_url

    @given(
        method=_INVENTED_METHODS,
        path=st.sampled_from(_PATHS).map(lambda p: p.replace("{mailbox_id}", "1"))
        | st.from_regex(r"\A/[a-z0-9/_-]{0,40}\Z"),
        admin=st.booleans(),
    )
    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(method: str, path: str, admin: bool) -> None:
        response = requests.request(
            method, f"{base_url}{path}", headers=ADMIN if admin else {}, timeout=20
        )
        assert response.status_code in (404, 405), (method, path, response.status_code)
        _assert_clean(response)

    fuzz()
