"""BANDEJA_ALLOWED_TENANTS: empty admits any tenant; a typo stops the start, it does not
silently lock every user out (or, worse, read as "no restriction")."""

from __future__ import annotations

import pydantic
import pytest

from common.settings import Settings

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def test_default_admits_any_tenant() -> None:
    assert Settings().allowed_tenant_ids == frozenset()


def test_ids_are_trimmed_and_lower_cased() -> None:
    settings = Settings(allowed_tenants=f" {TENANT.upper()} ,, {TENANT[:-1]}8 ")
    assert settings.allowed_tenant_ids == {TENANT, f"{TENANT[:-1]}8"}


@pytest.mark.parametrize("value", ["contoso.com", f"{TENANT},organizations", "*"])
def test_anything_but_tenant_ids_is_refused_at_start(value: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings(allowed_tenants=value)
