"""Storage to a Markdown view that an agent can read and edit without losing anything.

What CommonMark (plus GFM tables) can say comes out as Markdown; everything else becomes a
placeholder token (see :mod:`.placeholders`) whose original storage is kept in the view's
table.  Every Markdown block is checked on the way out: it is rendered back to storage and
compared with the original in :func:`.semantic.semantic_form`; a block that would not come
back the same is shown as a placeholder instead, so no edit can silently drop part of it.

The view also records, for every block, the byte span it came from, which is how
:func:`.apply.apply_markdown` keeps unchanged blocks byte for byte.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import EditingError
from .placeholders import OPEN, Placeholder, PlaceholderRole, clean_hint
from .render import StorageWriter, Template, page_url, parse_markdown
from .semantic import is_blank, is_inline, semantic_form
from .storage import Document, Node, parse_storage, paused_gc

_WS_RE = re.compile(r"[ \t\n\r\f]+")
_ENTITY_LIKE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{0,31});")
_ORDERED_START = re.compile(r"\d{1,9}[.)]")
_ALWAYS_ESCAPE = {
    "\\": "\\\\",
    "`": "\\`",
    "*": "\\*",
    "[": "\\[",
    "]": "\\]",
    "<": "\\<",
    "~": "\\~",
    "|": "\\|",
    "\xa0": "&nbsp;",
    OPEN: "&#x27E6;",
    "\u27e7": "&#x27E7;",
}
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_FORMATTING = frozenset({"strong", "b", "em", "i", "s", "del", "strike", "code", "a", "ac:link"})
#: Block kinds that may follow a paragraph in a tight list item without a blank line.
_TIGHT_OK = frozenset({"list", "code", "heading", "quote"})
#: Blocks that have a Markdown form (and so cannot sit inside a table cell's one line).
_MARKDOWN_BLOCKS = frozenset(
    {"p", "ul", "ol", "table", "blockquote", "pre", "hr", "h1", "h2", "h3", "h4", "h5", "h6"}
)


class _Unsupported(Exception):
    """This node cannot be shown as Markdown; show it as a placeholder."""


@dataclass(frozen=True, slots=True)
class ViewBlock:
    """One top-level block of the view and the storage bytes it came from."""

    markdown: str
    start: int
    end: int
    kind: str
    placeholder_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class MarkdownView:
    """The Markdown an agent sees, plus what is needed to go back to storage.

    Placeholder ids are assigned in document order, so converting the same storage again
    gives the same view: the table need not be stored between a read and a write.
    """

    text: str
    placeholders: dict[int, Placeholder]
    blocks: tuple[ViewBlock, ...]
    source_sha256: str
    inline_originals: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Offsets of blocks whose first Markdown rendering did not verify (diagnostics).
    fallbacks: tuple[int, ...] = ()
    #: Whether every block was proven to render back (``to_markdown(verify=True)``).  An
    #: unverified view is as faithful to read; :func:`.apply.apply_markdown` then proves
    #: each original block an edit replaces before replacing it (see :func:`block_renders_back`).
    verified: bool = True

    @property
    def table(self) -> dict[int, Placeholder]:
        """The placeholder table (id to original storage)."""
        return self.placeholders


def storage_sha256(storage: str) -> str:
    """Fingerprint of a storage document, to tell whether a view belongs to it."""
    return hashlib.sha256(storage.encode("utf-8")).hexdigest()


def to_markdown(storage: str, *, verify: bool = True) -> MarkdownView:
    """Convert storage to a Markdown view.

    ``verify`` (default) proves each Markdown block renders back to the same content and
    falls back to a placeholder where it would not; turn it off only for read-only views.
    """
    with paused_gc():
        return view_of(parse_storage(storage), storage, verify=verify)


def view_of(doc: Document, storage: str, *, verify: bool = True) -> MarkdownView:
    """:func:`to_markdown` of an already parsed document (``doc`` is ``storage`` parsed)."""
    conv = _Converter(doc, verify=verify)
    with paused_gc():
        conv.top(doc.children)
    text = "\n\n".join(block.markdown for block in conv.blocks)
    return MarkdownView(
        text=text + "\n" if text else "",
        placeholders=conv.placeholders,
        blocks=tuple(conv.blocks),
        source_sha256=storage_sha256(storage),
        inline_originals=conv.inline_originals,
        fallbacks=tuple(conv.fallbacks),
        verified=verify,
    )


def block_renders_back(view: MarkdownView, source: bytes, index: int) -> bool:
    """Whether block ``index`` of ``view`` renders from its Markdown to the same content.

    The check ``to_markdown(verify=True)`` makes for every block while converting, made
    for one block after the fact: an unverified view defers it to the blocks an edit
    actually replaces.  Placeholder and layout blocks are their storage, so they pass.
    """
    block = view.blocks[index]
    if block.kind in ("placeholder", "structure"):
        return True
    raw = source[block.start : block.end].decode("utf-8")
    writer = StorageWriter(view.placeholders, view.inline_originals)
    try:
        tree = parse_markdown(block.markdown)
        if len(tree.children) != 1:
            return False
        doc = parse_storage(raw)
        elements = [n for n in doc.children if n.kind == "element"]
        template = (
            Template(doc, elements[0]) if len(doc.children) == 1 and len(elements) == 1 else None
        )
        rendered = writer.block(tree.children[0], template, top=True)
        return semantic_form(rendered) == semantic_form(raw)
    except EditingError:
        return False


# -- escaping ---------------------------------------------------------------------------


def escape_markdown(word: str, *, line_start: bool) -> str:
    """Escape one whitespace-free run of text so CommonMark reads it as literal text."""
    out: list[str] = []
    n = len(word)
    for i, ch in enumerate(word):
        rep = _ALWAYS_ESCAPE.get(ch)
        if rep is not None:
            out.append(rep)
        elif ch == "_":
            before = word[i - 1] if i else ""
            after = word[i + 1] if i + 1 < n else ""
            out.append("_" if before.isalnum() and after.isalnum() else "\\_")
        elif ch == "&" and _ENTITY_LIKE.match(word, i):
            out.append("\\&")
        else:
            out.append(ch)
    text = "".join(out)
    if line_start and text:
        if text[0] in "-+=#>":
            text = "\\" + text
        else:
            match = _ORDERED_START.match(text)
            if match is not None:
                end = match.end()
                text = text[: end - 1] + "\\" + text[end - 1 :]
    return text


class _Inline:
    """Writes inline Markdown, collapsing whitespace the way HTML renders it."""

    def __init__(self, *, breaks: bool, line_start: bool, ctx: str) -> None:
        self.parts: list[str] = []
        self.pending = False
        self.lead = False
        self.lead_break = False
        self.trail_break = False
        self.breaks = breaks
        self.line_start = line_start
        self.ctx = ctx

    def sub(self) -> _Inline:
        return _Inline(breaks=self.breaks, line_start=False, ctx=self.ctx)

    def space(self) -> None:
        if not self.parts:
            self.lead = True
        elif not self.line_start:
            self.pending = True

    def raw(self, text: str) -> None:
        if self.pending:
            self.parts.append(" ")
            self.pending = False
        self.parts.append(text)
        self.line_start = False

    def text(self, text: str) -> None:
        for i, word in enumerate(_WS_RE.split(text)):
            if i:
                self.space()
            if word:
                self.raw(escape_markdown(word, line_start=self.line_start))

    def hardbreak(self) -> None:
        if not self.breaks:
            raise _Unsupported("line break here")
        self.pending = False
        if not self.parts:
            self.lead_break = True
        elif not self.line_start:
            self.parts.append("\\\n")
            self.line_start = True

    def finish(self) -> str:
        while self.parts and self.parts[-1] == "\\\n":
            self.parts.pop()
            self.trail_break = True
        return "".join(self.parts)


# -- the converter ----------------------------------------------------------------------


class _Converter:
    def __init__(self, doc: Document, *, verify: bool) -> None:
        self.doc = doc
        self.verify = verify
        self.placeholders: dict[int, Placeholder] = {}
        self.inline_originals: dict[tuple[str, str], str] = {}
        self.blocks: list[ViewBlock] = []
        self.next_id = 1
        self.next_group = 1
        self.fallbacks: list[int] = []
        self.safe_inline = False

    # placeholders

    def _new(
        self, kind: str, hint: str, storage: str, role: PlaceholderRole, group: int = 0
    ) -> str:
        ident = self.next_id
        self.next_id += 1
        ph = Placeholder(ident, _clean_kind(kind), clean_hint(hint), storage, role, group)
        self.placeholders[ident] = ph
        return ph.token

    def placeholder(self, node: Node, role: PlaceholderRole) -> str:
        kind, hint = describe(node)
        return self._new(kind, hint, self.doc.raw_node(node), role)

    def _checkpoint(self) -> int:
        return self.next_id

    def _rollback(self, checkpoint: int) -> None:
        for ident in range(checkpoint, self.next_id):
            self.placeholders.pop(ident, None)
        self.next_id = checkpoint

    def _attempt(self, node: Node, render: Callable[[], str]) -> tuple[str, bool]:
        """Render ``node`` as Markdown, or as a block placeholder if it cannot be."""
        checkpoint = self._checkpoint()
        try:
            return render(), True
        except _Unsupported:
            self._rollback(checkpoint)
            return self.placeholder(node, "block"), False

    # top level: records spans

    def top(self, nodes: list[Node]) -> None:
        run: list[Node] = []
        prev_list: list[tuple[str, bool]] = []
        for index, node in enumerate(nodes):
            if _inline_here(nodes, index):
                run.append(node)
                continue
            self._top_run(run)
            if node.is_element("ac:layout"):
                prev_list.clear()
                self.layout(node)
                continue
            checkpoint = self._checkpoint()
            result = self.block(node, prev_list)
            if result is None:
                continue
            markdown, kind = result
            if kind != "placeholder" and self.verify and not self._verified(markdown, node):
                self._rollback(checkpoint)
                markdown, kind = self._fallback(node)
                prev_list.clear()
            self._add_block(markdown, node.start, node.end, kind, checkpoint)
        self._top_run(run)

    def _fallback(self, node: Node) -> tuple[str, str]:
        """A block whose Markdown did not verify: retry with formatting as placeholders
        (keeps the words editable), else show the whole block as one placeholder."""
        self.fallbacks.append(node.start)
        if node.name == "p" or node.name in _HEADINGS:
            checkpoint = self._checkpoint()
            self.safe_inline = True
            try:
                if node.name == "p":
                    markdown = self.inline_block(node.children)
                else:
                    markdown = self.heading_md(node)
            except _Unsupported:
                markdown = ""
            finally:
                self.safe_inline = False
            if markdown and self._verified(markdown, node):
                return markdown, "paragraph" if node.name == "p" else "heading"
            self._rollback(checkpoint)
        return self.placeholder(node, "block"), "placeholder"

    def _top_run(self, run: list[Node]) -> None:
        nodes = [n for n in run if not is_blank(n)]
        run.clear()
        if not nodes:
            return
        start, end = nodes[0].start, nodes[-1].end
        checkpoint = self._checkpoint()
        try:
            markdown = self.inline_block(nodes)
        except _Unsupported:
            markdown = ""
        if not markdown:
            self._rollback(checkpoint)
            return
        raw = self.doc.raw(start, end)
        kind = "paragraph"
        if self.verify and not self._verified(markdown, None, raw):
            self._rollback(checkpoint)
            self.fallbacks.append(start)
            text = _excerpt(" ".join(n.text_content() for n in nodes))
            markdown, kind = self._new("text", text, raw, "inline"), "placeholder"
        self._add_block(markdown, start, end, kind, checkpoint)

    def _add_block(self, markdown: str, start: int, end: int, kind: str, first_id: int) -> None:
        ids = tuple(range(first_id, self.next_id))
        self.blocks.append(ViewBlock(markdown, start, end, kind, ids))

    def _verified(self, markdown: str, node: Node | None, raw: str | None = None) -> bool:
        """Whether ``markdown`` renders back to the same content as the original block."""
        original = raw if raw is not None else self.doc.raw_node(node) if node else ""
        writer = StorageWriter(self.placeholders, self.inline_originals)
        try:
            tree = parse_markdown(markdown)
            if len(tree.children) != 1:
                return False
            template = Template(self.doc, node) if node is not None else None
            rendered = writer.block(tree.children[0], template, top=True)
            return semantic_form(rendered) == semantic_form(original)
        except EditingError:
            return False

    # layouts: structure tags become placeholders, cell content stays editable

    def layout(self, lay: Node) -> None:
        group = self.next_group
        self.next_group += 1
        pieces: list[tuple[int, int, str] | list[Node]] = []

        def struct(start: int, end: int, label: str = "") -> None:
            pieces.append((start, end, label))

        struct(lay.start, lay.inner_start)
        first_section = True
        for sec in lay.children:
            if not sec.is_element("ac:layout-section"):
                struct(sec.start, sec.end)
                continue
            kind = sec.attrs.get("ac:type", "")
            struct(sec.start, sec.inner_start, ("start " if first_section else "section ") + kind)
            first_section = False
            first_cell = True
            for cell in sec.children:
                if not cell.is_element("ac:layout-cell"):
                    struct(cell.start, cell.end)
                    continue
                struct(cell.start, cell.inner_start, "" if first_cell else "cell")
                first_cell = False
                content = list(cell.children)
                while content and is_blank(content[0]):
                    struct(content[0].start, content[0].end)
                    content.pop(0)
                tail: list[Node] = []
                while content and is_blank(content[-1]):
                    tail.insert(0, content.pop())
                if content:
                    pieces.append(content)
                for node in tail:
                    struct(node.start, node.end)
                struct(cell.inner_end, cell.end)
            struct(sec.inner_end, sec.end)
        struct(lay.inner_end, lay.end, "end")

        merged: list[tuple[int, int, list[str]] | list[Node]] = []
        for piece in pieces:
            if isinstance(piece, list):
                merged.append(piece)
                continue
            start, end, label = piece
            last = merged[-1] if merged else None
            if isinstance(last, tuple) and last[1] == start:
                merged[-1] = (last[0], end, [*last[2], label])
            else:
                merged.append((start, end, [label]))
        for item in merged:
            if isinstance(item, list):
                self.top(item)
                continue
            start, end, labels = item
            label = _layout_label(labels)
            checkpoint = self._checkpoint()
            token = self._new("layout", label, self.doc.raw(start, end), "structure", group)
            self._add_block(token, start, end, "structure", checkpoint)

    # nested flows (list items, quotes): Markdown blocks only

    def flow(self, nodes: list[Node]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        run: list[Node] = []
        prev_list: list[tuple[str, bool]] = []

        def flush() -> None:
            nodes_ = [n for n in run if not is_blank(n)]
            run.clear()
            if nodes_:
                markdown = self.inline_block(nodes_)
                if markdown:
                    out.append((markdown, "paragraph"))
                    prev_list.clear()

        for index, node in enumerate(nodes):
            if _inline_here(nodes, index):
                run.append(node)
                continue
            flush()
            result = self.block(node, prev_list)
            if result is not None:
                out.append(result)
        flush()
        return out

    def block(self, node: Node, prev_list: list[tuple[str, bool]]) -> tuple[str, str] | None:
        """Markdown for one block node, ``None`` for an empty paragraph (kept as a gap)."""
        if node.kind in ("comment", "pi"):
            prev_list.clear()
            return self.placeholder(node, "block"), "placeholder"
        if node.kind != "element":
            raise AssertionError("text is inline")
        name = node.name
        if name == "p":
            checkpoint = self._checkpoint()
            try:
                markdown = self.inline_block(node.children)
            except _Unsupported:
                self._rollback(checkpoint)
                prev_list.clear()
                return self.placeholder(node, "block"), "placeholder"
            if not markdown:
                return None
            prev_list.clear()
            return markdown, "paragraph"
        if name in ("ul", "ol"):
            alt = bool(prev_list) and prev_list[-1] == (name, False)
            markdown, ok = self._attempt(node, lambda: self.list_md(node, alt=alt))
            prev_list.clear()
            if ok:
                prev_list.append((name, alt))
                return markdown, "list"
            return markdown, "placeholder"
        prev_list.clear()
        renderers: dict[str, tuple[Callable[[], str], str]] = {
            "table": (lambda: self.table_md(node), "table"),
            "blockquote": (lambda: self.quote_md(node), "quote"),
            "pre": (lambda: self.pre_md(node), "code"),
            "hr": (lambda: "---", "rule"),
        }
        if name in _HEADINGS:
            renderers[name] = (lambda: self.heading_md(node), "heading")
        if name == "ac:structured-macro" and node.attrs.get("ac:name") == "code":
            renderers[name] = (lambda: self.code_md(node), "code")
        entry = renderers.get(name)
        if entry is None:
            return self.placeholder(node, "block"), "placeholder"
        markdown, ok = self._attempt(node, entry[0])
        return markdown, entry[1] if ok else "placeholder"

    # block renderers

    def heading_md(self, node: Node) -> str:
        if node.attrs:
            raise _Unsupported("heading attributes")
        writer = _Inline(breaks=False, line_start=False, ctx="heading")
        self.inline(writer, node.children)
        text = writer.finish()
        if text.endswith("#"):
            text = text[:-1] + "\\#"
        marks = "#" * _HEADINGS[node.name]
        return f"{marks} {text}" if text else marks

    def list_md(self, node: Node, *, alt: bool) -> str:
        ordered = node.name == "ol"
        start_attr = node.attrs.get("start", "1")
        if ordered and not (start_attr.isdigit() and len(start_attr) <= 9):
            raise _Unsupported("list start")
        number = int(start_attr) if ordered else 0
        items: list[list[tuple[str, str]]] = []
        for child in node.children:
            if is_blank(child):
                continue
            if not child.is_element("li") or child.attrs:
                raise _Unsupported("list content")
            items.append(self.flow(child.children))
        tight = all(all(kind in _TIGHT_OK for _, kind in blocks[1:]) for blocks in items)
        joiner = "\n" if tight else "\n\n"
        rendered: list[str] = []
        for i, blocks in enumerate(items):
            bullet = "*" if alt else "-"
            marker = f"{number + i}{')' if alt else '.'}" if ordered else bullet
            body = joiner.join(markdown for markdown, _ in blocks)
            rendered.append(marker + (" " + _indent(body, len(marker) + 1) if body else ""))
        if not rendered:
            raise _Unsupported("empty list")
        return joiner.join(rendered)

    def table_md(self, node: Node) -> str:
        rows: list[Node] = []
        for child in node.children:
            if is_blank(child) or child.is_element("colgroup"):
                continue
            if child.is_element("thead", "tbody", "tfoot"):
                for row in child.children:
                    if is_blank(row):
                        continue
                    if not row.is_element("tr"):
                        raise _Unsupported("table content")
                    rows.append(row)
            elif child.is_element("tr"):
                rows.append(child)
            else:
                raise _Unsupported("table content")
        grid: list[list[Node]] = []
        for row in rows:
            cells: list[Node] = []
            for cell in row.children:
                if is_blank(cell):
                    continue
                if not cell.is_element("th", "td"):
                    raise _Unsupported("row content")
                if cell.attrs.get("colspan", "1") != "1" or cell.attrs.get("rowspan", "1") != "1":
                    raise _Unsupported("merged cells")
                cells.append(cell)
            grid.append(cells)
        if not grid or not grid[0] or any(len(r) != len(grid[0]) for r in grid):
            raise _Unsupported("ragged table")
        header_th = all(c.name == "th" for c in grid[0])
        if not header_th and any(c.name == "th" for c in grid[0]):
            raise _Unsupported("mixed header row")
        if any(c.name == "th" for r in grid[1:] for c in r):
            raise _Unsupported("header cells in the body")
        lines = []
        for r, cells in enumerate(grid):
            lines.append("| " + " | ".join(self.cell_md(c) for c in cells) + " |")
            if r == 0:
                lines.append("|" + "|".join(" --- " for _ in cells) + "|")
        return "\n".join(lines)

    def cell_md(self, cell: Node) -> str:
        content = [c for c in cell.children if not is_blank(c)]
        if len(content) == 1 and content[0].is_element("p"):
            content = content[0].children
        writer = _Inline(breaks=False, line_start=False, ctx="cell")
        for index, node in enumerate(content):
            if _inline_here(content, index):
                self.inline(writer, [node])
            elif node.name in _MARKDOWN_BLOCKS:
                raise _Unsupported("block content in a cell")
            else:  # a macro alone in a cell: restored into the cell as it was
                writer.raw(self.placeholder(node, "block"))
        return writer.finish()

    def quote_md(self, node: Node) -> str:
        blocks = self.flow(node.children)
        if not blocks:
            raise _Unsupported("empty quote")
        body = "\n\n".join(markdown for markdown, _ in blocks)
        return "\n".join(f"> {line}" if line else ">" for line in body.split("\n"))

    def code_md(self, node: Node) -> str:
        language = ""
        body = ""
        for child in node.children:
            if is_blank(child):
                continue
            if child.is_element("ac:parameter"):
                if child.attrs.get("ac:name") == "language":
                    language = child.text_content().strip()
            elif child.is_element("ac:plain-text-body"):
                body = child.text_content()
            else:
                raise _Unsupported("code macro content")
        if any(ch.isspace() or ch in "`~{}" for ch in language):
            raise _Unsupported("code language")
        return _fence(body, language)

    def pre_md(self, node: Node) -> str:
        if any(c.kind != "text" for c in node.children):
            raise _Unsupported("markup in pre")
        return _fence(node.text_content(), "")

    # inline content

    def inline_block(self, nodes: list[Node]) -> str:
        writer = _Inline(breaks=True, line_start=True, ctx="block")
        self.inline(writer, nodes)
        return writer.finish()

    def inline(self, writer: _Inline, nodes: list[Node]) -> None:
        for node in nodes:
            if node.kind in ("text", "cdata"):
                writer.text(node.text)
            elif node.kind != "element":
                writer.raw(self.placeholder(node, "inline"))
            else:
                self.inline_element(writer, node)

    def inline_element(self, writer: _Inline, node: Node) -> None:
        name = node.name
        if self.safe_inline and name in _FORMATTING:
            writer.raw(self.placeholder(node, "inline"))
        elif name in ("strong", "b", "em", "i", "s", "del", "strike") and not node.attrs:
            delim = {"strong": "**", "b": "**", "em": "*", "i": "*"}.get(name, "~~")
            self._wrap(writer, node, delim)
        elif name == "code" and not node.attrs and all(c.kind == "text" for c in node.children):
            self._code_span(writer, node.text_content())
        elif name == "br":
            writer.hardbreak()
        elif name == "a" and "href" in node.attrs:
            self._link(writer, node, node.attrs["href"], node.children)
        elif name == "ac:link" and self._page_link(writer, node):
            return
        elif is_inline(node) or name.startswith(("ac:", "ri:")) or name == "time":
            writer.raw(self.placeholder(node, "inline"))
        else:
            raise _Unsupported(f"block element {name} inside text")

    def _wrap(self, writer: _Inline, node: Node, delim: str) -> None:
        sub = writer.sub()
        self.inline(sub, node.children)
        body = sub.finish()
        if not body:
            if sub.lead or sub.pending:
                writer.space()
            return
        if sub.lead_break:
            writer.hardbreak()
        elif sub.lead:
            writer.space()
        if "*" in delim and (body.startswith("*") or body.endswith("*")):
            delim = delim.replace("*", "_")
        writer.raw(delim + body + delim)
        if sub.trail_break:
            writer.hardbreak()
        elif sub.pending:
            writer.space()

    def _code_span(self, writer: _Inline, text: str) -> None:
        text = text.replace("\n", " ")
        if not text:
            return
        if writer.ctx == "cell" and "|" in text:
            raise _Unsupported("pipe in a table code span")
        longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
        fence = "`" * (longest + 1)
        pad = ""
        if text[0] == "`" or text[-1] == "`" or (text[0] == " " == text[-1] and text.strip(" ")):
            pad = " "
        writer.raw(fence + pad + text + pad + fence)

    def _link(
        self,
        writer: _Inline,
        node: Node,
        url: str,
        label_nodes: list[Node],
        default_label: str = "",
    ) -> None:
        dest = _destination(url, cell=writer.ctx == "cell")
        if dest is None:
            writer.raw(self.placeholder(node, "inline"))
            return
        sub = _Inline(breaks=False, line_start=False, ctx=writer.ctx)
        self.inline(sub, label_nodes)
        label = sub.finish()
        label_text = " ".join("".join(n.text_content() for n in label_nodes).split())
        if not label and not label_text and default_label.strip():
            # A link without a body shows the page title; show it in Markdown too.  The
            # original (bodiless) link is restored as long as the label stays the title.
            sub = _Inline(breaks=False, line_start=False, ctx=writer.ctx)
            sub.text(default_label)
            label = sub.finish()
            label_text = " ".join(default_label.split())
        self.inline_originals.setdefault((url, label_text), self.doc.raw_node(node))
        if sub.lead:
            writer.space()
        writer.raw(f"[{label}]({dest})")
        if sub.pending:
            writer.space()

    def _page_link(self, writer: _Inline, node: Node) -> bool:
        """Render an ``ac:link`` to a page as a ``confluence-page:`` link; False if not one."""
        page: Node | None = None
        body: list[Node] = []
        for child in node.children:
            if is_blank(child):
                continue
            if child.is_element("ri:page") and page is None:
                page = child
            elif child.is_element("ac:plain-text-link-body", "ac:link-body") and not body:
                body = child.children
            else:
                return False
        if page is None or "ri:content-title" not in page.attrs:
            return False
        url = page_url(
            page.attrs.get("ri:space-key", ""),
            page.attrs["ri:content-title"],
            node.attrs.get("ac:anchor", ""),
        )
        self._link(writer, node, url, body, page.attrs["ri:content-title"])
        return True


# -- helpers ----------------------------------------------------------------------------


def _inline_here(nodes: list[Node], index: int) -> bool:
    """Whether a node is part of running text: inline by kind, or a macro next to text."""
    node = nodes[index]
    if is_inline(node):
        return True
    if not node.is_element("ac:structured-macro", "ac:macro"):
        return False
    neighbours = nodes[max(0, index - 1) : index] + nodes[index + 1 : index + 2]
    return any(is_inline(other) and not is_blank(other) for other in neighbours)


def _destination(url: str, *, cell: bool) -> str | None:
    """A Markdown link destination for ``url``; None if it cannot be written exactly."""
    if any(ord(ch) < 32 or ch == "\\" for ch in url) or (cell and "|" in url):
        return None
    escaped = "".join(
        "\\&" if ch == "&" and _ENTITY_LIKE.match(url, i) else ch for i, ch in enumerate(url)
    )
    if url and not any(ch in " ()<>" for ch in url):
        return escaped
    if "<" in url or ">" in url:
        return None
    return f"<{escaped}>"


def _fence(body: str, info: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    content = body + "\n" if body else ""
    return f"{fence}{info}\n{content}{fence}"


def _indent(text: str, width: int) -> str:
    pad = " " * width
    lines = text.split("\n")
    return "\n".join([lines[0], *[(pad + line) if line else "" for line in lines[1:]]])


def _clean_kind(kind: str) -> str:
    local = kind.split(":")[-1]
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "-", local).strip("-").lower()
    return cleaned[:24] or "content"


def _layout_label(labels: list[str]) -> str:
    for prefix in ("start ", "section "):
        for label in labels:
            if label.startswith(prefix):
                return label.strip()
    if "cell" in labels:
        return "cell"
    if "end" in labels:
        return "end"
    return "layout"


def _excerpt(text: str, words: int = 5) -> str:
    return " ".join(text.split()[:words])


def _words(node: Node, words: int = 5) -> str:
    """The first words of a node's text, with text nodes kept apart (cells, items)."""
    texts = (n.text for n in node.iter() if n.kind == "text")
    return _excerpt(" ".join(texts), words)


def _params(node: Node) -> dict[str, str]:
    return {
        child.attrs.get("ac:name", ""): child.text_content().strip()
        for child in node.elements("ac:parameter")
    }


def describe(node: Node) -> tuple[str, str]:
    """The ``(kind, hint)`` a placeholder shows for a node."""
    name = node.name
    if node.kind == "comment":
        return "xml-comment", _excerpt(node.text)
    if node.kind == "pi":
        return "xml-pi", node.name
    if name in ("ac:structured-macro", "ac:macro"):
        macro = node.attrs.get("ac:name", "macro")
        params = _params(node)
        if macro == "jira":
            return macro, params.get("key") or params.get("jqlQuery", "")
        if macro == "status":
            return macro, params.get("title", "")
        page = next((n for n in node.iter() if n.is_element("ri:page")), None)
        if page is not None and macro in ("include", "excerpt-include"):
            return macro, page.attrs.get("ri:content-title", "")
        if params.get("title"):
            return macro, params["title"]
        body = node.first("ac:rich-text-body")
        if body is not None:
            return macro, _words(body)
        return macro, ""
    if name == "ac:image":
        att = node.first("ri:attachment")
        if att is not None:
            return "image", att.attrs.get("ri:filename", "")
        url = node.first("ri:url")
        value = url.attrs.get("ri:value", "") if url is not None else ""
        return "image", value.rstrip("/").rsplit("/", 1)[-1]
    if name == "ac:link":
        if node.first("ri:user") is not None:
            return "mention", ""
        att = node.first("ri:attachment")
        if att is not None:
            return "attachment", att.attrs.get("ri:filename", "")
        target = next(
            (c for c in node.children if c.is_element() and c.name.startswith("ri:")), None
        )
        if target is not None:
            label = (
                target.attrs.get("ri:content-title")
                or target.attrs.get("ri:space-key")
                or target.attrs.get("ri:value", "")
            )
            return "link", label
        return "link", node.attrs.get("ac:anchor", "")
    if name == "ri:user":
        return "mention", ""
    if name == "ac:emoticon":
        return "emoticon", node.attrs.get("ac:name", "") or node.attrs.get("ac:emoji-shortname", "")
    if name == "time":
        return "date", node.attrs.get("datetime", "")
    if name == "ac:task-list":
        tasks = [t for t in node.iter() if t.is_element("ac:task")]
        first = tasks[0].first("ac:task-body") if tasks else None
        excerpt = _words(first, 4) if first is not None else ""
        return "tasks", f"{len(tasks)}: {excerpt}" if excerpt else str(len(tasks))
    if name == "ac:inline-comment-marker":
        return "commented", _words(node)
    if name == "ac:placeholder":
        return "instruction", _words(node)
    if name == "table":
        return "table", _words(node, 4)
    return name, _words(node, 4)
