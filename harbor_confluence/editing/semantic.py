"""A semantic normal form of storage, to check that a re-rendered block means the same.

Byte equality is too strict to compare storage that went through Markdown (``<b>`` comes
back as ``<strong>``, ``<li><p>x</p></li>`` as ``<li>x</li>``, whitespace is reflowed), and
C14N is still too strict for that.  The view uses this form to prove, block by block, that
the Markdown it shows can be turned back into the same content; a block that cannot is
shown as a placeholder instead, so an edit elsewhere in it cannot silently drop anything.
"""

from __future__ import annotations

from .storage import Node, parse_storage

_ALIASES = {"b": "strong", "i": "em", "del": "s", "strike": "s"}
#: Elements whose children are a flow of paragraphs and blocks.
_FLOW = frozenset({"li", "td", "th", "blockquote", "ac:layout-cell", "ac:rich-text-body"})
#: Inline elements (text-level); everything else is a block inside a flow.
INLINE_ELEMENTS = frozenset(
    {
        "a", "abbr", "b", "big", "br", "cite", "code", "del", "dfn", "em", "font", "i",
        "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub",
        "sup", "tt", "u", "var", "time", "ac:link", "ac:emoticon", "ac:image",
        "ac:inline-comment-marker", "ac:placeholder", "ri:user",
    }
)  # fmt: skip
_WS = " \t\n\r\f"
#: Whitespace and line breaks at the edge of bold/italic/links render the same outside.
_MOVABLE = (None, "<br>")


def is_inline(node: Node) -> bool:
    """Text and text-level elements; a storage flow groups runs of these into paragraphs."""
    if node.kind in ("text", "cdata", "comment", "pi"):
        return True
    return node.name in INLINE_ELEMENTS


def is_blank(node: Node) -> bool:
    """Whitespace-only text."""
    return node.kind == "text" and not node.text.strip(_WS)


def semantic_form(storage: str) -> str:
    """A string that is equal for two storage fragments that render the same content."""
    doc = parse_storage(storage)
    out: list[str] = []
    _flow(doc.children, out)
    return "".join(out)


def _attrs(node: Node) -> str:
    items = sorted((k, v) for k, v in node.attrs.items() if not _ignorable_attr(node, k, v))
    return "".join(f" {k}={v!r}" for k, v in items)


def _ignorable_attr(node: Node, key: str, value: str) -> bool:
    return node.name in ("td", "th") and key in ("colspan", "rowspan") and value == "1"


def _flow(children: list[Node], out: list[str]) -> None:
    """Group a flow: each ``<p>`` and each bare inline run is one paragraph unit."""
    run: list[Node] = []

    def flush() -> None:
        if run:
            _paragraph(run, out)
            run.clear()

    for child in children:
        if is_inline(child):
            run.append(child)
        elif child.is_element("p"):
            flush()
            _paragraph(child.children, out, _attrs(child))
        else:
            flush()
            _block(child, out)
    flush()


def _block(node: Node, out: list[str]) -> None:
    name = _ALIASES.get(node.name, node.name)
    if name in ("thead", "tbody", "tfoot"):
        for child in node.children:
            if not is_blank(child):
                _block(child, out)
        return
    out.append(f"<{name}{_attrs(node)}>")
    if name in _FLOW:
        _flow(node.children, out)
    elif name in ("ac:plain-text-body", "ac:plain-text-link-body", "pre"):
        out.append(repr(node.text_content()))
    elif name in ("h1", "h2", "h3", "h4", "h5", "h6"):
        events: list[str | None] = []
        _inline_events(node.children, events)
        out.append(_inline_string(events))
    else:
        for child in node.children:
            if is_blank(child) and name not in INLINE_ELEMENTS:
                continue
            if child.kind == "element":
                _block(child, out)
            elif child.kind in ("text", "cdata"):
                out.append(repr(" ".join(child.text.split(None))))
            else:
                out.append(f"<!{child.kind}:{child.text!r}>")
    out.append(f"</{name}>")


def _paragraph(children: list[Node], out: list[str], attrs: str = "") -> None:
    events: list[str | None] = []
    _inline_events(children, events)
    text = _inline_string(events)
    if text:
        out.append(f"<P{attrs}>{text}</P>")


def _inline_events(children: list[Node], events: list[str | None]) -> None:
    """Flatten inline content; ``None`` stands for collapsible whitespace."""
    for child in children:
        if child.kind in ("text", "cdata"):
            words = child.text.split(None) if child.text else []
            text = child.text
            if text[:1] in _WS and text:
                events.append(None)
            for i, word in enumerate(words):
                if i:
                    events.append(None)
                events.append("T" + word)
            if text[-1:] in _WS and text.strip(_WS):
                events.append(None)
        elif child.kind == "element":
            name = _ALIASES.get(child.name, child.name)
            if name in ("code",):
                events.append(f"<code>{' '.join(child.text_content().split())!r}</code>")
            elif name in ("strong", "em", "s", "a", "ac:link-body") or name == "ac:link":
                events.append(f"<{name}{_attrs(child)}>")
                _inline_events(child.children, events)
                events.append(f"</{name}>")
            elif name == "br":
                events.append("<br>")
            else:
                sub: list[str] = []
                _block(child, sub)
                events.append("".join(sub))
        else:
            events.append(f"<!{child.kind}:{child.text!r}>")


def _inline_string(events: list[str | None]) -> str:
    """Move whitespace out of inline elements, collapse it, drop edge whitespace/breaks."""
    items = list(events)
    changed = True
    while changed:
        changed = False
        for i in range(len(items) - 1):
            a, b = items[i], items[i + 1]
            if a is not None and a.startswith("<") and not a.startswith("</") and b in _MOVABLE:
                if _is_wrapper(a):
                    items[i], items[i + 1] = b, a
                    changed = True
            elif a in _MOVABLE and b is not None and b.startswith("</"):
                items[i], items[i + 1] = b, a
                changed = True
    parts: list[str] = []
    for item in items:
        if item is None:
            if parts and parts[-1] != " ":
                parts.append(" ")
        elif item.startswith("T") and parts and parts[-1].startswith("T"):
            parts[-1] += item[1:]
        else:
            parts.append(item)
    while parts and parts[-1] in (" ", "<br>"):
        parts.pop()
    while parts and parts[0] in (" ", "<br>"):
        parts.pop(0)
    # whitespace around a hard break is not content
    cleaned: list[str] = []
    for i, part in enumerate(parts):
        if part == " " and (
            (cleaned and cleaned[-1] == "<br>") or (i + 1 < len(parts) and parts[i + 1] == "<br>")
        ):
            continue
        cleaned.append(part)
    return "".join(p if p == " " or p.startswith("<") else repr(p[1:]) for p in cleaned)


def _is_wrapper(event: str) -> bool:
    name = event[1:].split(" ", 1)[0].rstrip(">")
    return name in ("strong", "em", "s", "a", "ac:link", "ac:link-body")
