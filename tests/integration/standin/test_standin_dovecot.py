"""Real Dovecot checking tokens against the emulator's /introspect, over implicit TLS."""

from __future__ import annotations

import ssl
import time

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.integration.standin.standin_helpers import World

APP_SCOPE = ["https://outlook.office365.com/.default"]


def _imaps(world: World) -> IMAPClient:
    context = ssl.create_default_context(cafile=world.standin.identity.ca_path)
    return IMAPClient(
        "127.0.0.1",
        port=world.standin.dovecot.imaps_port,
        ssl=True,
        ssl_context=context,
        timeout=10,
    )


def _xoauth2(world: World, address: str, token: str) -> None:
    client = _imaps(world)
    try:
        client.oauth2_login(address, token)
        client.select_folder("INBOX")
    finally:
        client.shutdown()


def test_xoauth2_and_oauthbearer_login_over_verified_tls(world: World) -> None:
    """A delegated token logs in with both SASL mechanisms; TLS verifies with ca.pem."""
    address = world.new_user()
    _, result = world.tokens(address)
    _xoauth2(world, address, result["access_token"])
    client = _imaps(world)
    try:
        client.oauthbearer_login(address, result["access_token"])
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.shutdown()


def test_token_of_another_user_is_refused(world: World) -> None:
    """Dovecot compares the introspected username with the login user."""
    _, result = world.tokens(world.new_user())
    with pytest.raises(LoginError):
        _xoauth2(world, world.new_user(), result["access_token"])


@pytest.mark.parametrize("invalidate", ["revoke_user", "expire_access_tokens"])
def test_invalidated_token_refused_then_fresh_token_accepted_at_once(
    world: World, invalidate: str
) -> None:
    """No auth cache and no anvil penalty: rejection is immediate, recovery is too."""
    address = world.new_user()
    _, old = world.tokens(address)
    getattr(world.control, invalidate)(address)
    with pytest.raises(LoginError):
        _xoauth2(world, address, old["access_token"])
    _, fresh = world.tokens(address)
    started = time.monotonic()
    _xoauth2(world, address, fresh["access_token"])
    assert time.monotonic() - started < 1.0


def test_app_only_token_opens_any_mailbox_of_its_tenant_only(new_world, world: World) -> None:
    """A client-credentials token works for every mailbox of the consented tenant."""
    other = new_world()
    other.control.grant_admin_consent(other.tenant["id"], other.client["client_id"])
    token = other.app(other.tenant["id"]).acquire_token_for_client(APP_SCOPE)["access_token"]
    _xoauth2(other, other.new_user(), token)
    _xoauth2(other, other.new_user(), token)
    with pytest.raises(LoginError):
        _xoauth2(other, world.new_user(), token)


def test_plain_login_and_mail_seeding(world: World) -> None:
    """passwd-file PLAIN logins work; APPEND seeds mail; unseen/flags readers see it."""
    address = world.new_user()
    dovecot = world.standin.dovecot
    dovecot.create_user(address, "s3cret")
    first = dovecot.append(address, b"Subject: one\r\n\r\nbody\r\n")
    second = dovecot.append(address, b"Subject: two\r\n\r\nbody\r\n", flags=[r"\Seen"])
    assert dovecot.unseen_uids(address) == [first]
    assert dovecot.flags(address)[second] == {r"\Seen"}
    client = IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False, timeout=10)
    try:
        client.login(address, "s3cret")
        assert client.select_folder("INBOX")[b"EXISTS"] == 2
    finally:
        client.logout()
    with pytest.raises(LoginError):
        IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False).login(address, "wrong")


def test_access_token_lifetime_applies_to_introspection(world: World) -> None:
    """A token past its expires_in is refused by Dovecot; the refresh token still works."""
    address = world.new_user()
    world.control.set_access_token_lifetime(1)
    try:
        app, result = world.tokens(address)
    finally:
        world.control.set_access_token_lifetime(3600)
    assert result["expires_in"] == 1
    time.sleep(1.1)
    with pytest.raises(LoginError):
        _xoauth2(world, address, result["access_token"])
    (account,) = app.get_accounts()
    refreshed = app.acquire_token_silent_with_error(
        ["https://outlook.office.com/IMAP.AccessAsUser.All"], account, force_refresh=True
    )
    _xoauth2(world, address, refreshed["access_token"])


def test_sixty_parallel_sessions(new_world) -> None:
    """Connection limits are raised: 60 simultaneous authenticated sessions from 127.0.0.1."""
    world = new_world()
    world.control.grant_admin_consent(world.tenant["id"], world.client["client_id"])
    token = world.app(world.tenant["id"]).acquire_token_for_client(APP_SCOPE)["access_token"]
    clients = []
    try:
        for _ in range(60):
            client = _imaps(world)
            clients.append(client)
            client.oauth2_login(world.new_user(), token)
        assert all(c.noop() for c in clients)
    finally:
        for client in clients:
            client.shutdown()
