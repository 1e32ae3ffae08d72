"""The marker put where a page body was cut, and the check that refuses writing it back.

A body read in pieces ends with the marker; if an agent sends such a body back as a page
update, everything after the marker would be deleted.  Writers call
:func:`contains_truncation_marker` and refuse.
"""

from __future__ import annotations

import re

#: ``… [truncated: 3769 more characters; read with offset=4000]``
TRUNCATION_MARKER_FORMAT = (
    "\u2026 [truncated: {remaining} more characters; read with offset={offset}]"
)
#: ``… [truncated: 3769 more characters]``: a value cut where no offset continues it (a
#: field of a listing); writing it back is refused all the same.
CUT_MARKER_FORMAT = "\u2026 [truncated: {remaining} more characters]"

# Tolerant of what agents do to it: "..." for "…", changed spacing, singular "character";
# and the cut marker this runner used before 1.2.0 ("... [3769 more characters]").
_MARKER_RE = re.compile(
    r"(?:\u2026|\.\.\.)?\s*\[\s*truncated:\s*\d+\s+more\s+characters?\s*"
    r"(?:;\s*read\s+with\s+offset\s*=\s*\d+\s*)?\]"
    r"|\.\.\.\s*\[\d+\s+more\s+characters\]",
    re.IGNORECASE,
)


def truncation_marker(remaining: int, offset: int) -> str:
    """The marker for a body cut at ``offset`` with ``remaining`` characters left."""
    return TRUNCATION_MARKER_FORMAT.format(remaining=remaining, offset=offset)


def truncate(text: str, limit: int, *, offset: int = 0) -> str:
    """``text[offset:offset+limit]``, with a marker appended when more text follows."""
    end = offset + limit
    piece = text[offset:end]
    if end < len(text):
        piece += "\n" + truncation_marker(len(text) - end, end)
    return piece


def cut(text: str, limit: int) -> str:
    """``text[:limit]`` and the cut marker, or ``text`` when it fits."""
    if len(text) <= limit:
        return text
    return text[:limit] + CUT_MARKER_FORMAT.format(remaining=len(text) - limit)


def contains_truncation_marker(text: str) -> bool:
    """True if ``text`` carries a truncation marker (so it must not be written back)."""
    return _MARKER_RE.search(text) is not None
