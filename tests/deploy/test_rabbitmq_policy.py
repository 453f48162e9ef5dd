"""The deploy manifests give `bandeja.events` the alternate exchange the relay relies on,
with the very policy the code, the tests and the runbook use."""

from __future__ import annotations

from services.relay.topology import POLICY_DEFINITION, POLICY_NAME, POLICY_PATTERN
from tests.deploy.conftest import K8S, render


def test_alternate_exchange_policy_matches_the_relay() -> None:
    (policy,) = [o for o in render(K8S / "base") if o["kind"] == "Policy"]
    spec = policy["spec"]
    assert spec["name"] == POLICY_NAME
    assert spec["pattern"] == POLICY_PATTERN
    assert spec["applyTo"] == "exchanges"
    assert spec["definition"] == POLICY_DEFINITION
