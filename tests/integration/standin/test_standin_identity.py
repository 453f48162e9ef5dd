"""The identity emulator against real msal: discovery, auth code + PKCE, refresh, errors."""

from __future__ import annotations

import pytest
import requests

from standin.testing import SignInError, redirect_params, sign_in
from tests.integration.standin.standin_helpers import IMAP_SCOPE, REDIRECT_URI, World

APP_SCOPE = ["https://outlook.office365.com/.default"]


def _token_post(
    world: World,
    data: dict[str, str],
    tenant: str = "organizations",
) -> requests.Response:
    url = f"{world.standin.identity.base_url}/{tenant}/oauth2/v2.0/token"
    return world.standin.identity.session().post(url, data=data, timeout=10)


def _assert_ms_error(result: dict, error: str, code: int) -> None:
    assert result["error"] == error, result
    assert result["error_codes"] == [code], result
    assert result["error_description"].startswith(f"AADSTS{code}:")
    assert "\r\nTrace ID: " in result["error_description"]
    for key in ("timestamp", "trace_id", "correlation_id", "error_uri"):
        assert result[key]


def test_discovery_lists_https_endpoints_on_the_emulator(world: World) -> None:
    """msal reads authorization/token endpoints from discovery; they must be https on us."""
    base = world.standin.identity.base_url
    tid = world.tenant["id"]
    doc = (
        world.standin.identity.session()
        .get(f"{base}/{tid}/v2.0/.well-known/openid-configuration", timeout=10)
        .json()
    )
    assert doc["issuer"] == f"{base}/{tid}/v2.0"
    assert doc["token_endpoint"] == f"{base}/{tid}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{base}/{tid}/oauth2/v2.0/authorize"
    keys = world.standin.identity.session().get(doc["jwks_uri"], timeout=10).json()
    assert keys["keys"][0]["alg"] == "RS256"


def test_auth_code_flow_with_pkce_state_and_nonce(world: World) -> None:
    """A full msal auth-code flow yields tokens, an account and id-token tid/oid."""
    address = world.new_user()
    app, result = world.tokens(address)
    claims = result["id_token_claims"]
    assert claims["tid"] == world.tenant["id"]
    assert claims["preferred_username"] == address
    assert claims["oid"]
    assert result["refresh_token"]
    assert result["scope"] == IMAP_SCOPE
    (account,) = app.get_accounts()
    assert account["home_account_id"] == f"{claims['oid']}.{claims['tid']}"


def test_wrong_code_verifier_is_refused(world: World) -> None:
    """PKCE: a verifier that does not match the challenge → invalid_grant AADSTS501481."""
    app, flow, params = world.sign_in(world.new_user())
    flow["code_verifier"] = "x" * 43
    _assert_ms_error(app.acquire_token_by_auth_code_flow(flow, params), "invalid_grant", 501481)


def test_replayed_code_is_refused(world: World) -> None:
    """A code is single use: the second redemption → invalid_grant AADSTS54005."""
    app, flow, params = world.sign_in(world.new_user())
    assert "access_token" in app.acquire_token_by_auth_code_flow(dict(flow), params)
    again = world.app().acquire_token_by_auth_code_flow(dict(flow), params)
    _assert_ms_error(again, "invalid_grant", 54005)


def test_refresh_rotates_and_old_token_stays_valid(world: World) -> None:
    """Each refresh returns a new refresh token; the previous one still works (like Entra)."""
    address = world.new_user()
    app, first = world.tokens(address)
    (account,) = app.get_accounts()
    refreshed = app.acquire_token_silent_with_error([IMAP_SCOPE], account, force_refresh=True)
    assert refreshed["token_source"] == "identity_provider"
    assert refreshed["refresh_token"] != first["refresh_token"]
    again = world.app().acquire_token_by_refresh_token(first["refresh_token"], [IMAP_SCOPE])
    assert "access_token" in again, again
    assert world.control.stats()["users"][address]["refresh_token"] == 2


@pytest.mark.parametrize(
    ("action", "error", "code", "suberror"),
    [
        ("revoke_user", "invalid_grant", 50173, "bad_token"),
        ("expire_refresh_tokens", "invalid_grant", 700082, "bad_token"),
        ("require_mfa", "interaction_required", 50076, "basic_action"),
    ],
)
def test_refresh_errors_provoked_by_control(
    world: World, action: str, error: str, code: int, suberror: str
) -> None:
    """Revocation, inactivity and MFA each surface in msal's result in Microsoft's shape."""
    address = world.new_user()
    app, _ = world.tokens(address)
    getattr(world.control, action)(address)
    (account,) = app.get_accounts()
    result = app.acquire_token_silent_with_error([IMAP_SCOPE], account, force_refresh=True)
    _assert_ms_error(result, error, code)
    assert result["suberror"] == suberror
    # A fresh interactive sign-in is not affected by the earlier invalidation.
    assert "access_token" in world.tokens(address)[1]


@pytest.mark.parametrize(("change", "code"), [("rotate", 7000215), ("expire", 7000222)])
def test_client_secret_errors_are_401_invalid_client(new_world, change: str, code: int) -> None:
    """A wrong secret → 7000215, an expired one → 7000222, both HTTP 401 invalid_client."""
    world = new_world()
    address = world.new_user()
    app, result = world.tokens(address)
    if change == "rotate":
        world.control.rotate_secret(world.client["client_id"])
    else:
        world.control.expire_secret(world.client["client_id"])
    (account,) = app.get_accounts()
    via_msal = app.acquire_token_silent_with_error([IMAP_SCOPE], account, force_refresh=True)
    _assert_ms_error(via_msal, "invalid_client", code)
    raw = _token_post(
        world,
        {
            "grant_type": "refresh_token",
            "client_id": world.client["client_id"],
            "client_secret": world.client["secret"],
            "refresh_token": result["refresh_token"],
            "scope": IMAP_SCOPE,
        },
    )
    assert raw.status_code == 401
    assert raw.json()["error_codes"] == [code]


def test_cancel_redirects_with_access_denied(world: World) -> None:
    """Cancel on the consent page → access_denied, error_subcode=cancel, AADSTS65004."""
    app, flow, params = world.sign_in(world.new_user(), action="cancel")
    assert params["error"] == "access_denied"
    assert params["error_subcode"] == "cancel"
    assert params["error_description"].startswith("AADSTS65004")
    assert params["state"] == flow["state"]
    assert app.acquire_token_by_auth_code_flow(flow, params)["error"] == "access_denied"


def test_conditional_access_block(world: World) -> None:
    """A user blocked by conditional access → access_denied AADSTS53003 on the redirect."""
    _, _, params = world.sign_in(world.new_user(blocked_by_ca=True))
    assert params["error"] == "access_denied"
    assert params["error_description"].startswith("AADSTS53003")


def test_unknown_user_and_bad_redirect_uri(world: World) -> None:
    """An unknown user gets AADSTS50034 on the page; a bad redirect URI never redirects."""
    app = world.app()
    flow = app.initiate_auth_code_flow([IMAP_SCOPE], redirect_uri=REDIRECT_URI)
    session = world.standin.identity.session()
    with pytest.raises(SignInError, match="AADSTS50034"):
        sign_in(session, flow["auth_uri"], "ghost@contoso.example")
    bad = app.initiate_auth_code_flow([IMAP_SCOPE], redirect_uri="https://evil.test/cb")
    page = session.get(bad["auth_uri"], allow_redirects=False, timeout=10)
    assert page.status_code == 400
    assert "AADSTS50011" in page.text


def test_admin_consent_lifts_consent_requirement_and_enables_app_tokens(new_world) -> None:
    """User consent off: a user needs admin consent; after it, sign-in and app-only work."""
    world = new_world(user_consent_allowed=False)
    user = world.new_user()
    admin = world.new_user(is_admin=True)
    _, _, params = world.sign_in(user)
    assert params["error"] == "consent_required"
    assert params["error_description"].startswith("AADSTS90094")

    tid = world.tenant["id"]
    unconsented = world.app(tid).acquire_token_for_client(APP_SCOPE)
    _assert_ms_error(unconsented, "unauthorized_client", 700016)

    base = world.standin.identity.base_url
    url = (
        f"{base}/organizations/v2.0/adminconsent?client_id={world.client['client_id']}"
        f"&redirect_uri={REDIRECT_URI}&state=xyz&scope=https://outlook.office365.com/.default"
    )
    session = world.standin.identity.session()
    declined = redirect_params(sign_in(session, url, admin, action="cancel"))
    assert declined["error"] == "access_denied"
    assert declined["admin_consent"] == "True"
    granted = redirect_params(sign_in(session, url, admin))
    assert granted == {
        "admin_consent": "True",
        "tenant": tid,
        "state": "xyz",
        "scope": "https://outlook.office365.com/.default",
    }

    assert "code" in world.sign_in(user)[2]
    app_token = world.app(tid).acquire_token_for_client(APP_SCOPE)
    assert app_token["token_type"] == "Bearer", app_token
    assert "refresh_token" not in app_token


def test_injected_429_carries_retry_after_and_503_is_plain(world: World) -> None:
    """Failure injection: 429 with Retry-After and a Microsoft body, then 503 plain text."""
    world.control.inject_failure(429, count=1, retry_after=7)
    world.control.inject_failure(503, count=1)
    data = {
        "grant_type": "client_credentials",
        "client_id": world.client["client_id"],
        "client_secret": world.client["secret"],
        "scope": APP_SCOPE[0],
    }
    throttled = _token_post(world, data, world.tenant["id"])
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.json()["error"] == "temporarily_unavailable"
    unavailable = _token_post(world, data, world.tenant["id"])
    assert unavailable.status_code == 503
    assert unavailable.text == "Service Unavailable"
    assert world.control.stats()["grants"]["injected_failure"] >= 2


def test_injected_429_reaches_msal(world: World) -> None:
    """msal returns the 429's JSON body as an error dict (it does not raise)."""
    world.control.inject_failure(429, count=1, retry_after=1)
    _, flow, params = world.sign_in(world.new_user())
    result = world.app().acquire_token_by_auth_code_flow(flow, params)
    assert result["error"] == "temporarily_unavailable"
