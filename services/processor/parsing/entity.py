"""The one way bytes become a MIME tree: the outer mail and anything unwrapped from it
(the content of an opaque S/MIME blob) pass the same structure checks and are parsed with
the same bounded policy, so a limit of the outer mail cannot be stepped around by
wrapping the hostile part in another layer."""

from __future__ import annotations

import email.parser
from email.message import Message
from email.policy import Policy

from . import guard
from .model import ParseLimits
from .split import split_tree


def read_entity(data: bytes, limits: ParseLimits, policy: Policy) -> Message:
    """``data`` as a message tree, or ``UnparseableMail`` if its structure is over the
    limits. ``policy`` is the outer mail's: the bounded one, or compat32 when the bounded
    one failed on that mail."""
    # Most mail is well formed and split.py builds its tree several times faster; what
    # it cannot reproduce exactly goes to the standard feed parser. The split bounds its
    # own work (parts, depth, delimiter lines), so the structure guard, a few passes over
    # the whole mail (3 ms a MB, 40 % of a 1 MB mail's parse), runs only before the feed
    # parser, whose cost grows with parts x nesting.
    tree = split_tree(data, limits, policy)
    if tree is not None:
        return tree
    guard.check_structure(data, limits)
    return email.parser.BytesParser(policy=policy).parsebytes(data)
