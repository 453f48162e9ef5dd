"""`ExchangeProxy`: Exchange Online's IMAP personality in front of the stand-in's Dovecot.

    with ExchangeProxy.for_standin(standin) as proxy:
        proxy.faults.throttle("contoso.example", backoff_ms=300)
        IMAPClient("127.0.0.1", proxy.port, ssl_context=ctx).oauth2_login(user, token)
        proxy.stats.backoff_gaps_ms(user)

Implicit TLS like Exchange's port 993 (a certificate from the stand-in's test CA), plain
IMAP to Dovecot. Runs its own event loop in a thread; `serve_forever` is for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from standin.exchange.control_api import ControlEndpoint
from standin.exchange.faults import DEFAULT_CONNECTION_LIMIT, Faults
from standin.exchange.framing import LINE_LIMIT
from standin.exchange.session import Context, Session
from standin.exchange.stats import ProxyStats
from standin.exchange.tokens import TokenChecker
from standin.identity.certs import CertPair, ensure_server_cert

if TYPE_CHECKING:
    from standin.testing import StandIn


def server_context(cert: Path | str, key: Path | str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context


def standin_cert(ca_dir: Path, cert_dir: Path | None = None) -> CertPair:
    """`exchange.pem`/`.key` for localhost and 127.0.0.1, signed by the stand-in's CA."""
    ca = CertPair(ca_dir / "ca.pem", ca_dir / "ca.key")
    return ensure_server_cert(cert_dir or ca_dir, ca, name="exchange")


class ExchangeProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1",
                 port: int = 0, ssl_context: ssl.SSLContext | None = None,
                 introspection_url: str | None = None, ca_path: str | None = None,
                 token_check_interval: float = 0.5,
                 connection_limit: int = DEFAULT_CONNECTION_LIMIT,
                 control_port: int | None = None) -> None:
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self.control_port = control_port
        self.faults = Faults(connection_limit)
        self.stats = ProxyStats()
        checker = (TokenChecker(introspection_url, ca_path)
                   if introspection_url and ca_path else None)
        self._context = Context(self.faults, self.stats, checker, upstream_host, upstream_port,
                                token_check_interval)
        self._servers: list[asyncio.Server] = []
        self._sessions: dict[Session, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def for_standin(cls, standin: StandIn, *, tls: bool = True, cert_dir: Path | None = None,
                    **options: object) -> ExchangeProxy:
        """In front of `standin.dovecot`'s plain port, checking tokens with its emulator."""
        identity = standin.identity
        context = None
        if tls:
            pair = standin_cert(identity.state_dir, cert_dir)
            context = server_context(pair.cert, pair.key)
        return cls(standin.dovecot.host, standin.dovecot.imap_port, ssl_context=context,
                   introspection_url=identity.introspection_url, ca_path=identity.ca_path,
                   **options)  # type: ignore[arg-type]

    # --- on the event loop ----------------------------------------------------------
    async def open(self) -> None:
        server = await asyncio.start_server(self._accept, self.host, self.port,
                                            ssl=self.ssl_context, limit=LINE_LIMIT)
        self.port = server.sockets[0].getsockname()[1]
        self._servers.append(server)
        if self.control_port is not None:
            endpoint = ControlEndpoint(self.faults, self.stats)
            control = await asyncio.start_server(endpoint.handle, self.host, self.control_port)
            self.control_port = control.sockets[0].getsockname()[1]
            self._servers.append(control)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for session in list(self._sessions):
            session.shutdown()
        await asyncio.gather(*self._sessions.values(), return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers.clear()

    async def serve_forever(self, ready: asyncio.Event | None = None) -> None:
        await self.open()
        if ready is not None:
            ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        session = Session(self._context, reader, writer)
        self._sessions[session] = task
        try:
            await session.run(LINE_LIMIT)
        finally:
            del self._sessions[session]

    # --- from another thread --------------------------------------------------------
    def start(self) -> ExchangeProxy:
        loop = self._loop = asyncio.new_event_loop()
        loop.run_until_complete(self.open())
        self._thread = threading.Thread(target=loop.run_forever, name="exchange-proxy",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> ExchangeProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
