"""What the review templates show, computed in Python so the templates only lay it out.

Why it is built this way:

- Everything a ticket carries came from an agent: templates autoescape it, and nothing
  here builds markup.  The diff is handed over as rows of text segments, each marked
  changed or not, and the template wraps them in ``<del>``/``<ins>``.
- The side-by-side diff is rebuilt from the unified diff the ticket holds (``review.diff``)
  so it shows exactly what the runner computed, removed lines paired with the added lines
  that replace them, and word-level changes marked within a pair.
- ``review.losses`` (what an update would drop: macros, links, ...) and ``review.counts``
  (before -> after) are shown first when present, in whatever simple shape they come.
"""

from __future__ import annotations

import difflib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from harbor_confluence.review.queue import OPEN_STATES, Ticket

__all__ = [
    "DiffRow",
    "ReviewView",
    "diff_rows",
    "duration",
    "iso",
    "request_view",
    "review_view",
]

MAX_BODY_CHARS = 200_000
MAX_DIFF_ROWS = 4000
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$")
_WORDS = re.compile(r"\s+|\w+|[^\w\s]")


def iso(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def duration(seconds: float) -> str:
    """A short human duration: "2 h 5 min", "45 s"."""
    s = max(0, int(seconds))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def ago(ts: float, now: float) -> str:
    return f"{duration(now - ts)} ago"


# -- the request ----------------------------------------------------------------------------


def _pretty(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    if len(text) > MAX_BODY_CHARS:
        return text[:MAX_BODY_CHARS] + f"\n... [{len(text) - MAX_BODY_CHARS} more characters]"
    return text


def request_view(t: Ticket, route: str | None) -> dict[str, Any]:
    """Method, route, path, query parameters, body (pretty JSON) and storage content."""
    parts = urlsplit(t.url)
    view: dict[str, Any] = {
        "method": t.method,
        "route": route,
        "path": parts.path,
        "origin": f"{parts.scheme}://{parts.netloc}",
        "query": parse_qsl(parts.query, keep_blank_values=True),
        "content_type": t.content_type,
        "headers": sorted(t.headers.items()),
        "body": None,
        "content": None,
    }
    if t.body is not None:
        body = t.to_dict()["request"].get("body")
        view["body"] = _pretty(body)
        content = _storage_value(body)
        if content is not None:
            view["content"] = content[:MAX_BODY_CHARS]
    return view


def _storage_value(body: Any) -> str | None:
    """The page content a create or update carries (``body.value``), shown as text."""
    if not isinstance(body, dict):
        return None
    inner = body.get("body")
    if isinstance(inner, dict):
        value = inner.get("value")
        if isinstance(value, str):
            return value
        for rep in ("storage", "atlas_doc_format", "wiki"):
            nested = inner.get(rep)
            if isinstance(nested, dict) and isinstance(nested.get("value"), str):
                return str(nested["value"])
    return None


# -- the diff -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    """One side of a diff row: line number, kind and text segments (text, changed?)."""

    number: int | None
    kind: str  # "context", "removed", "added", "empty"
    segments: tuple[tuple[str, bool], ...] = ()


@dataclass(frozen=True, slots=True)
class DiffRow:
    """A row of the side-by-side diff, or a hunk header (``hunk`` set, cells empty)."""

    left: Cell
    right: Cell
    hunk: str | None = None


_EMPTY = Cell(None, "empty")


def _marked(a: str, b: str) -> tuple[tuple[tuple[str, bool], ...], tuple[tuple[str, bool], ...]]:
    """Word-level changes between a removed and an added line."""
    wa, wb = _WORDS.findall(a), _WORDS.findall(b)
    if len(wa) * len(wb) > 40_000:  # too long to compare word by word: the whole line
        return ((a, True),), ((b, True),)
    left: list[tuple[str, bool]] = []
    right: list[tuple[str, bool]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
        same = op == "equal"
        if i2 > i1:
            left.append(("".join(wa[i1:i2]), not same))
        if j2 > j1:
            right.append(("".join(wb[j1:j2]), not same))
    return tuple(left), tuple(right)


def _align(removed: list[str], added: list[str]) -> list[tuple[int | None, int | None]]:
    """Pair each removed line with the added line most like it (in order), so an edited
    line sits beside its new form and a deleted one beside a gap."""
    if len(removed) * len(added) > 2500:  # a big block: side by side in order
        n = max(len(removed), len(added))
        return [(i if i < len(removed) else None, i if i < len(added) else None) for i in range(n)]
    out: list[tuple[int | None, int | None]] = []
    j = 0
    for i, text in enumerate(removed):
        best, best_k = 0.0, None
        for k in range(j, len(added)):
            matcher = difflib.SequenceMatcher(None, text, added[k], autojunk=False)
            if matcher.quick_ratio() > best:
                ratio = matcher.ratio()
                if ratio > best:
                    best, best_k = ratio, k
        if best_k is not None and best >= 0.5:
            out.extend((None, k) for k in range(j, best_k))
            out.append((i, best_k))
            j = best_k + 1
        else:
            out.append((i, None))
    out.extend((None, k) for k in range(j, len(added)))
    return out


def diff_rows(unified: str) -> tuple[list[DiffRow], bool]:
    """Side-by-side rows from a unified diff; returns (rows, cut short)."""
    rows: list[DiffRow] = []
    removed: list[tuple[int, str]] = []
    added: list[tuple[int, str]] = []
    left_no = right_no = 0

    def flush() -> None:
        for i, j in _align([t for _, t in removed], [t for _, t in added]):
            a = removed[i] if i is not None else None
            b = added[j] if j is not None else None
            if a is not None and b is not None:
                la, lb = _marked(a[1], b[1])
                rows.append(DiffRow(Cell(a[0], "removed", la), Cell(b[0], "added", lb)))
            elif a is not None:
                rows.append(DiffRow(Cell(a[0], "removed", ((a[1], False),)), _EMPTY))
            elif b is not None:
                rows.append(DiffRow(_EMPTY, Cell(b[0], "added", ((b[1], False),))))
        removed.clear()
        added.clear()

    for line in unified.splitlines():
        if len(rows) >= MAX_DIFF_ROWS:
            return rows, True
        if line.startswith(("--- ", "+++ ")) and not removed and not added and left_no == 0:
            continue
        m = _HUNK.match(line)
        if m:
            flush()
            left_no, right_no = int(m.group(1)), int(m.group(2))
            rows.append(DiffRow(_EMPTY, _EMPTY, hunk=line))
            continue
        if line.startswith("-"):
            removed.append((left_no, line[1:]))
            left_no += 1
        elif line.startswith("+"):
            added.append((right_no, line[1:]))
            right_no += 1
        elif line.startswith(" ") or line == "":
            flush()
            text = line[1:]
            rows.append(
                DiffRow(
                    Cell(left_no, "context", ((text, False),)),
                    Cell(right_no, "context", ((text, False),)),
                )
            )
            left_no += 1
            right_no += 1
        elif line.startswith("\\"):
            continue  # "\ No newline at end of file"
        else:  # "... [N more characters of diff]" and anything unexpected: a note row
            flush()
            rows.append(DiffRow(_EMPTY, _EMPTY, hunk=line))
    flush()
    return rows, False


# -- the review context ---------------------------------------------------------------------


@dataclass(slots=True)
class ReviewView:
    """``ticket.review`` laid out for the page."""

    kind: str | None = None
    facts: list[tuple[str, str]] = field(default_factory=list)
    stale: bool = False
    note: str | None = None
    losses: list[str] = field(default_factory=list)
    counts: list[tuple[str, str, str, bool]] = field(
        default_factory=list
    )  # name, before, after, fewer
    diff: list[DiffRow] = field(default_factory=list)
    diff_text: str | None = None
    diff_truncated: bool = False
    blocks: list[dict[str, Any]] = field(default_factory=list)  # block review: by section
    block_summary: str | None = None
    left_label: str = "Current"
    right_label: str = "Proposed"
    extra: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.facts or self.note or self.losses or self.counts or self.diff or self.extra
        )


_KNOWN = {
    "kind",
    "base_version",
    "base_from",
    "new_version",
    "current_version",
    "stale",
    "diff",
    "diff_truncated",
    "note",
    "losses",
    "counts",
    "blocks",
    "summary",
    "changed",
}
_WORD_CHANGE = re.compile(r"\[-(.*?)-\]|\{\+(.*?)\+\}", re.DOTALL)


def _word_segments(words: str) -> list[tuple[str, str]]:
    """A ``[-removed-]{+added+}`` word diff as (kind, text) segments: same/del/ins."""
    out: list[tuple[str, str]] = []
    at = 0
    for m in _WORD_CHANGE.finditer(words):
        if m.start() > at:
            out.append(("same", words[at : m.start()]))
        if m.group(1) is not None:
            out.append(("del", m.group(1)))
        else:
            out.append(("ins", m.group(2)))
        at = m.end()
    if at < len(words):
        out.append(("same", words[at:]))
    return out


def _block_changes(blocks: Any) -> list[dict[str, Any]]:
    """The block review's changes (``op``, ``section``, ``old``/``new``, ``words``)."""
    out: list[dict[str, Any]] = []
    if not isinstance(blocks, list):
        return out
    for change in blocks[:500]:
        if not isinstance(change, dict) or change.get("op") not in ("changed", "added", "removed"):
            continue
        row: dict[str, Any] = {"op": change["op"], "section": str(change.get("section") or "")}
        if change["op"] == "changed" and isinstance(change.get("words"), str):
            row["segments"] = _word_segments(change["words"][:20_000])
        else:
            text = change.get("new") if change["op"] == "added" else change.get("old")
            row["segments"] = [("ins" if change["op"] == "added" else "del", str(text)[:20_000])]
        out.append(row)
    return out


def _context(review: dict[str, Any]) -> dict[str, Any]:
    """Where the block review sits: the review itself, or one dict inside it that carries
    ``losses`` (so it can be stored under its own key)."""
    if "losses" in review or "counts" in review:
        return review
    for value in review.values():
        if isinstance(value, dict) and ("losses" in value or "counts" in value):
            return value
    return review


def _loss_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        head = item.get("message") or item.get("description") or item.get("summary")
        kind = item.get("kind") or item.get("type")
        detail = item.get("name") or item.get("detail") or item.get("target") or item.get("id")
        bits = [str(b) for b in (kind, detail) if b not in (None, "")]
        if head:
            return f"{' '.join(bits)}: {head}" if bits else str(head)
        if bits:
            return " ".join(bits)
    return json.dumps(item, ensure_ascii=False, sort_keys=True)[:500]


def _inventory_pairs(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``{"before": {...}, "after": {...}}`` inventories (macros by name, then counts)."""
    items: list[tuple[str, Any, Any]] = []
    old_macros, new_macros = before.get("macros") or {}, after.get("macros") or {}
    if isinstance(old_macros, dict) and isinstance(new_macros, dict):
        for name in sorted(set(old_macros) | set(new_macros)):
            items.append((f"{name} macros", old_macros.get(name, 0), new_macros.get(name, 0)))
    for key in [k for k in before if k != "macros"] + [k for k in after if k not in before]:
        old, new = before.get(key, 0), after.get(key, 0)
        if isinstance(old, int) and isinstance(new, int) and (old or new):
            items.append((key.replace("_", " "), old, new))
    return items


def _count_pairs(counts: Any) -> list[tuple[str, str, str, bool]]:
    """``{"before": {...}, "after": {...}}`` (the block review's inventories),
    ``{"macros": {"before": 3, "after": 1}}``, ``{"macros": [3, 1]}`` or a list of
    ``{"name", "before", "after"}`` rows."""
    items: list[tuple[str, Any, Any]] = []
    if (
        isinstance(counts, dict)
        and isinstance(counts.get("before"), dict)
        and isinstance(counts.get("after"), dict)
    ):
        items = _inventory_pairs(counts["before"], counts["after"])
    elif isinstance(counts, dict):
        for name, value in counts.items():
            if isinstance(value, dict):
                items.append((str(name), value.get("before"), value.get("after")))
            elif isinstance(value, list | tuple) and len(value) == 2:
                items.append((str(name), value[0], value[1]))
    elif isinstance(counts, list):
        for row in counts:
            if isinstance(row, dict) and "name" in row:
                items.append((str(row["name"]), row.get("before"), row.get("after")))
    out = []
    for name, before, after in items:
        fewer = isinstance(before, int) and isinstance(after, int) and after < before
        out.append((name, str(before), str(after), fewer))
    return out


def review_view(review: dict[str, Any]) -> ReviewView:
    view = ReviewView(kind=str(review["kind"]) if review.get("kind") else None)
    base, new, current = (review.get(k) for k in ("base_version", "new_version", "current_version"))
    if base is not None:
        source = review.get("base_from")
        view.facts.append(("Base version", f"{base}" + (f" (from {source})" if source else "")))
    if current is not None:
        view.facts.append(("Current version", str(current)))
    if new is not None:
        view.facts.append(("Will become version", str(new)))
    view.stale = bool(review.get("stale"))
    if review.get("note"):
        view.note = str(review["note"])
    block = _context(review)
    losses = block.get("losses")
    if isinstance(losses, list):
        view.losses = [_loss_text(item) for item in losses[:200]]
    view.counts = _count_pairs(block.get("counts"))
    view.blocks = _block_changes(block.get("blocks"))
    summary = block.get("summary")
    if isinstance(summary, dict):
        parts = [
            f"{summary[key]} {label}"
            for key, label in (("blocks_changed", "changed"), ("blocks_added", "added"),
                               ("blocks_removed", "removed"), ("blocks_unchanged", "unchanged"))
            if isinstance(summary.get(key), int)
        ]  # fmt: skip
        view.block_summary = ", ".join(parts) + " blocks" if parts else None
    diff = review.get("diff")
    if isinstance(diff, str) and diff.strip():
        view.diff_text = diff
        view.diff, cut = diff_rows(diff)
        view.diff_truncated = bool(review.get("diff_truncated")) or cut
        if current is not None:
            view.left_label = f"Current (v{current})"
        if new is not None:
            view.right_label = f"Proposed (v{new})"
    for key, value in review.items():
        if key not in _KNOWN and value is not block:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            view.extra.append((key.replace("_", " "), text[:2000]))
    return view


def progress(t: Ticket) -> dict[str, Any]:
    """N-of-M approvals, who approved, and time left while the ticket is open."""
    now = time.time()
    return {
        "have": len(t.approvals),
        "need": t.approvals_required,
        "approvals": [
            {"operator": a.operator, "at": iso(a.at), "reason": a.reason} for a in t.approvals
        ],
        "open": t.state in OPEN_STATES,
        "left": duration(t.expires_at - now) if t.state in OPEN_STATES else None,
        "expires": iso(t.expires_at),
    }
