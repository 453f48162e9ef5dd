"""structlog set-up shared by every process: JSON lines, secrets redacted, no locals.

``dict_tracebacks`` would log every frame's local variables by default, tokens included
(docs/architecture.md#ops-structlog), so tracebacks are rendered with ``show_locals=False``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from contextlib import nullcontext
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from common.tracing import add_trace_ids

SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "client_secret",
        "client_assertion",
        "authorization",
        "password",
        "code",
        "code_verifier",
        "token_cache",
        "auth_string",
        "admin_token",
        "token_keys",
    }
)
REDACTED = "[redacted]"
# Bearer credentials and JWTs (three base64url segments) wherever they hide in a string.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    re.compile(r"(?i)((?:access|refresh|id)_token[\"']?\s*[:=]\s*[\"']?)[^\s\"',&]+"),
)

# Matches wherever one of the patterns above could (and in a few more places: any case,
# nothing required after a token's "="), so a value it misses has nothing to redact.
_MAYBE_SECRET = re.compile(
    r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\."
    r"|(?:access|refresh|id)_token[\"']?\s*[:=]"
)


_SCALARS = (int, float, type(None))


class SecretRedactor:
    """A structlog processor that masks secret keys, bearer strings and known secret values."""

    def __init__(self, known_secrets: Iterable[str] = ()) -> None:
        self._known = sorted({s for s in known_secrets if len(s) >= 6}, key=len, reverse=True)

    def add_known_secret(self, value: str) -> None:
        if len(value) >= 6 and value not in self._known:
            self._known.append(value)
            self._known.sort(key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._known:
            text = text.replace(secret, REDACTED)
        if _MAYBE_SECRET.search(text) is None:  # most values: one scan instead of three subs
            return text
        text = _SECRET_PATTERNS[0].sub(r"\1" + REDACTED, text)
        text = _SECRET_PATTERNS[1].sub(REDACTED, text)
        return _SECRET_PATTERNS[2].sub(r"\1" + REDACTED, text)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: REDACTED if k in SECRET_KEYS else self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():  # values replaced in place: no key added
            if key.lower() in SECRET_KEYS:
                event_dict[key] = REDACTED
            elif type(value) is str:
                event_dict[key] = self.scrub(value)
            elif not isinstance(value, _SCALARS):  # numbers cannot hold a secret
                event_dict[key] = self._clean(value)
        return event_dict


redactor = SecretRedactor()


def configure_logging(*, level: str = "INFO", fmt: str = "json", process: str = "") -> None:
    """Route structlog and stdlib logging (dramatiq, pika, psycopg) through one JSON pipeline."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
        redactor,
        # Added after the redactor, which need not scan what cannot hold a secret.
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_trace_ids,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if process:
        shared.append(_bind_process(process))
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    # Libraries' stdlib records (dramatiq, pika, psycopg) reach the same chain here.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    structlog.configure(
        # Bandeja's own events are rendered by structlog and written to the handler's
        # stream, skipping the stdlib's record, caller lookup and formatter: 137-140 µs
        # of CPU per line before, 55 after, and the processor writes one per document
        # (BENCHMARKS.md).
        # An event below the level is dropped before the chain runs: the fetcher logs a
        # debug one per poll, 167 a second at 10,000 mailboxes.
        processors=[*shared, renderer],
        logger_factory=_HandlerWriterFactory(handler),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika narrates every frame at INFO; its failures still surface as WARNING+.
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


class _HandlerWriter:
    """Where one named structlog logger's rendered lines go: the stdlib handler's stream,
    under the handler's lock, so that they never interleave with the libraries' lines."""

    def __init__(self, handler: logging.StreamHandler[Any], name: str) -> None:
        self._handler = handler
        self.name = name  # read by structlog.stdlib.add_logger_name

    def msg(self, message: str) -> None:
        with self._handler.lock or nullcontext():
            stream = self._handler.stream
            stream.write(message + "\n")
            stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


class _HandlerWriterFactory:
    def __init__(self, handler: logging.StreamHandler[Any]) -> None:
        self._handler = handler

    def __call__(self, name: str = "", *_args: Any) -> _HandlerWriter:
        return _HandlerWriter(self._handler, name)


def _bind_process(process: str) -> Any:
    def add_process(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("process", process)
        return event_dict

    return add_process
