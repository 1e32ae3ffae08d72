"""Body representations: storage XHTML <-> a small Atlassian Document Format subset.

Confluence converts between formats on read; the simulator does the same for headings,
paragraphs, list items and code blocks, which is enough for clients that round-trip text.

Storage is kept byte for byte as written (what a client reads back is what it wrote), and,
as Confluence does, a storage body that is not well-formed XHTML is refused with a 400
("Error parsing xhtml"): the ``ac:``/``ri:`` prefixes need no declaration, HTML named
entities (``&nbsp;``, ``&mdash;``) are allowed, anything else XML forbids is not.
"""

from __future__ import annotations

import html.entities
import json
import re
import xml.parsers.expat
from html import escape
from html.parser import HTMLParser
from typing import Any

__all__ = [
    "BodyFormatError",
    "adf_to_storage",
    "check_storage",
    "render",
    "storage_to_adf",
    "wiki_to_storage",
]

_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_ENTITY_REF = re.compile(rb"&([A-Za-z][A-Za-z0-9]*);")
_ROOT = "storage-root"


def check_storage(value: str) -> None:
    """Raise BodyFormatError, as Confluence answers, when ``value`` is not well-formed."""
    body = value.encode("utf-8")
    names = sorted({m.decode() for m in _ENTITY_REF.findall(body)} - _XML_ENTITIES)
    decls = []
    for name in names:
        text = html.entities.html5.get(name + ";")
        if text is not None:  # an unknown name stays undeclared: expat reports it
            decls.append(f'<!ENTITY {name} "{"".join(f"&#{ord(c)};" for c in text)}">')
    prefix = f"<!DOCTYPE {_ROOT} [{''.join(decls)}]><{_ROOT}>".encode()
    parser = xml.parsers.expat.ParserCreate()
    try:
        parser.Parse(prefix, False)
        parser.Parse(body, False)
        parser.Parse(f"</{_ROOT}>".encode(), True)
    except xml.parsers.expat.ExpatError as exc:
        column = exc.offset - (len(prefix) if exc.lineno == 1 else 0)
        raise BodyFormatError(
            f"Error parsing xhtml: {xml.parsers.expat.ErrorString(exc.code)} "
            f"at [row,col]: [{exc.lineno},{max(column, 0) + 1}]"
        ) from None


_BLOCKS = {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "pre"}


class BodyFormatError(ValueError):
    """The submitted value is not valid in its declared representation."""


class _BlockCollector(HTMLParser):
    """Collect (kind, text) blocks from storage XHTML; macros' plain-text bodies become code."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self._stack: list[str] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS or tag == "ac:plain-text-body":
            self._flush()
            self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._stack and self._stack[-1] == tag:
            self._flush()
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        if self._stack:
            self._text.append(data)

    def unknown_decl(self, data: str) -> None:
        # CDATA inside <ac:plain-text-body> arrives here.
        if data.startswith("CDATA[") and self._stack:
            self._text.append(data[len("CDATA[") :])

    def _flush(self) -> None:
        text = "".join(self._text)
        self._text = []
        if self._stack and text.strip():
            kind = "code" if self._stack[-1] in ("ac:plain-text-body", "pre") else self._stack[-1]
            self.blocks.append((kind, text if kind == "code" else " ".join(text.split())))


def storage_to_adf(storage: str) -> str:
    """Storage XHTML to an ADF document (JSON text, as the API returns it)."""
    parser = _BlockCollector()
    parser.feed(storage)
    parser.close()
    content: list[dict[str, Any]] = []
    for kind, text in parser.blocks:
        node_text = [{"type": "text", "text": text}]
        if kind.startswith("h") and kind[1:].isdigit():
            content.append(
                {"type": "heading", "attrs": {"level": int(kind[1:])}, "content": node_text}
            )
        elif kind == "code":
            content.append({"type": "codeBlock", "content": node_text})
        else:
            content.append({"type": "paragraph", "content": node_text})
    return json.dumps({"type": "doc", "version": 1, "content": content}, separators=(",", ":"))


def _adf_text(node: Any) -> str:
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    return "".join(_adf_text(child) for child in node.get("content", []) or [])


def adf_to_storage(adf: str) -> str:
    """An ADF document to storage XHTML; raises BodyFormatError if it is not an ADF doc."""
    try:
        doc = json.loads(adf)
    except json.JSONDecodeError as exc:
        raise BodyFormatError(f"atlas_doc_format value is not JSON: {exc.msg}") from exc
    if not isinstance(doc, dict) or doc.get("type") != "doc":
        raise BodyFormatError("atlas_doc_format value must be an ADF document with type 'doc'")
    parts: list[str] = []
    for node in doc.get("content", []) or []:
        if not isinstance(node, dict):
            raise BodyFormatError("atlas_doc_format content items must be objects")
        text = escape(_adf_text(node), quote=False)
        kind = node.get("type")
        if kind == "heading":
            level = (node.get("attrs") or {}).get("level", 1)
            parts.append(f"<h{level}>{text}</h{level}>")
        elif kind == "codeBlock":
            parts.append(
                '<ac:structured-macro ac:name="code"><ac:plain-text-body>'
                f"<![CDATA[{_adf_text(node)}]]></ac:plain-text-body></ac:structured-macro>"
            )
        else:
            parts.append(f"<p>{text}</p>")
    return "".join(parts)


def wiki_to_storage(wiki: str) -> str:
    """Wiki markup to storage, for headings (``h2. x``), bullets (``* x``) and paragraphs."""
    parts: list[str] = []
    items: list[str] = []
    for line in wiki.splitlines():
        stripped = line.strip()
        if stripped.startswith("* "):
            items.append(f"<li>{escape(stripped[2:], quote=False)}</li>")
            continue
        if items:
            parts.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if not stripped:
            continue
        if (
            len(stripped) > 3
            and stripped[0] == "h"
            and stripped[1] in "123456"
            and stripped[2] == "."
        ):
            level = stripped[1]
            parts.append(f"<h{level}>{escape(stripped[3:].strip(), quote=False)}</h{level}>")
        else:
            parts.append(f"<p>{escape(stripped, quote=False)}</p>")
    if items:
        parts.append("<ul>" + "".join(items) + "</ul>")
    return "".join(parts)


def render(representation: str, value: str, wanted: str) -> str:
    """A stored body in the representation a client asked for.

    ``view`` and the export/editor variants are returned as the storage XHTML: the
    simulator does not render macros.
    """
    if wanted == representation:
        return value
    if wanted == "atlas_doc_format":
        return storage_to_adf(value)
    storage = adf_to_storage(value) if representation == "atlas_doc_format" else value
    return storage
