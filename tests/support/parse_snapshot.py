"""What ``parse_message`` gives for every mail of both corpora, as JSON of plain values and
hashes, so a change of parser can be compared with the outputs it replaced, mail by mail.

    .venv/bin/python -m tests.support.parse_snapshot   # rewrite the committed snapshot

Regenerate only on purpose: the committed file is the reference the parser is held to
(tests/unit/processor/test_parsing_snapshot.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from common.errors import UnparseableMail
from services.processor.parsing import ParsedMail, parse_message
from tests.support.corpus import OWN_CORPUS, SHARED_CORPUS, mail_files

SNAPSHOT = Path(__file__).resolve().parents[1] / "fixtures" / "mail" / "parse_snapshot.json"
CORPUS_ROOTS = {"own": OWN_CORPUS, "shared": SHARED_CORPUS}


def _sha(text: str | None) -> str | None:
    if text is None:
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def summary(mail: ParsedMail) -> dict[str, Any]:
    """Every field a document is built from; bodies and file contents as SHA-256."""
    return {
        "message_id": mail.message_id,
        "subject": mail.subject,
        "from": mail.from_,
        "from_address": mail.from_address,
        "to": mail.to,
        "date": mail.date.isoformat() if mail.date else None,
        "text_body_sha256": _sha(mail.text_body),
        "html_body_sha256": _sha(mail.html_body),
        "attachments": [
            {
                "filename": a.filename,
                "original_filename": a.original_filename,
                "content_type": a.content_type,
                "disposition": a.disposition,
                "content_id": a.content_id,
                "source": a.source,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in mail.attachments
        ],
        "invoices": [
            {"format": i.format, "filename": i.filename, "fields": i.fields} for i in mail.invoices
        ],
        "defects": mail.defects,
    }


def outcome(raw: bytes) -> dict[str, Any]:
    """The summary of a parsed mail, or the reason it was refused."""
    try:
        return {"parsed": summary(parse_message(raw))}
    except UnparseableMail as exc:
        return {"unparseable": exc.reason}


def snapshot(corpus: str) -> dict[str, dict[str, Any]]:
    root = CORPUS_ROOTS[corpus]
    return {str(p.relative_to(root)): outcome(p.read_bytes()) for p in mail_files(root)}


def main() -> None:
    data = {corpus: snapshot(corpus) for corpus in CORPUS_ROOTS}
    SNAPSHOT.write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}: " + ", ".join(f"{c} {len(m)} mails" for c, m in data.items()))


if __name__ == "__main__":
    main()
