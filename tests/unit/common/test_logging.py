"""Secrets never reach the logs."""

from __future__ import annotations

from common.logging import REDACTED, SecretRedactor


def test_secret_keys_bearer_strings_and_jwts_are_masked() -> None:
    """Token-bearing keys, Bearer headers, JWTs and registered values are all redacted."""
    redactor = SecretRedactor(known_secrets=["s3cr3t-client-value"])
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    event = redactor(
        None,
        "info",
        {
            "event": f"calling with Bearer abcdefghijklmnop and {jwt}",
            "refresh_token": "0.AAAA-real-refresh",
            "nested": {"access_token": "xyz", "note": "secret is s3cr3t-client-value"},
            "error": "access_token=opaque123456 rejected",
        },
    )
    text = repr(event)
    for leaked in (
        "abcdefghijklmnop",
        jwt,
        "0.AAAA-real-refresh",
        "xyz",
        "s3cr3t-client-value",
        "opaque123456",
    ):
        assert leaked not in text
    assert event["refresh_token"] == REDACTED


def test_events_below_the_level_skip_the_processor_chain(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A debug event at INFO is dropped before timestamps and redaction run: the fetcher
    emits one per poll, which at 10,000 mailboxes a minute was measurable CPU."""
    import logging

    import structlog

    from common.logging import configure_logging

    saved = structlog.get_config()
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    calls: list[str] = []
    real_call = SecretRedactor.__call__

    def counting(self, logger, method, event_dict):  # type: ignore[no-untyped-def]
        calls.append(method)
        return real_call(self, logger, method, event_dict)

    monkeypatch.setattr(SecretRedactor, "__call__", counting)
    try:
        configure_logging(level="INFO")
        log = structlog.get_logger("test_logging_levels")
        log.debug("below_the_level")
        assert calls == []
        log.info("at_the_level")
        assert calls == ["info"]
    finally:
        structlog.configure(**saved)
        root.handlers[:], level = saved_root
        root.setLevel(level)


_SECRET_FORMS = [
    "Authorization: Bearer abcdefghijklmnop",
    "BEARER   abc.def-ghi_jkl",
    "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl in the middle",
    "eyJhbGciOi.eyJzdWIiO.",
    "access_token=opaque123456",
    "Refresh_Token : 'abc'",
    '{"id_token": "eyJx.y.z"}',
    "ID_TOKEN='quoted'",
]
_PLAIN_VALUES = ["document_written", "processed", "2f1c8a9e-3b7d-4c1e-9a2b-5d6e7f8a9b0c", ""]


def test_the_quick_check_lets_no_secret_form_through() -> None:
    """scrub skips its three substitutions for values the quick pattern finds nothing in:
    every form they redact must be found, and plain values come back as they were."""
    redactor = SecretRedactor()
    for text in _SECRET_FORMS:
        assert REDACTED in redactor.scrub(text), text
    for text in _PLAIN_VALUES:
        assert redactor.scrub(text) == text


_SERVICE_LOGGING = r"""
import logging, threading, structlog
from common.logging import configure_logging
configure_logging(level="INFO", process="processor")
log = structlog.get_logger("services.processor.process")
library = logging.getLogger("dramatiq.worker")

def write(n):
    for i in range(300):
        log.info("document_written", raw_id=i, thread=n, note="x" * 3000)
        library.warning("library line %s from %s", i, n)

threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
for t in threads: t.start()
for t in threads: t.join()
log.debug("below_the_level")
log.warning(
    "token_refused", access_token="eyJhbGciOi.eyJzdWIiO.sig", error="Bearer abcdefghijklmnop"
)
try:
    secret = "local-variable-secret"
    raise ValueError("boom")
except ValueError:
    log.exception("processing_failed")
"""


def test_a_service_writes_one_json_object_per_line_from_every_thread_and_library() -> None:
    """What a service writes to stderr, read as a log shipper reads it: every line one JSON
    object (Bandeja's events and libraries' records from several threads never
    interleave), each with its level, logger, time and process; secrets and the
    traceback's local variables left out; events below the level not written."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-c", _SERVICE_LOGGING],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]

    written = [e for e in lines if e["event"] == "document_written"]
    library = [e for e in lines if e["event"].startswith("library line")]
    assert (len(written), len(library)) == (1200, 1200)
    assert {e["logger"] for e in written} == {"services.processor.process"}
    assert {e["logger"] for e in library} == {"dramatiq.worker"}
    assert {(e["level"], e["process"]) for e in written} == {("info", "processor")}
    assert {(e["level"], e["process"]) for e in library} == {("warning", "processor")}
    assert all(e["timestamp"].endswith("Z") for e in lines)
    assert not [e for e in lines if e["event"] == "below_the_level"]

    refused = next(e for e in lines if e["event"] == "token_refused")
    assert refused["access_token"] == REDACTED
    assert "abcdefghijklmnop" not in refused["error"]
    failed = next(e for e in lines if e["event"] == "processing_failed")
    assert failed["level"] == "error"
    assert failed["exception"][0]["exc_type"] == "ValueError"
    assert "local-variable-secret" not in done.stderr
