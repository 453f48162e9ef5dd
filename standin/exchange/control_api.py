"""A tiny JSON-over-HTTP control endpoint for the demo (tests use `proxy.faults` directly).

    GET  /stats                      → counters (ProxyStats.snapshot)
    POST /stats/reset
    POST /faults/<method>  {kwargs}  → Faults.<method>(**kwargs), e.g.
         /faults/throttle {"match": "contoso.example", "backoff_ms": 500}

Plain HTTP on 127.0.0.1 only; the stand-in is a test fixture.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from standin.exchange.faults import Faults
from standin.exchange.stats import ProxyStats

FAULT_METHODS = frozenset({"reset", "throttle", "clear_throttle", "not_connected",
                           "clear_not_connected", "set_connection_limit", "random_byes",
                           "bye_mid_fetch", "oversized_literal", "hide_sizes"})
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found"}


class ControlEndpoint:
    def __init__(self, faults: Faults, stats: ProxyStats) -> None:
        self.faults, self.stats = faults, stats

    def dispatch(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if method == "GET" and path == "/stats":
            return 200, self.stats.snapshot()
        if method == "POST" and path == "/stats/reset":
            self.stats.reset()
            return 200, {}
        name = path.removeprefix("/faults/")
        if method == "POST" and name in FAULT_METHODS:
            try:
                getattr(self.faults, name)(**body)
            except TypeError as exc:
                return 400, {"error": str(exc)}
            return 200, {}
        return 404, {"error": f"no route {method} {path}"}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, path, _ = request.split("\r\n", 1)[0].split(" ", 2)
            length = 0
            for header in request.split("\r\n")[1:]:
                name, _, value = header.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            raw = await reader.readexactly(length) if length else b""
            status, answer = self.dispatch(method, path, json.loads(raw or b"{}"))
        except (ValueError, asyncio.IncompleteReadError) as exc:
            status, answer = 400, {"error": str(exc)}
        payload = json.dumps(answer).encode()
        writer.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                     + payload)
        await writer.drain()
        writer.close()
