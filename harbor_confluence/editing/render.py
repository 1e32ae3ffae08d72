"""Markdown (CommonMark + GFM tables/strikethrough) to Confluence storage.

Used for new content (creates, targeted edits) and for the blocks an agent changed in a
Markdown view.  Placeholder tokens are replaced by the storage they stand for, verbatim.
When a changed block replaces an original block of the same kind, the original is passed
as a *template* so what Markdown cannot say about it (paragraph style, table column widths
and cell colours, code macro options) survives the edit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from .errors import EditingError, PlaceholderError, UnknownPlaceholderError
from .placeholders import TOKEN_RE, TOKEN_START_RE, Placeholder
from .storage import Document, Node, cdata, escape_attr, escape_text, is_well_formed, not_xml_char

#: Link scheme for a Confluence page: ``confluence-page:SPACE/Title%20words#anchor``.
PAGE_SCHEME = "confluence-page:"
#: Image source scheme for an attachment of the page: ``confluence-attachment:file.png``.
ATTACHMENT_SCHEME = "confluence-attachment:"
# A mention of a user by account id: ``[@Ann Lee](mention:557058:0b1c...)``.
MENTION_SCHEME = "mention:"
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9:_-]{1,128}")

_TITLE_SAFE = "-._~!$&'*+,;=:@"


def page_url(space: str, title: str, anchor: str = "") -> str:
    """The stable Markdown link target for a page link (round-trips through ``parse``)."""
    url = PAGE_SCHEME
    if space:
        url += quote(space, safe=_TITLE_SAFE) + "/"
    url += quote(title, safe=_TITLE_SAFE)
    if anchor:
        url += "#" + quote(anchor, safe=_TITLE_SAFE)
    return url


def parse_page_url(url: str) -> tuple[str, str, str]:
    """``(space, title, anchor)`` from a ``confluence-page:`` URL (space may be '')."""
    rest = url[len(PAGE_SCHEME) :]
    path, _, anchor = rest.partition("#")
    space, slash, title = path.partition("/")
    if not slash:
        space, title = "", path
    return unquote(space), unquote(title), unquote(anchor)


class _Parser(MarkdownIt):
    """CommonMark that keeps link targets as written (no percent-encoding of titles)."""

    def normalizeLink(self, url: str) -> str:
        return url

    def normalizeLinkText(self, link: str) -> str:
        return link


@lru_cache(maxsize=1)
def markdown_parser() -> MarkdownIt:
    """The one Markdown dialect used both ways: CommonMark, tables, strikethrough, no HTML.

    ``text_join`` is off so escaped characters and entities arrive as ``text_special``
    tokens, separate from literal text in which placeholder tokens are recognised.
    """
    md = _Parser("commonmark", {"html": False})
    md.enable(["table", "strikethrough"])
    md.core.ruler.disable("text_join")
    return md


def parse_markdown(markdown: str, env: dict[str, Any] | None = None) -> SyntaxTreeNode:
    """Parse Markdown into markdown-it's syntax tree."""
    return SyntaxTreeNode(markdown_parser().parse(markdown, env if env is not None else {}))


@dataclass(frozen=True, slots=True)
class Template:
    """The original block a changed block replaces, to keep what Markdown cannot show."""

    doc: Document
    node: Node


@dataclass(slots=True)
class StorageWriter:
    """Renders Markdown syntax trees to storage, restoring placeholders.

    ``used`` collects the placeholder ids rendered, so callers can report removed ones.
    ``inline_originals`` maps ``(href, label text)`` of links seen in the original
    document to their original storage, so an unchanged link in a changed paragraph keeps
    its attributes (card appearance, version-at-save, ...).
    """

    placeholders: Mapping[int, Placeholder] = field(default_factory=dict)
    inline_originals: Mapping[tuple[str, str], str] = field(default_factory=dict)
    used: list[int] = field(default_factory=list)

    # -- documents and blocks -------------------------------------------------------------

    def render(self, markdown: str) -> str:
        """Render a whole Markdown document (no templates)."""
        root = parse_markdown(markdown)
        return "".join(self.block(child, None, top=True) for child in root.children)

    def block(self, node: SyntaxTreeNode, template: Template | None, *, top: bool) -> str:
        """Render one block-level node."""
        kind = node.type
        if kind == "paragraph":
            return self._paragraph(node, template, top=top, hidden=node.hidden, wrap_p=False)
        if kind == "heading":
            content = self._inline_only(node, where="a heading")
            return self._open(template, node.tag) + content + f"</{node.tag}>"
        if kind in ("bullet_list", "ordered_list"):
            return self._list(node, template)
        if kind in ("fence", "code_block"):
            return self._code(node, template)
        if kind == "table":
            return self._table(node, template)
        if kind == "blockquote":
            inner = "".join(self.block(c, None, top=False) for c in node.children)
            return self._open(template, "blockquote") + inner + "</blockquote>"
        if kind == "hr":
            return "<hr/>"
        if kind in ("html_block", "html_inline"):
            return f"<p>{escape_text(node.content)}</p>"
        raise PlaceholderError(f"unsupported Markdown construct {kind!r}", token=kind)

    def _open(self, template: Template | None, tag: str) -> str:
        if template is not None and template.node.is_element(tag) and template.node.children:
            return template.doc.start_tag(template.node)
        if template is not None and template.node.is_element(tag):
            start = template.doc.start_tag(template.node)
            if start.endswith("/>"):
                return start[:-2].rstrip() + ">"
        return f"<{tag}>"

    def _paragraph(
        self,
        node: SyntaxTreeNode,
        template: Template | None,
        *,
        top: bool,
        hidden: bool,
        wrap_p: bool,
    ) -> str:
        inline = node.children[0] if node.children else None
        segments = self._segments(inline, allow_blocks=True, top=top)
        out: list[str] = []
        pending: list[str] = []

        def flush() -> None:
            text = "".join(pending).strip(" ")
            pending.clear()
            if not text:
                return
            if hidden and not wrap_p:
                out.append(text)
            else:
                out.append(self._open(template, "p") + text + "</p>")

        for is_block, piece in segments:
            if is_block:
                flush()
                out.append(piece)
            else:
                pending.append(piece)
        flush()
        return "".join(out)

    def _inline_only(self, node: SyntaxTreeNode, *, where: str) -> str:
        inline = node.children[0] if node.children else None
        segments = self._segments(inline, allow_blocks=False, top=False, where=where)
        return "".join(piece for _, piece in segments).strip(" ")

    # -- lists ---------------------------------------------------------------------------

    def _list(self, node: SyntaxTreeNode, template: Template | None, *, li_p: bool = False) -> str:
        tag = "ol" if node.type == "ordered_list" else "ul"
        start = node.attrs.get("start")
        t_node = template.node if template is not None else None
        if (
            template is not None
            and t_node is not None
            and t_node.is_element(tag)
            and t_node.attrs.get("start") == (str(start) if start is not None else None)
        ):
            open_tag = template.doc.start_tag(t_node)
        else:
            open_tag = f'<ol start="{start}">' if tag == "ol" and start is not None else f"<{tag}>"
        if t_node is not None and t_node.is_element(tag):
            li_p = _items_use_p(t_node)
        items: list[str] = []
        for item in node.children:
            parts: list[str] = []
            for child in item.children:
                if child.type == "paragraph":
                    parts.append(
                        self._paragraph(child, None, top=False, hidden=child.hidden, wrap_p=li_p)
                    )
                elif child.type in ("bullet_list", "ordered_list"):
                    parts.append(self._list(child, None, li_p=li_p))  # same style as parent
                else:
                    parts.append(self.block(child, None, top=False))
            items.append("<li>" + "".join(parts) + "</li>")
        return open_tag + "".join(items) + f"</{tag}>"

    # -- code ----------------------------------------------------------------------------

    def _code(self, node: SyntaxTreeNode, template: Template | None) -> str:
        body = node.content
        if body.endswith("\n"):
            body = body[:-1]
        info = node.info.strip().split(None, 1)[0] if node.info.strip() else ""
        t_node = template.node if template is not None else None
        if template is not None and t_node is not None and t_node.is_element("pre") and not info:
            return template.doc.start_tag(t_node) + escape_text(body) + "</pre>"
        language = (
            f'<ac:parameter ac:name="language">{escape_text(info)}</ac:parameter>' if info else ""
        )
        text_body = f"<ac:plain-text-body>{cdata(body)}</ac:plain-text-body>"
        if template is not None and t_node is not None and _is_code_macro(t_node):
            doc = template.doc
            parts = [doc.start_tag(t_node)]
            placed = False
            for child in t_node.children:
                if child.is_element("ac:parameter"):
                    if child.attrs.get("ac:name") == "language":
                        parts.append(language)
                        placed = True
                    else:
                        parts.append(doc.raw_node(child))
                elif child.is_element("ac:plain-text-body"):
                    if not placed:
                        parts.append(language)
                        placed = True
                    parts.append(text_body)
                else:
                    parts.append(doc.raw_node(child))
            if not placed:
                parts.append(language + text_body)
            parts.append(doc.end_tag(t_node))
            return "".join(parts)
        return (
            '<ac:structured-macro ac:name="code" ac:schema-version="1">'
            + language
            + text_body
            + "</ac:structured-macro>"
        )

    # -- tables --------------------------------------------------------------------------

    def _table(self, node: SyntaxTreeNode, template: Template | None) -> str:
        rows: list[SyntaxTreeNode] = []
        for section in node.children:
            rows.extend(section.children)
        t_node = template.node if template is not None else None
        doc = template.doc if template is not None else None
        orig_rows: list[Node] = []
        colgroup = ""
        had_thead = False
        cell_p = False
        open_tag = "<table>"
        header_is_td = False
        if doc is not None and t_node is not None and t_node.is_element("table"):
            open_tag = doc.start_tag(t_node)
            for child in t_node.children:
                if child.is_element("colgroup"):
                    if len(list(child.elements("col"))) == len(rows[0].children):
                        colgroup = doc.raw_node(child)
                elif child.is_element("thead", "tbody", "tfoot"):
                    had_thead = had_thead or child.name == "thead"
                    orig_rows.extend(child.elements("tr"))
                elif child.is_element("tr"):
                    orig_rows.append(child)
            if orig_rows:
                first_cells = list(orig_rows[0].elements("th", "td"))
                header_is_td = bool(first_cells) and all(c.name == "td" for c in first_cells)
                if first_cells:
                    first = next((c for c in first_cells[0].children if c.kind == "element"), None)
                    cell_p = first is not None and first.name == "p"
        rendered: list[str] = []
        for r, row in enumerate(rows):
            orig_row = orig_rows[r] if r < len(orig_rows) else None
            orig_cells = list(orig_row.elements("th", "td")) if orig_row is not None else []
            tr_open = (
                doc.start_tag(orig_row) if doc is not None and orig_row is not None else "<tr>"
            )
            cells: list[str] = []
            for c, cell in enumerate(row.children):
                default = "th" if r == 0 and cell.type == "th" and not header_is_td else "td"
                if doc is not None and c < len(orig_cells):
                    orig = orig_cells[c]
                    name = orig.name
                    open_cell = doc.start_tag(orig)
                    if not orig.children and open_cell.endswith("/>"):
                        open_cell = open_cell[:-2].rstrip() + ">"
                else:
                    name, open_cell = default, f"<{default}>"
                inline = cell.children[0] if cell.children else None
                segments = self._segments(inline, allow_blocks=True, top=False)
                content = ""
                pending: list[str] = []
                for is_block, piece in [*segments, (True, "")]:
                    if is_block:
                        text = "".join(pending).strip(" ")
                        pending.clear()
                        if text:
                            content += f"<p>{text}</p>" if cell_p else text
                        content += piece
                    else:
                        pending.append(piece)
                cells.append(open_cell + content + f"</{name}>")
            rendered.append(tr_open + "".join(cells) + "</tr>")
        if had_thead and rendered:
            body = "<thead>" + rendered[0] + "</thead><tbody>" + "".join(rendered[1:]) + "</tbody>"
        else:
            body = "<tbody>" + "".join(rendered) + "</tbody>"
        return open_tag + colgroup + body + "</table>"

    # -- inline --------------------------------------------------------------------------

    def _segments(
        self,
        inline: SyntaxTreeNode | None,
        *,
        allow_blocks: bool,
        top: bool,
        where: str = "inline text",
    ) -> list[tuple[bool, str]]:
        """Inline storage pieces; ``(True, raw)`` marks a block placeholder's storage."""
        out: list[tuple[bool, str]] = []
        if inline is None:
            return out
        for child in inline.children:
            if child.type == "text":
                self._text(child.content, out, allow_blocks=allow_blocks, top=top, where=where)
            else:
                out.append((False, self._inline(child)))
        return out

    def _text(
        self,
        text: str,
        out: list[tuple[bool, str]],
        *,
        allow_blocks: bool,
        top: bool,
        where: str,
    ) -> None:
        pos = 0
        for match in TOKEN_RE.finditer(text):
            self._plain(text[pos : match.start()], out)
            token = match.group(0)
            ph = self._lookup(token, int(match.group(1)))
            if ph.role == "inline":
                out.append((False, ph.storage))
            elif not allow_blocks:
                raise PlaceholderError(
                    f"placeholder {token} stands for a block ({ph.kind}) and cannot be used "
                    f"inside {where}; put it on a line of its own",
                    token=token,
                )
            elif ph.role == "structure" and not (top and not text.replace(token, "").strip()):
                raise PlaceholderError(
                    f"layout placeholder {token} must stay on a line of its own at the top "
                    "level of the page (not inside a list, quote or text)",
                    token=token,
                )
            else:
                out.append((True, ph.storage))
            pos = match.end()
        self._plain(text[pos:], out)

    def _plain(self, text: str, out: list[tuple[bool, str]]) -> None:
        if not text:
            return
        bad = TOKEN_START_RE.search(text)
        if bad is not None:
            snippet = text[bad.start() : bad.start() + 24]
            raise PlaceholderError(
                f"malformed placeholder near {snippet!r}: placeholders look like ⟦12:kind⟧",
                token=snippet,
            )
        out.append((False, escape_text(text)))

    def _lookup(self, token: str, ident: int) -> Placeholder:
        ph = self.placeholders.get(ident)
        if ph is None:
            raise UnknownPlaceholderError(
                f"unknown placeholder {token}: this id was not issued for this page "
                "(placeholders can be moved or deleted, not invented)",
                token=token,
            )
        self.used.append(ident)
        return ph

    def _inline_children(self, node: SyntaxTreeNode, where: str) -> str:
        parts: list[str] = []
        for child in node.children:
            if child.type == "text":
                segs: list[tuple[bool, str]] = []
                self._text(child.content, segs, allow_blocks=False, top=False, where=where)
                parts.extend(piece for _, piece in segs)
            else:
                parts.append(self._inline(child))
        return "".join(parts)

    def _inline(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind == "text_special":
            return escape_text(node.content)
        if kind == "text":
            return self._inline_children_text(node)
        if kind == "softbreak":
            return " "
        if kind == "hardbreak":
            return "<br/>"
        if kind == "code_inline":
            return f"<code>{escape_text(node.content)}</code>"
        if kind in ("em", "strong", "s"):
            inner = self._inline_children(node, "emphasis")
            return f"<{kind}>{inner}</{kind}>"
        if kind == "link":
            return self._link(node)
        if kind == "image":
            return self._image(node)
        return escape_text(node.content)

    def _inline_children_text(self, node: SyntaxTreeNode) -> str:
        segs: list[tuple[bool, str]] = []
        self._text(node.content, segs, allow_blocks=False, top=False, where="inline text")
        return "".join(piece for _, piece in segs)

    def _link(self, node: SyntaxTreeNode) -> str:
        href = str(node.attrs.get("href", ""))
        label_text = " ".join(_plain_text(node).split())
        original = self.inline_originals.get((href, label_text))
        if original is not None:
            # restore the original link, but keep the placeholders it contained as used
            self._inline_children(node, "a link")
            return original
        if href.startswith(MENTION_SCHEME):
            account = href[len(MENTION_SCHEME) :]
            if not _ACCOUNT_ID.fullmatch(account):
                raise EditingError(
                    f"a mention needs an account id (letters, digits, ':', '_', '-'; at most "
                    f"128), not {account[:40]!r}: write [@Name](mention:ACCOUNT_ID)"
                )
            return f'<ac:link><ri:user ri:account-id="{escape_attr(account)}"/></ac:link>'
        label = self._inline_children(node, "a link")
        if href.startswith(PAGE_SCHEME):
            space, title, anchor = parse_page_url(href)
            attrs = f' ac:anchor="{escape_attr(anchor)}"' if anchor else ""
            page = ""
            if title:
                space_attr = f' ri:space-key="{escape_attr(space)}"' if space else ""
                page = f'<ri:page{space_attr} ri:content-title="{escape_attr(title)}"/>'
            if not label:
                body = ""
            elif _is_plain(node):
                body = (
                    "<ac:plain-text-link-body>"
                    + cdata(_plain_text(node))
                    + "</ac:plain-text-link-body>"
                )
            else:
                body = f"<ac:link-body>{label}</ac:link-body>"
            return f"<ac:link{attrs}>{page}{body}</ac:link>"
        title_attr = node.attrs.get("title")
        title = f' title="{escape_attr(str(title_attr))}"' if title_attr else ""
        return f'<a href="{escape_attr(href)}"{title}>{label}</a>'

    def _image(self, node: SyntaxTreeNode) -> str:
        src = str(node.attrs.get("src", ""))
        alt = " ".join(_plain_text(node).split())
        alt_attr = f' ac:alt="{escape_attr(alt)}"' if alt else ""
        if src.startswith(ATTACHMENT_SCHEME):
            name = unquote(src[len(ATTACHMENT_SCHEME) :])
            return (
                f'<ac:image{alt_attr}><ri:attachment ri:filename="{escape_attr(name)}"/></ac:image>'
            )
        return f'<ac:image{alt_attr}><ri:url ri:value="{escape_attr(src)}"/></ac:image>'


def _plain_text(node: SyntaxTreeNode) -> str:
    """The text of a link label or image alt, as a reader sees it."""
    parts: list[str] = []
    for child in node.children:
        if child.type in ("text", "text_special", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        else:
            parts.append(_plain_text(child))
    return "".join(parts)


def _is_plain(node: SyntaxTreeNode) -> bool:
    return all(
        c.type in ("text", "text_special", "softbreak") and not TOKEN_RE.search(c.content)
        for c in node.children
    )


def _is_code_macro(node: Node) -> bool:
    return node.is_element("ac:structured-macro") and node.attrs.get("ac:name") == "code"


def _items_use_p(list_node: Node) -> bool:
    """Whether the original list wrapped item text in ``<p>`` (the new editor does)."""
    for item in list_node.elements("li"):
        first = next((c for c in item.children if c.kind != "text" or c.text.strip()), None)
        return first is not None and first.is_element("p")
    return False


def markdown_to_storage(markdown: str) -> str:
    """Storage for new content written in Markdown (no base document, no placeholders).

    Raises :class:`UnknownPlaceholderError` if the Markdown carries a placeholder token,
    since without a view there is nothing it could stand for, and :class:`EditingError`
    if it holds a character storage cannot (a control character).
    """
    bad = not_xml_char(markdown)
    if bad is not None:
        raise EditingError(
            f"the text holds the control character U+{ord(bad):04X}, which storage (XML) "
            "cannot hold"
        )
    out = StorageWriter().render(markdown)
    if not is_well_formed(out):  # pragma: no cover - a renderer bug
        raise EditingError("the Markdown renders to storage that is not well-formed")
    return out


__all__ = [
    "ATTACHMENT_SCHEME",
    "PAGE_SCHEME",
    "StorageWriter",
    "Template",
    "markdown_parser",
    "markdown_to_storage",
    "page_url",
    "parse_markdown",
    "parse_page_url",
]
