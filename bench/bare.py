"""The physical floor: XOAUTH2 login, UID SEARCH UNSEEN, FETCH BODY.PEEK[] in batches,
STORE +FLAGS \\Seen. Nothing stored, nothing parsed."""

from __future__ import annotations

import ssl
import time
from concurrent.futures import ThreadPoolExecutor

from imapclient import IMAPClient

from bench.report import Throughput
from common.settings import APP_ONLY_IMAP_SCOPE, Settings
from services.fetcher.imap import quiet_imaplib
from standin.testing import StandIn
from tests.support.services import CLIENT_ID, CLIENT_SECRET

# Bandeja's default BANDEJA_FETCH_BATCH_SIZE, read from the settings so the two cannot drift.
BATCH: int = Settings.model_fields["fetch_batch_size"].default


def app_token(standin: StandIn, tenant_id: str) -> str:
    """A real client-credentials token from the emulator: good for every tenant mailbox."""
    app = standin.identity.msal_app(CLIENT_ID, CLIENT_SECRET, tenant=tenant_id)
    result = app.acquire_token_for_client(scopes=[APP_ONLY_IMAP_SCOPE])
    if "access_token" not in result:
        raise RuntimeError(f"no app token: {result}")
    return str(result["access_token"])


def drain(port: int, context: ssl.SSLContext, address: str, token: str) -> tuple[int, int]:
    client = IMAPClient("127.0.0.1", port=port, ssl=True, ssl_context=context, timeout=60)
    quiet_imaplib(client)  # the floor gets the same fix as Bandeja's fetcher
    mails = size = 0
    try:
        client.oauth2_login(address, token)
        client.select_folder("INBOX")
        unseen = sorted(client.search(["UNSEEN"]))
        for start in range(0, len(unseen), BATCH):
            batch = unseen[start:start + BATCH]
            data = client.fetch(batch, ["BODY.PEEK[]"])
            mails += len(data)
            size += sum(len(item[b"BODY[]"]) for item in data.values())
            client.add_flags(batch, [b"\\Seen"])
    finally:
        client.logout()
    return mails, size


def run(standin: StandIn, tenant_id: str, addresses: list[str], threads: int) -> Throughput:
    token = app_token(standin, tenant_id)
    context = ssl.create_default_context(cafile=standin.identity.ca_path)
    port = standin.dovecot.imaps_port
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(lambda a: drain(port, context, a, token), addresses))
    seconds = time.monotonic() - started
    return Throughput(f"bare loop, {threads} thread(s)", sum(m for m, _ in done),
                      sum(s for _, s in done), seconds, "imaps, XOAUTH2 app token")
