"""A parser for Confluence storage format that remembers where every node came from.

Lossless editing keeps the original bytes of every block an edit does not touch, so the
parser must report source spans.  lxml does not expose byte offsets, so the tree is built
from expat (the conforming XML 1.0 parser in the standard library) events, whose
``CurrentByteIndex`` gives the offset of every event: a node ends where the next event
starts.  The fragment is wrapped in a root element that declares the ``ac``/``ri``/``at``
namespaces and in a DOCTYPE that declares every HTML5 named entity, so ``&nbsp;`` and
``&mdash;`` parse as the characters Confluence means.  lxml is used for C14N only
(:func:`canonical`), to compare documents that are equal but not byte-identical.
"""

from __future__ import annotations

import gc
import html.entities
import re
import xml.parsers.expat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from .errors import StorageParseError

NAMESPACES: dict[str, str] = {
    "ac": "http://atlassian.com/content",
    "ri": "http://atlassian.com/resource/identifier",
    "at": "http://atlassian.com/template",
}

_ROOT = "hc-storage-root"
_XML_PREDEFINED = frozenset({"amp", "lt", "gt", "quot", "apos"})

NodeKind = Literal["element", "text", "cdata", "comment", "pi"]


_REFERENCE_RE = re.compile(rb"&([A-Za-z][A-Za-z0-9]*);")


@lru_cache(maxsize=1)
def _html_entities() -> dict[str, str]:
    """HTML5 named entities as XML entity declarations (predefined XML ones excluded)."""
    decls: dict[str, str] = {}
    for name, value in html.entities.html5.items():
        bare = name[:-1]
        if name.endswith(";") and bare not in _XML_PREDEFINED:
            refs = "".join(f"&#{ord(ch)};" for ch in value)
            decls[bare] = f'<!ENTITY {bare} "{refs}">'
    return decls


@lru_cache(maxsize=512)
def _prefix(names: frozenset[bytes]) -> bytes:
    """The DOCTYPE + root start tag put before a fragment.

    Only the HTML entities the fragment mentions are declared: declaring all ~2,100 costs
    a millisecond per parse, which adds up when every block of a page is checked.
    """
    table = _html_entities()
    decls = "".join(table[n.decode()] for n in sorted(names) if n.decode() in table)
    ns = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NAMESPACES.items())
    return f"<!DOCTYPE {_ROOT} [{decls}]><{_ROOT} {ns}>".encode()


def _prefix_for(body: bytes) -> bytes:
    names = frozenset(_REFERENCE_RE.findall(body)) if b"&" in body else frozenset()
    return _prefix(names)


@dataclass(eq=False, slots=True)
class Node:
    """One node of a storage document, with its byte span in the fragment.

    ``start``/``end`` cover the whole node; for elements ``inner_start``/``inner_end``
    cover the content between the start and end tags (equal for empty elements).
    """

    kind: NodeKind
    name: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)
    text: str = ""
    start: int = 0
    end: int = 0
    inner_start: int = 0
    inner_end: int = 0
    parent: Node | None = None

    def is_element(self, *names: str) -> bool:
        """True for an element (whose name is one of ``names`` when given)."""
        return self.kind == "element" and (not names or self.name in names)

    def elements(self, *names: str) -> Iterator[Node]:
        """Child elements, optionally only those with one of ``names``."""
        for child in self.children:
            if child.is_element(*names):
                yield child

    def first(self, *names: str) -> Node | None:
        """The first child element with one of ``names``, if any."""
        return next(self.elements(*names), None)

    def iter(self) -> Iterator[Node]:
        """This node and all its descendants in document order."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def text_content(self) -> str:
        """The concatenated text (including CDATA) below this node."""
        if self.kind in ("text", "cdata"):
            return self.text
        return "".join(n.text for n in self.iter() if n.kind in ("text", "cdata"))


@dataclass(eq=False, slots=True)
class Document:
    """A parsed storage fragment: the UTF-8 source plus its top-level nodes."""

    source: bytes
    children: list[Node]

    def raw(self, start: int, end: int) -> str:
        """The original text between two byte offsets (always node boundaries)."""
        return self.source[start:end].decode("utf-8")

    def raw_node(self, node: Node) -> str:
        """The original text of one node, byte for byte."""
        return self.raw(node.start, node.end)

    def start_tag(self, node: Node) -> str:
        """The original start tag of an element (the whole element if it is empty)."""
        return self.raw(node.start, node.inner_start)

    def end_tag(self, node: Node) -> str:
        """The original end tag of an element ('' for an empty element)."""
        return self.raw(node.inner_end, node.end)

    def iter(self) -> Iterator[Node]:
        """All nodes in document order."""
        for child in self.children:
            yield from child.iter()


class _Builder:
    """Turns expat events into :class:`Node` objects with byte spans."""

    def __init__(self, parser: xml.parsers.expat.XMLParserType, offset: int) -> None:
        self.parser = parser
        self.offset = offset
        self.root = Node("element", _ROOT)
        self.stack: list[Node] = [self.root]
        self.pending_end: list[Node] = []
        self.pending_inner: list[Node] = []
        self.in_cdata: Node | None = None
        self.text: Node | None = None

    def _pos(self) -> int:
        return self.parser.CurrentByteIndex - self.offset

    def _mark(self, *, keep_text: bool = False) -> int:
        """Close every node whose end is 'where the next event starts'."""
        pos = self._pos()
        for node in self.pending_end:
            node.end = pos
        self.pending_end.clear()
        for node in self.pending_inner:
            node.inner_start = pos
        self.pending_inner.clear()
        if self.text is not None and not keep_text:
            self.text.end = pos
            self.text = None
        return pos

    def _add(self, node: Node) -> None:
        parent = self.stack[-1]
        node.parent = parent
        parent.children.append(node)

    def start(self, name: str, attrs: dict[str, str]) -> None:
        pos = self._mark()
        node = Node("element", name, attrs, start=pos)
        self._add(node)
        self.stack.append(node)
        self.pending_inner.append(node)

    def end(self, name: str) -> None:
        pos = self._mark()
        node = self.stack.pop()
        node.inner_end = pos
        self.pending_end.append(node)

    def data(self, data: str) -> None:
        if self.in_cdata is not None:
            self._mark(keep_text=True)
            self.in_cdata.text += data
            return
        if self.text is not None:
            self._mark(keep_text=True)
            self.text.text += data
            return
        pos = self._mark()
        self.text = Node("text", text=data, start=pos)
        self._add(self.text)

    def cdata_start(self) -> None:
        pos = self._mark()
        self.in_cdata = Node("cdata", start=pos)
        self._add(self.in_cdata)

    def cdata_end(self) -> None:
        self._mark()
        assert self.in_cdata is not None
        self.pending_end.append(self.in_cdata)
        self.in_cdata = None

    def comment(self, data: str) -> None:
        pos = self._mark()
        node = Node("comment", text=data, start=pos)
        self._add(node)
        self.pending_end.append(node)

    def pi(self, target: str, data: str) -> None:
        pos = self._mark()
        node = Node("pi", name=target, text=data, start=pos)
        self._add(node)
        self.pending_end.append(node)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a document is built or converted.

    A 1 MB page is ~100,000 nodes (each linked to its parent: a cycle), and every few
    hundred allocations the collector would walk all of them again: with it paused,
    parsing and converting such a page takes about half the time.  Nothing is leaked:
    the collector runs as usual once the work is done.  Nested uses are no-ops.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def parse_storage(storage: str) -> Document:
    """Parse a storage-format fragment (any number of top-level nodes).

    Raises :class:`StorageParseError` when the fragment is not well-formed.
    """
    with paused_gc():
        return _parse(storage)


def _parse(storage: str) -> Document:
    body = storage.encode("utf-8")
    prefix = _prefix_for(body)
    parser = xml.parsers.expat.ParserCreate()
    parser.ordered_attributes = False
    builder = _Builder(parser, len(prefix))
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartCdataSectionHandler = builder.cdata_start
    parser.EndCdataSectionHandler = builder.cdata_end
    parser.CommentHandler = builder.comment
    parser.ProcessingInstructionHandler = builder.pi
    try:
        parser.Parse(prefix, False)
        parser.Parse(body, False)
        parser.Parse(f"</{_ROOT}>".encode(), True)
    except xml.parsers.expat.ExpatError as exc:
        offset = parser.ErrorByteIndex - len(prefix)
        where = max(0, offset)
        raise StorageParseError(
            f"storage is not well-formed XHTML: {xml.parsers.expat.ErrorString(exc.code)}"
            f" at byte {where} (line {exc.lineno}): {body[where : where + 40]!r}",
            offset=where,
        ) from None
    # builder.root holds the wrapper element, whose children are the fragment's nodes.
    top = builder.root.children[0].children
    for node in top:
        node.parent = None
    return Document(body, top)


def is_well_formed(storage: str) -> bool:
    """True when ``storage`` parses as a storage fragment."""
    try:
        parse_storage(storage)
    except StorageParseError:
        return False
    return True


def canonical(storage: str) -> bytes:
    """C14N 2.0 form of a fragment (via lxml), for 'equal but not byte-identical' checks.

    Named HTML entities are resolved to characters first, so ``&nbsp;`` and ``&#160;``
    compare equal.
    """
    from lxml import etree

    body = storage.encode("utf-8")
    prefix = _prefix_for(body)
    parser = etree.XMLParser(resolve_entities=True, strip_cdata=True, no_network=True)
    data = prefix + body + f"</{_ROOT}>".encode()
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise StorageParseError(f"storage is not well-formed XML: {exc}") from None
    out: bytes = etree.tostring(root, method="c14n2")
    return out


# Characters XML 1.0 cannot carry at all (not even as references).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def not_xml_char(text: str) -> str | None:
    """The first character of ``text`` that storage (XML 1.0) cannot hold, if any."""
    found = _NOT_XML.search(text)
    return found.group(0) if found else None


def escape_text(text: str) -> str:
    """Escape character data for storage (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(value: str) -> str:
    """Escape an attribute value for a double-quoted storage attribute."""
    return escape_text(value).replace('"', "&quot;")


def cdata(text: str) -> str:
    """Wrap text in CDATA, splitting any ``]]>`` so the section stays well-formed."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"
