"""One client connection: two pumps (client→Dovecot, Dovecot→client) and a token watch.

The proxy finishes the SASL exchange itself (answering `+` to an AUTHENTICATE without an
initial response, as CPython's imaplib sends it) and logs in upstream with SASL-IR, so it
knows the user and bearer token before Dovecot sees the login and can refuse it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass

from standin.exchange import personality as exo
from standin.exchange.faults import Faults
from standin.exchange.framing import (
    Command,
    Response,
    literal_at_end,
    parse_command,
    read_line,
    read_literal,
    read_response,
    split_response,
)
from standin.exchange.sasl import MECHANISMS, Credentials, SaslError, decode
from standin.exchange.stats import ProxyStats
from standin.exchange.tokens import TokenChecker

log = logging.getLogger(__name__)
_FETCH_VERBS = frozenset({"FETCH", "UID FETCH"})
_RFC822_SIZE = re.compile(rb" ?RFC822\.SIZE \d+")
_LITERAL_SIZE = re.compile(rb"\{\d+\}(?=\r?\n\Z)")


@dataclass
class Context:
    """What every session shares with the proxy."""

    faults: Faults
    stats: ProxyStats
    checker: TokenChecker | None
    upstream_host: str
    upstream_port: int
    token_check_interval: float


class _Ended(Exception):
    """The session is over (BYE sent, or a reply that Exchange follows with a close)."""


class Session:
    def __init__(self, context: Context, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.ctx = context
        self.client_reader, self.client_writer = reader, writer
        self.id = context.stats.session_opened()
        self.credentials: Credentials | None = None
        self.authenticated = False
        self.logged_in = False  # counted in stats.login, i.e. holds a session slot
        self.slot_held = False
        self.not_connected = False
        self.closed = False
        self.verbs: dict[str, str] = {}
        self.auth_pending: Credentials | None = None
        self.auth_tag: str | None = None
        self.idle_tag: str | None = None
        self.fetch_lines = 0
        self.bye_after: int | None = None
        self.hide_sizes = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def user(self) -> str | None:
        return self.credentials.user if self.credentials else None

    # --- life cycle -----------------------------------------------------------------
    async def run(self, upstream_limit: int) -> None:
        try:
            self.up_reader, self.up_writer = await asyncio.open_connection(
                self.ctx.upstream_host, self.ctx.upstream_port, limit=upstream_limit)
        except OSError:
            log.exception("upstream IMAP unreachable")
            await _close(self.client_writer)
            return
        tasks = self._tasks
        try:
            await read_response(self.up_reader)  # Dovecot's greeting; Exchange's instead
            await self._send(exo.greeting())
            tasks.extend(asyncio.create_task(coro) for coro in
                         (self._client_pump(), self._upstream_pump(), self._watch_token()))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("session %s failed", self.id, exc_info=task.exception())
        except (EOFError, ConnectionError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._release()
            await _close(self.client_writer)
            await _close(self.up_writer)

    def shutdown(self) -> None:
        """End the session from outside (the proxy stops); `run` then cleans up."""
        for task in self._tasks:
            task.cancel()

    def _release(self) -> None:
        holder = self.auth_pending or self.credentials
        if self.slot_held and holder is not None:
            self.ctx.stats.release(holder.user, self.logged_in)
        self.slot_held = False

    async def _send(self, data: bytes | Response) -> None:
        if isinstance(data, Response):
            for part in data.parts:
                self.client_writer.write(part)
        else:
            self.client_writer.write(data)
        await self.client_writer.drain()

    async def _bye(self, reason: str, text: str) -> None:
        if not self.closed:
            self.closed = True
            self.ctx.stats.bye(reason)
            with contextlib.suppress(ConnectionError):
                await self._send(exo.untagged(f"BYE {text}"))
        raise _Ended

    async def _token_active(self) -> bool:
        token = self.credentials.token if self.credentials else None
        if token is None or self.ctx.checker is None:
            return True
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.ctx.checker.active, token)

    async def _watch_token(self) -> None:
        with contextlib.suppress(_Ended, ConnectionError):
            while True:
                await asyncio.sleep(self.ctx.token_check_interval)
                if self.authenticated and not await self._token_active():
                    await self._bye("token_expired", exo.TOKEN_EXPIRED)

    # --- client → Dovecot -----------------------------------------------------------
    async def _client_pump(self) -> None:
        with contextlib.suppress(_Ended, EOFError, ConnectionError):
            while True:
                line = await read_line(self.client_reader)
                if self.idle_tag is not None:
                    self.idle_tag = None  # anything ends IDLE (RFC 2177 wants DONE)
                    await self._upstream(line)
                    continue
                await self._command(parse_command(line))

    async def _upstream(self, data: bytes) -> None:
        self.up_writer.write(data)
        await self.up_writer.drain()

    async def _forward(self, command: Command) -> None:
        await self._upstream(command.line)
        literal = command.literal
        while literal is not None:
            await self._upstream(await read_literal(self.client_reader, literal.size))
            line = await read_line(self.client_reader)
            await self._upstream(line)
            literal = literal_at_end(line)

    async def _refuse(self, command: Command, status: str, text: str) -> None:
        """Answer a command ourselves; a LITERAL+ literal already on its way is discarded.

        A synchronizing literal is never sent: the client waits for `+` and gets the tagged
        reply instead (RFC 3501 §7.5).
        """
        literal = command.literal
        while literal is not None and not literal.synchronizing:
            await read_literal(self.client_reader, literal.size)
            literal = literal_at_end(await read_line(self.client_reader))
        await self._send(exo.tagged(command.tag, status, text))

    async def _command(self, command: Command) -> None:
        stats, faults, user = self.ctx.stats, self.ctx.faults, self.user
        stats.command(command.verb or "?")
        if user and self.authenticated:
            stats.event(user, "command", command.verb, self.id)
        if not await self._token_active():
            await self._bye("token_expired", exo.TOKEN_EXPIRED)
        if faults.roll_random_bye():
            await self._bye("random", exo.CONNECTION_CLOSED)
        if self.not_connected:
            await self._refuse(command, "BAD", exo.NOT_CONNECTED)
            raise _Ended  # Exchange drops the connection after this reply
        if command.verb == "AUTHENTICATE":
            await self._authenticate(command)
            return
        if user and self.authenticated and command.verb != "LOGOUT":
            throttle = faults.take_throttle(user)
            if throttle is not None:
                await self._refuse(command, throttle.status, throttle.text)
                stats.event(user, "throttled", command.verb, self.id)
                if throttle.disconnect:
                    raise _Ended
                return
        if exo.is_unsupported(command.verb, command.args):
            await self._refuse(command, "BAD", exo.BAD_COMMAND)
            return
        if command.verb == "IDLE":
            self.idle_tag = command.tag
        if command.verb in _FETCH_VERBS:
            self.fetch_lines = 0
            self.bye_after = faults.take_mid_fetch(user or "")
            self.hide_sizes = faults.take_sizes_hidden(user or "")
        self.verbs[command.tag] = command.verb
        await self._forward(command)

    async def _authenticate(self, command: Command) -> None:
        mechanism, _, initial = command.args.partition(" ")
        mechanism = mechanism.upper()
        if self.authenticated or mechanism not in MECHANISMS:
            await self._refuse(command, "BAD", exo.BAD_COMMAND)
            return
        if not initial:
            await self._send(b"+ \r\n")
            initial = (await read_line(self.client_reader)).decode("ascii", "replace").strip()
        if initial == "*":  # the client cancels (RFC 3501 §6.2.2)
            await self._send(exo.tagged(command.tag, "BAD", exo.BAD_COMMAND))
            return
        try:
            credentials = decode(mechanism, "" if initial == "=" else initial)
        except SaslError:
            await self._send(exo.tagged(command.tag, "NO", exo.AUTH_FAILED))
            return
        self.ctx.stats.event(credentials.user, "authenticate", mechanism, self.id)
        limit, refusal = self.ctx.faults.connection_limit
        self.slot_held = self.ctx.stats.reserve(credentials.user, limit)
        if not self.slot_held and refusal == "auth_failed":
            await self._send(exo.tagged(command.tag, "NO", exo.AUTH_FAILED))
            return
        self.auth_pending, self.auth_tag = credentials, command.tag
        self.verbs[command.tag] = "AUTHENTICATE"
        await self._upstream(f"{command.tag} AUTHENTICATE {mechanism} {initial}\r\n".encode())

    # --- Dovecot → client -----------------------------------------------------------
    async def _upstream_pump(self) -> None:
        with contextlib.suppress(_Ended, EOFError, ConnectionError):
            while True:
                response = await read_response(self.up_reader)
                kind, second, rest = split_response(response.first)
                if kind == "+":
                    await self._continuation(response)
                elif kind == "*":
                    await self._untagged(response, second, rest)
                else:
                    await self._tagged(kind, second, rest)

    async def _continuation(self, response: Response) -> None:
        if self.auth_tag is not None:
            # Dovecot's SASL error challenge (RFC 7628 §3.2.2); Exchange just says NO.
            await self._upstream(b"\r\n")
        elif self.idle_tag is not None:
            await self._send(exo.IDLE_ACCEPTED.encode())
        else:
            await self._send(response)

    async def _untagged(self, response: Response, number: str, rest: str) -> None:
        line = exo.rewrite_untagged(response.first, self.authenticated)
        if line is None:
            return
        response.parts[0] = line
        if number.isdigit() and rest.upper().startswith("FETCH"):
            await self._hostile_fetch(response)
        await self._send(response)
        if number.isdigit() and rest.upper().startswith("FETCH"):
            self.fetch_lines += 1
            if self.bye_after is not None and self.fetch_lines >= self.bye_after:
                await self._bye("mid_fetch", exo.CONNECTION_CLOSED)

    async def _hostile_fetch(self, response: Response) -> None:
        """What the oversized_literal and hide_sizes switches do to one FETCH reply."""
        if self.hide_sizes:
            response.parts[0] = _RFC822_SIZE.sub(b"", response.parts[0]).replace(b"( ", b"(")
        if len(response.parts) > 1:
            size = self.ctx.faults.take_oversized_literal(self.user or "")
            if size is not None:
                # Announce it, send none of it, and hang up: nothing can follow such a claim.
                await self._send(_LITERAL_SIZE.sub(b"{%d}" % size, response.parts[0]))
                raise _Ended

    async def _tagged(self, tag: str, status: str, rest: str) -> None:
        verb = self.verbs.pop(tag, "")
        if tag == self.auth_tag:
            await self._auth_result(tag, status.upper() == "OK")
            return
        if verb in _FETCH_VERBS:
            self.bye_after = None
        await self._send(exo.completion(tag, status, rest, verb))

    async def _auth_result(self, tag: str, ok: bool) -> None:
        credentials, self.auth_pending, self.auth_tag = self.auth_pending, None, None
        assert credentials is not None
        if not ok:
            self.ctx.stats.auth_failed(credentials.user)
            if self.slot_held:
                self.ctx.stats.release(credentials.user, False)
                self.slot_held = False
            await self._send(exo.tagged(tag, "NO", exo.AUTH_FAILED))
            return
        self.credentials, self.authenticated = credentials, True
        if self.slot_held:
            self.ctx.stats.login(credentials.user)
            self.logged_in = True
        self.not_connected = (not self.slot_held
                              or self.ctx.faults.take_not_connected(credentials.user))
        await self._send(exo.tagged(tag, "OK", exo.AUTH_OK))


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2)
