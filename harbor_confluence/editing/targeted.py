"""Targeted edits on storage: each changes only its target, every other byte stays.

These work on the original storage directly (no Markdown round trip of the whole page), so
they are the safest way for an agent to change part of a large page.  Content is given as
Markdown (rendered with :func:`.render.markdown_to_storage`) or as storage.
"""

from __future__ import annotations

import html.entities
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import EditingError, TargetNotFoundError
from .render import markdown_to_storage
from .storage import Document, Node, escape_text, not_xml_char, parse_storage

_HEADINGS = {f"h{n}": n for n in range(1, 7)}
#: Elements whose text a plain-text replacement may touch (no macros, links, images ...).
_TEXT_CONTAINERS = frozenset(
    {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "table", "thead",
        "tbody", "tfoot", "tr", "td", "th", "blockquote", "strong", "b", "em", "i", "u",
        "s", "del", "strike", "sub", "sup", "span", "a", "code", "pre", "div", "small",
        "big", "mark", "font", "ac:layout", "ac:layout-section", "ac:layout-cell",
    }
)  # fmt: skip
_XML_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


@dataclass(frozen=True, slots=True)
class Section:
    """A heading and everything up to the next heading of the same or a higher level."""

    title: str
    level: int
    start: int
    body_start: int
    content_end: int
    end: int


def content_to_storage(content: str, *, is_storage: bool = False) -> str:
    """Replacement content as storage: Markdown is rendered, storage is checked."""
    if is_storage:
        parse_storage(content)
        return content
    return markdown_to_storage(content)


def _splice(doc: Document, start: int, end: int, new: str) -> str:
    return doc.raw(0, start) + new + doc.raw(end, len(doc.source))


def _title(node: Node) -> str:
    return " ".join(node.text_content().split())


def sections(storage: str) -> list[Section]:
    """All sections, at the top level and inside layout cells, in document order."""
    return _sections(parse_storage(storage))


def _sections(doc: Document) -> list[Section]:
    containers: list[tuple[list[Node], int]] = [(doc.children, len(doc.source))]
    for node in doc.iter():
        if node.is_element("ac:layout-cell"):
            containers.append((node.children, node.inner_end))
    found: list[Section] = []
    for nodes, container_end in containers:
        for i, node in enumerate(nodes):
            level = _HEADINGS.get(node.name) if node.kind == "element" else None
            if level is None:
                continue
            end = container_end
            content_end = node.end
            for later in nodes[i + 1 :]:
                other = _HEADINGS.get(later.name) if later.kind == "element" else None
                if other is not None and other <= level:
                    end = later.start
                    break
                if later.kind != "text" or later.text.strip():
                    content_end = later.end
            found.append(Section(_title(node), level, node.start, node.end, content_end, end))
    found.sort(key=lambda s: s.start)
    return found


def find_section(storage: str, path: Sequence[str]) -> Section:
    """The one section at a heading path such as ``["Install", "Linux"]``.

    Each step matches a heading's text exactly (whitespace-normalised; case-insensitively
    if nothing matches exactly) below the previous step's heading.
    """
    return _find(parse_storage(storage), path)


def _find(doc: Document, path: Sequence[str]) -> Section:
    if not path:
        raise TargetNotFoundError("empty heading path")
    every = _sections(doc)
    candidates: list[Section] | None = None
    for depth, wanted in enumerate(path):
        scope = (
            every
            if candidates is None
            else [
                s
                for s in every
                if any(p.start < s.start < p.end and s.level > p.level for p in candidates)
            ]
        )
        matches = _match(scope, wanted)
        if not matches:
            shown = " > ".join(path[: depth + 1])
            titles = ", ".join(repr(s.title) for s in scope[:12]) or "none"
            raise TargetNotFoundError(f"no section {shown!r}; headings there: {titles}")
        candidates = matches
    assert candidates is not None
    if len(candidates) > 1:
        raise TargetNotFoundError(
            f"heading path {' > '.join(path)!r} matches {len(candidates)} sections; "
            "give a longer path"
        )
    return candidates[0]


def _match(scope: list[Section], wanted: str) -> list[Section]:
    norm = " ".join(wanted.split())
    exact = [s for s in scope if s.title == norm]
    return exact or [s for s in scope if s.title.casefold() == norm.casefold()]


def replace_section(
    storage: str,
    path: Sequence[str],
    content: str,
    *,
    content_is_storage: bool = False,
    include_heading: bool = False,
) -> str:
    """Replace a section's body (or, with ``include_heading``, the heading too)."""
    doc = parse_storage(storage)
    section = _find(doc, path)
    new = content_to_storage(content, is_storage=content_is_storage)
    start = section.start if include_heading else section.body_start
    return _splice(doc, start, section.content_end, new)


def insert_before_section(
    storage: str, path: Sequence[str], content: str, *, content_is_storage: bool = False
) -> str:
    """Insert content right before a section's heading."""
    doc = parse_storage(storage)
    section = _find(doc, path)
    new = content_to_storage(content, is_storage=content_is_storage)
    return _splice(doc, section.start, section.start, new)


def insert_after_section(
    storage: str, path: Sequence[str], content: str, *, content_is_storage: bool = False
) -> str:
    """Insert content after a section's last block (before the next heading)."""
    doc = parse_storage(storage)
    section = _find(doc, path)
    new = content_to_storage(content, is_storage=content_is_storage)
    return _splice(doc, section.content_end, section.content_end, new)


def append(storage: str, content: str, *, content_is_storage: bool = False) -> str:
    """Add content at the end of the page."""
    parse_storage(storage)
    return storage + content_to_storage(content, is_storage=content_is_storage)


def prepend(storage: str, content: str, *, content_is_storage: bool = False) -> str:
    """Add content at the start of the page."""
    parse_storage(storage)
    return content_to_storage(content, is_storage=content_is_storage) + storage


def _editable(node: Node) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.name not in _TEXT_CONTAINERS:
            return False
        parent = parent.parent
    return True


def _units(raw: str) -> list[tuple[str, str]]:
    """Split a text node's source into (source, characters) units: chars and references."""
    units: list[tuple[str, str]] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "&":
            j = raw.find(";", i)
            if j < 0:
                raise EditingError("unterminated character reference in text")
            units.append((raw[i : j + 1], _decode_reference(raw[i + 1 : j])))
            i = j + 1
        elif ch == "\r":
            step = 2 if raw.startswith("\r\n", i) else 1
            units.append((raw[i : i + step], "\n"))
            i += step
        else:
            units.append((ch, ch))
            i += 1
    return units


def _decode_reference(name: str) -> str:
    if name.startswith("#x") or name.startswith("#X"):
        return chr(int(name[2:], 16))
    if name.startswith("#"):
        return chr(int(name[1:]))
    if name in _XML_ENTITIES:
        return _XML_ENTITIES[name]
    return html.entities.html5[name + ";"]


def replace_text(storage: str, old: str, new: str) -> str:
    """Replace ``old`` with ``new`` where it occurs exactly once in the page's plain text.

    Only text outside macros, links, images and other placeholders counts, and ``old``
    must lie within one text node (not across formatting).  Only the matched characters'
    source changes: entity references around them stay as they were.
    """
    if not old:
        raise EditingError("replace_text needs non-empty text to find")
    bad = not_xml_char(new)
    if bad is not None:
        raise EditingError(
            f"the new text holds the control character U+{ord(bad):04X}, which storage "
            "(XML) cannot hold"
        )
    doc = parse_storage(storage)
    hits: list[tuple[Node, int]] = []
    elsewhere = 0
    for node in doc.iter():
        if node.kind != "text" or old not in node.text:
            continue
        if not _editable(node):
            elsewhere += node.text.count(old)
            continue
        pos = node.text.find(old)
        while pos >= 0:
            hits.append((node, pos))
            pos = node.text.find(old, pos + 1)
    if len(hits) != 1:
        where = f" (plus {elsewhere} inside macros, links or other protected content)"
        raise TargetNotFoundError(
            f"text {old!r} found {len(hits)} times in editable text"
            + (where if elsewhere else "")
            + "; it must occur exactly once (within one paragraph's plain text)"
        )
    node, pos = hits[0]
    units = _units(doc.raw_node(node))
    if "".join(chars for _, chars in units) != node.text:
        raise EditingError("could not map the text back to its source")
    offset = 0
    first = last = -1
    for index, (_, chars) in enumerate(units):
        if offset == pos:
            first = index
        offset += len(chars)
        if offset == pos + len(old):
            last = index
            break
    if first < 0 or last < first:
        raise TargetNotFoundError(f"text {old!r} splits a character reference; widen it")
    before = "".join(src for src, _ in units[:first])
    after = "".join(src for src, _ in units[last + 1 :])
    return _splice(doc, node.start, node.end, before + escape_text(new) + after)
