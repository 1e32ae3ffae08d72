"""Placeholder tokens: how content Markdown cannot express stays visible and movable.

A placeholder is ``⟦<id>:<kind>⟧`` or ``⟦<id>:<kind> <hint>⟧``, e.g. ``⟦3:info Before you
begin⟧``.  The mathematical brackets are not Markdown syntax, so CommonMark leaves the
token intact both as a paragraph of its own (block constructs) and inside text (inline
constructs), and agents rarely "fix" them.  Only the id matters when reading an edit back:
the hint is for the reader and may be changed or dropped.  The original storage of each
token lives in the view's table, never in the text, which keeps the view small.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

OPEN = "\u27e6"  # ⟦
CLOSE = "\u27e7"  # ⟧

#: A complete token; group 1 is the id.
TOKEN_RE = re.compile(OPEN + r"(\d+):[^" + CLOSE + OPEN + r"\n]*" + CLOSE)
#: Anything that looks like the start of a token, for reporting malformed ones.
TOKEN_START_RE = re.compile(OPEN + r"\s*\d+\s*:")

_HINT_MAX = 32
_HINT_PUNCT = frozenset(" .,:;'\"/()@+=%-")

PlaceholderRole = Literal["block", "inline", "structure"]


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One hidden piece of storage and the token that stands for it.

    ``role`` is ``block`` for constructs that stand alone between blocks, ``inline`` for
    constructs inside text, and ``structure`` for layout tags that must keep their order.
    ``group`` ties the structure tokens of one layout together.
    """

    id: int
    kind: str
    hint: str
    storage: str
    role: PlaceholderRole
    group: int = 0

    @property
    def token(self) -> str:
        """The token as it appears in the Markdown view."""
        return make_token(self.id, self.kind, self.hint)


def clean_hint(text: str, limit: int = _HINT_MAX) -> str:
    """A short, Markdown-inert hint: no emphasis/link characters, one line, bounded."""
    kept = "".join(
        "-"
        if ch == "_"
        else ch
        if (ch.isalnum() or ch in _HINT_PUNCT) and ch not in (OPEN, CLOSE)
        else " "
        for ch in text
    )
    cleaned = " ".join(kept.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "\u2026"
    return cleaned


def make_token(ident: int, kind: str, hint: str = "") -> str:
    """Render a token; kind and hint are assumed already cleaned."""
    body = f"{ident}:{kind}" + (f" {hint}" if hint else "")
    return OPEN + body + CLOSE
