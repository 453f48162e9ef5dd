"""What Exchange Online says, as plain functions on lines (docs/architecture.md#exo-capabilities,
#exo-responses, #exo-limits).

The stand-in's Dovecot says more than Exchange does (CONDSTORE, ENABLE, SPECIAL-USE, …);
Bandeja must not come to depend on any of it, so the proxy hides it and refuses it.
"""

from __future__ import annotations

import base64
import re

PRE_AUTH = ("IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS ID UNSELECT CHILDREN "
            "IDLE NAMESPACE LITERAL+")
POST_AUTH = ("IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT "
             "CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN "
             "IDLE NAMESPACE LITERAL+")

BAD_COMMAND = "Command Error. 12"
AUTH_OK = "AUTHENTICATE completed."
AUTH_FAILED = "AUTHENTICATE failed."
NOT_CONNECTED = "User is authenticated but not connected."
TOKEN_EXPIRED = "Session invalidated - AccessTokenExpired"
CONNECTION_CLOSED = "Connection closed. 14"
SIGNING_OFF = "Microsoft Exchange Server IMAP4 server signing off."
IDLE_ACCEPTED = "+ IDLE accepted, awaiting DONE command.\r\n"

# Verbs Exchange does not implement (none of them is in its CAPABILITY).
UNSUPPORTED_VERBS = frozenset({
    "ENABLE", "COMPRESS", "GETQUOTA", "GETQUOTAROOT", "SETQUOTA", "GETMETADATA",
    "SETMETADATA", "NOTIFY", "REPLACE", "UID REPLACE", "ESEARCH", "SORT", "UID SORT",
    "THREAD", "UID THREAD",
})
# CONDSTORE/QRESYNC modifiers (RFC 7162) Exchange would not understand.
_MODSEQ_WORDS = re.compile(r"\b(CHANGEDSINCE|UNCHANGEDSINCE|CONDSTORE|QRESYNC|VANISHED|"
                           r"HIGHESTMODSEQ|MODSEQ)\b", re.IGNORECASE)
_MODSEQ_VERBS = frozenset({"FETCH", "UID FETCH", "STORE", "UID STORE", "SELECT", "EXAMINE",
                           "SEARCH", "UID SEARCH", "STATUS"})
_CAPABILITY_CODE = re.compile(r"\[CAPABILITY [^\]]*\]\s*", re.IGNORECASE)
_HIDDEN_CODES = re.compile(r"^\* OK \[(HIGHESTMODSEQ|NOMODSEQ)\b", re.IGNORECASE)


def greeting(backend: str = "AM0PR01MB0001.eurprd01.prod.exchangelabs.com") -> bytes:
    name = base64.b64encode(backend.encode()).decode()
    return f"* OK The Microsoft Exchange IMAP4 service is ready. [{name}]\r\n".encode()


def capabilities(authenticated: bool) -> str:
    return POST_AUTH if authenticated else PRE_AUTH


def is_unsupported(verb: str, args: str) -> bool:
    """A command Exchange answers with `BAD Command Error. 12`."""
    if verb in UNSUPPORTED_VERBS:
        return True
    return verb in _MODSEQ_VERBS and _MODSEQ_WORDS.search(args) is not None


def untagged(text: str) -> bytes:
    return f"* {text}\r\n".encode()


def tagged(tag: str, status: str, text: str) -> bytes:
    return f"{tag} {status} {text}\r\n".encode()


def rewrite_untagged(line: bytes, authenticated: bool) -> bytes | None:
    """Exchange's version of an untagged line from Dovecot; None drops it."""
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    upper = text.upper()
    if upper.startswith("* CAPABILITY"):
        return untagged(f"CAPABILITY {capabilities(authenticated)}")
    if _HIDDEN_CODES.match(text):
        return None
    if upper.startswith("* BYE"):
        return untagged(f"BYE {SIGNING_OFF}")
    if upper.startswith("* OK [CAPABILITY"):
        return untagged("OK " + _CAPABILITY_CODE.sub("", text[5:]))
    return line


def completion(tag: str, status: str, rest: str, verb: str) -> bytes:
    """A tagged reply in Exchange's words: response code kept, `<VERB> completed.`

    Dovecot appends timings (`Fetch completed (0.001 + 0.000 secs).`); Exchange says
    `FETCH completed.` and never carries a CAPABILITY response code.
    """
    rest = _CAPABILITY_CODE.sub("", rest)
    code = ""
    if rest.startswith("["):
        end = rest.find("]")
        code, rest = rest[: end + 1] + " ", rest[end + 1 :].strip()
    if status.upper() == "OK" and verb:
        rest = f"{verb.removeprefix('UID ')} completed."
    return tagged(tag, status.upper(), (code + rest).strip())
