"""A review diff of two storage documents that makes lost content impossible to miss.

It shows what changed per block (with a word-level diff inside changed blocks) under the
section each block is in, and counts what Markdown-based edits typically drop (macros by
name, links, images, attachments, mentions, ...) before and after.  Any count that drops
is listed in ``losses``, and the text rendering puts those first.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from typing import Any

from .markdown_view import MarkdownView, view_of
from .placeholders import OPEN, TOKEN_RE
from .storage import Document, parse_storage, paused_gc

_COUNTED = (
    "links",
    "page_links",
    "images",
    "attachments",
    "mentions",
    "emoticons",
    "tasks",
    "tables",
    "layouts",
    "dates",
)
_CONTEXT_WORDS = 6
#: A text shrinking by at least this many words and this share of them is a loss too
#: (a page written back from a cut copy loses its tail without any macro going).
_WORDS_LOST_MIN = 50
_WORDS_LOST_SHARE = 0.2
_HEADING_RE = re.compile(r"(#{1,6}) (.*)")


def inventory(storage: str) -> dict[str, Any]:
    """Counts of the things a lossy edit drops: macros by name, links, images, ..."""
    return _inventory(parse_storage(storage))


def _inventory(doc: Document) -> dict[str, Any]:
    macros: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    words = 0
    for node in doc.iter():
        if node.kind == "text":
            words += len(node.text.split())
            continue
        if node.kind != "element":
            continue
        name = node.name
        if name in ("ac:structured-macro", "ac:macro"):
            macros[node.attrs.get("ac:name", "?")] += 1
        elif name == "a" and "href" in node.attrs:
            counts["links"] += 1
        elif name == "ac:link":
            if node.first("ri:page") is not None:
                counts["page_links"] += 1
            elif node.first("ri:user") is None and node.first("ri:attachment") is None:
                counts["links"] += 1
        elif name == "ac:image":
            counts["images"] += 1
        elif name == "ri:attachment":
            counts["attachments"] += 1
        elif name == "ri:user":
            counts["mentions"] += 1
        elif name == "ac:emoticon":
            counts["emoticons"] += 1
        elif name == "ac:task":
            counts["tasks"] += 1
        elif name == "table":
            counts["tables"] += 1
        elif name == "ac:layout":
            counts["layouts"] += 1
        elif name == "time":
            counts["dates"] += 1
    result: dict[str, Any] = {"macros": dict(sorted(macros.items()))}
    result.update({key: counts[key] for key in _COUNTED})
    result["words"] = words
    return result


def _losses(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    losses: list[str] = []
    old_macros: dict[str, int] = before["macros"]
    new_macros: dict[str, int] = after["macros"]
    for name, count in old_macros.items():
        now = new_macros.get(name, 0)
        if now < count:
            losses.append(f"macro {name!r}: {count} -> {now}")
    for key in _COUNTED:
        if after[key] < before[key]:
            losses.append(f"{key.replace('_', ' ')}: {before[key]} -> {after[key]}")
    old_words, new_words = before["words"], after["words"]
    gone = old_words - new_words
    if gone >= _WORDS_LOST_MIN and gone >= old_words * _WORDS_LOST_SHARE:
        losses.append(f"words: {old_words} -> {new_words} ({gone / old_words:.0%} of the text)")
    return losses


def _display(markdown: str) -> str:
    """Block text without placeholder ids (they are renumbered between versions)."""
    return TOKEN_RE.sub(lambda m: OPEN + m.group(0)[len(m.group(1)) + 2 :], markdown)


def word_diff(old: str, new: str, *, context: int = _CONTEXT_WORDS) -> str:
    """``[-removed-]{+added+}`` word diff, keeping a few words of context around changes."""
    a, b = old.split(), new.split()
    out: list[str] = []
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    for index, (tag, i1, i2, j1, j2) in enumerate(ops):
        if tag == "equal":
            words = a[i1:i2]
            first, last = index == 0, index == len(ops) - 1
            if (
                len(words) > 2 * context
                or (first and len(words) > context)
                or (last and len(words) > context)
            ):
                head = [] if first else words[:context]
                tail = [] if last else words[-context:]
                words = [*head, "\u2026", *tail]
            out.extend(words)
            continue
        if i2 > i1:
            out.append("[-" + " ".join(a[i1:i2]) + "-]")
        if j2 > j1:
            out.append("{+" + " ".join(b[j1:j2]) + "+}")
    return " ".join(out)


def _sections_of(blocks: list[str]) -> list[str]:
    """The heading path each block lives under ("" before the first heading)."""
    stack: list[tuple[int, str]] = []
    paths: list[str] = []
    for text in blocks:
        match = _HEADING_RE.fullmatch(text.split("\n", 1)[0])
        if match is not None:
            level = len(match.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, match.group(2).strip()))
        paths.append(" > ".join(title for _, title in stack))
    return paths


def review_diff(
    old_storage: str,
    new_storage: str,
    *,
    old_view: MarkdownView | None = None,
    new_view: MarkdownView | None = None,
    labels: tuple[str, str] = ("current", "proposed"),
) -> dict[str, Any]:
    """Block- and word-level diff plus before/after counts and a loud ``losses`` list.

    ``old_view``/``new_view`` are the documents' Markdown views when the caller already
    has them (any ``verify`` setting: only their text is compared).  ``diff`` is a unified
    diff of the storage itself, one line per block, under ``labels``.
    """
    with paused_gc():
        return _review(old_storage, new_storage, old_view, new_view, labels)


def _review(
    old_storage: str,
    new_storage: str,
    old_view: MarkdownView | None,
    new_view: MarkdownView | None,
    labels: tuple[str, str],
) -> dict[str, Any]:
    old_doc, new_doc = parse_storage(old_storage), parse_storage(new_storage)
    if old_view is None:
        old_view = view_of(old_doc, old_storage, verify=False)
    if new_view is None:
        new_view = view_of(new_doc, new_storage, verify=False)
    old_blocks = [_display(b.markdown) for b in old_view.blocks]
    new_blocks = [_display(b.markdown) for b in new_view.blocks]
    # Blocks match on their text and their storage: a change the text does not show (a
    # macro's parameters behind an unchanged placeholder, an attribute) is still a change.
    old_raw, new_raw = _own_blocks(old_doc, old_view), _own_blocks(new_doc, new_view)
    old_keys = [f"{t}\0{r}" for t, r in zip(old_blocks, old_raw, strict=True)]
    new_keys = [f"{t}\0{r}" for t, r in zip(new_blocks, new_raw, strict=True)]
    old_sections, new_sections = _sections_of(old_blocks), _sections_of(new_blocks)
    changes: list[dict[str, Any]] = []
    summary: Counter[str] = Counter()
    # Equal blocks at both ends need no matching (a section edit on a big page).
    head = 0
    while head < min(len(old_keys), len(new_keys)) and old_keys[head] == new_keys[head]:
        head += 1
    tail = 0
    while (
        tail < min(len(old_keys), len(new_keys)) - head
        and old_keys[-1 - tail] == new_keys[-1 - tail]
    ):
        tail += 1
    summary["unchanged"] += head + tail
    matcher = difflib.SequenceMatcher(
        None,
        old_keys[head : len(old_keys) - tail],
        new_keys[head : len(new_keys) - tail],
        autojunk=False,
    )
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        i1, i2, j1, j2 = i1 + head, i2 + head, j1 + head, j2 + head
        if tag == "equal":
            summary["unchanged"] += i2 - i1
            continue
        paired = min(i2 - i1, j2 - j1)
        for k in range(paired):
            old, new = old_blocks[i1 + k], new_blocks[j1 + k]
            change = {"op": "changed", "section": new_sections[j1 + k], "old": old, "new": new}
            if old == new:
                change["words"] = "(the text is the same; its storage changed)"
                change["storage"] = storage_diff(old_raw[i1 + k], new_raw[j1 + k])
            else:
                change["words"] = word_diff(old, new)
            changes.append(change)
            summary["changed"] += 1
        for k in range(i1 + paired, i2):
            changes.append({"op": "removed", "section": old_sections[k], "old": old_blocks[k]})
            summary["removed"] += 1
        for k in range(j1 + paired, j2):
            changes.append({"op": "added", "section": new_sections[k], "new": new_blocks[k]})
            summary["added"] += 1
    before, after = _inventory(old_doc), _inventory(new_doc)
    return {
        "changed": old_storage != new_storage,
        "summary": {
            "blocks_unchanged": summary["unchanged"],
            "blocks_changed": summary["changed"],
            "blocks_added": summary["added"],
            "blocks_removed": summary["removed"],
        },
        "blocks": changes,
        "counts": {"before": before, "after": after},
        "losses": _losses(before, after),
        "diff": storage_diff(
            "\n".join(_raw_blocks(old_doc, old_view)),
            "\n".join(_raw_blocks(new_doc, new_view)),
            labels=labels,
        ),
    }


def _own_blocks(doc: Document, view: MarkdownView) -> list[str]:
    """Each view block's own storage bytes."""
    return [doc.source[b.start : b.end].decode("utf-8") for b in view.blocks]


def _raw_blocks(doc: Document, view: MarkdownView) -> list[str]:
    """Each view block's storage, with the bytes before it (up to the previous block);
    the bytes after the last block go with it, so the pieces add up to the document."""
    source = doc.source
    pieces: list[str] = []
    start = 0
    for index, block in enumerate(view.blocks):
        end = len(source) if index == len(view.blocks) - 1 else block.end
        pieces.append(source[start:end].decode("utf-8"))
        start = end
    return pieces


def storage_diff(
    old: str, new: str, *, labels: tuple[str, str] = ("current", "proposed"), context: int = 1
) -> str:
    """A unified diff of two storage texts, one line per block (or per source line)."""
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), *labels, lineterm="", n=context
    )
    return "\n".join(lines)


def _short(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def render_review_text(review: dict[str, Any]) -> str:
    """Plain text for the CLI: losses first and loud, then changes by section, then counts."""
    lines: list[str] = []
    s = review["summary"]
    lines.append(
        f"Review: {s['blocks_changed']} changed, {s['blocks_added']} added, "
        f"{s['blocks_removed']} removed, {s['blocks_unchanged']} unchanged blocks"
    )
    losses: list[str] = review["losses"]
    if losses:
        lines.append("!!! CONTENT LOST — this edit removes:")
        lines.extend(f"!!!   {loss}" for loss in losses)
    section = None
    for change in review["blocks"]:
        if change["section"] != section:
            section = change["section"]
            lines.append(f"== {section or '(top of page)'}")
        if change["op"] == "changed":
            lines.append(f"~ {_short(change['words'], 400)}")
            storage = change.get("storage")
            if isinstance(storage, str):  # the text is the same: show what changed under it
                shown = [ln for ln in storage.splitlines() if ln[:1] in "+-"][2:14]
                lines.extend(f"    {_short(ln, 200)}" for ln in shown)
        elif change["op"] == "added":
            lines.append(f"+ {_short(change['new'])}")
        else:
            lines.append(f"- {_short(change['old'])}")
    before, after = review["counts"]["before"], review["counts"]["after"]
    counted: list[str] = []
    for name in sorted(set(before["macros"]) | set(after["macros"])):
        old, new = before["macros"].get(name, 0), after["macros"].get(name, 0)
        counted.append(f"{name} macro {old}->{new}" if old != new else f"{name} macro {old}")
    for key in (*_COUNTED, "words"):
        old, new = before[key], after[key]
        if old or new:
            label = key.replace("_", " ")
            counted.append(f"{label} {old}->{new}" if old != new else f"{label} {old}")
    if counted:
        lines.append("Counts: " + ", ".join(counted))
    return "\n".join(lines)


__all__ = ["inventory", "render_review_text", "review_diff", "storage_diff", "word_diff"]
