"""Apply an edited Markdown view to the storage it came from, keeping what did not change.

The edited Markdown is cut into top-level blocks (markdown-it's block map) and aligned with
the view's blocks (difflib on the blocks' text).  A block the agent left alone, or only
moved, is emitted as its original storage bytes; a changed or new block is rendered from
Markdown, with the original block it replaces as a template.  Placeholders are restored
verbatim wherever they now are; those that are gone are reported so a review can show the
deletion, never lose it silently.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from markdown_it.tree import SyntaxTreeNode

from .errors import EditingError, PlaceholderError, StaleViewError
from .markdown_view import (
    MarkdownView,
    ViewBlock,
    block_renders_back,
    storage_sha256,
    to_markdown,
)
from .placeholders import Placeholder
from .render import StorageWriter, Template, markdown_parser
from .storage import parse_storage, paused_gc


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The new storage and what the edit did to the original blocks and placeholders."""

    storage: str
    removed_placeholders: tuple[Placeholder, ...]
    duplicated_placeholders: tuple[Placeholder, ...]
    unchanged_blocks: int
    moved_blocks: int
    changed_blocks: int
    added_blocks: int
    removed_blocks: int

    @property
    def lossless(self) -> bool:
        """True when no placeholder (hidden content) was removed."""
        return not self.removed_placeholders

    def summary(self) -> dict[str, object]:
        """A JSON-friendly report, with removed placeholders listed by kind."""
        return {
            "unchanged_blocks": self.unchanged_blocks,
            "moved_blocks": self.moved_blocks,
            "changed_blocks": self.changed_blocks,
            "added_blocks": self.added_blocks,
            "removed_blocks": self.removed_blocks,
            "removed_placeholders": [
                {"id": p.id, "kind": p.kind, "hint": p.hint, "token": p.token}
                for p in self.removed_placeholders
            ],
            "duplicated_placeholders": [p.token for p in self.duplicated_placeholders],
        }


@dataclass(frozen=True, slots=True)
class _Edited:
    key: str
    node: SyntaxTreeNode


@dataclass(slots=True)
class _Out:
    storage: str
    anchor: int | None


def block_key(markdown: str) -> str:
    """What two blocks must share to count as unchanged (trailing spaces do not count)."""
    return "\n".join(line.rstrip() for line in markdown.split("\n")).strip("\n")


def split_blocks(markdown: str) -> list[_Edited]:
    """Top-level blocks of a Markdown document, with the source text of each."""
    env: dict[str, object] = {}
    tokens = markdown_parser().parse(markdown, env)
    root = SyntaxTreeNode(tokens)
    lines = markdown.split("\n")
    blocks: list[_Edited] = []
    for child in root.children:
        span = child.map
        text = "\n".join(lines[span[0] : span[1]]) if span is not None else child.content
        blocks.append(_Edited(block_key(text), child))
    return blocks


def apply_markdown(
    original_storage: str,
    view: MarkdownView | Mapping[int, Placeholder] | None,
    edited_markdown: str,
    *,
    verify: bool = True,
) -> ApplyResult:
    """Turn an edited Markdown view back into storage, based on the original document.

    ``view`` is the view the agent edited, or just its placeholder table, or ``None``:
    views are deterministic, so it is recomputed from the original (a table given is
    checked against it) with ``to_markdown(verify=verify)``.  Raises
    :class:`UnknownPlaceholderError` for ids the view never issued,
    :class:`PlaceholderError` for misplaced ones, :class:`StaleViewError` if the view was
    made from another document.

    With an unverified view (``verify=False``: the view costs a quarter of the time), each
    original block that a changed block replaces is proven to render back from its
    Markdown first, as a verified view proves every block; one that does not (it holds
    something the Markdown could not show) is refused with :class:`EditingError` rather
    than rewritten from Markdown that would drop it.  Blocks the edit leaves alone are
    copied byte for byte either way, so both views give the same storage for any edit
    they both accept.
    """
    with paused_gc():
        return _apply(original_storage, view, edited_markdown, verify=verify)


def _apply(
    original_storage: str,
    view: MarkdownView | Mapping[int, Placeholder] | None,
    edited_markdown: str,
    *,
    verify: bool,
) -> ApplyResult:
    if not isinstance(view, MarkdownView):
        table = view
        view = to_markdown(original_storage, verify=verify)
        if table is not None and any(
            view.placeholders.get(i) is None or view.placeholders[i].storage != p.storage
            for i, p in table.items()
        ):
            raise StaleViewError("the placeholder table was made from a different page version")
    elif view.source_sha256 != storage_sha256(original_storage):
        raise StaleViewError("the Markdown view was made from a different version of the page")
    source = original_storage.encode("utf-8")
    originals = list(view.blocks)
    orig_keys = [block_key(b.markdown) for b in originals]
    first_by_key: dict[str, int] = {}
    for i, key in enumerate(orig_keys):
        first_by_key.setdefault(key, i)

    writer = StorageWriter(view.placeholders, view.inline_originals)
    kept_ids: list[int] = []
    out: list[_Out] = []
    counts = Counter[str]()

    def raw(start: int, end: int) -> str:
        return source[start:end].decode("utf-8")

    def keep(index: int, *, moved: bool) -> None:
        block = originals[index]
        out.append(_Out(raw(block.start, block.end), index))
        kept_ids.extend(block.placeholder_ids)
        counts["moved" if moved else "unchanged"] += 1

    def render(item: _Edited, anchor: int | None) -> None:
        template = None
        if anchor is not None and originals[anchor].kind not in ("structure", "placeholder"):
            if not view.verified and not block_renders_back(view, source, anchor):
                raise EditingError(
                    f"the block {_excerpt(originals[anchor].markdown)!r} holds content its "
                    "Markdown cannot show exactly, so it cannot be rewritten from Markdown "
                    "without losing it: leave that block unchanged and make the change with "
                    "a targeted edit (a section, the exact text) or in storage format"
                )
            template = _template(raw(originals[anchor].start, originals[anchor].end))
        storage = writer.block(item.node, template, top=True)
        try:
            parse_storage(storage)
        except EditingError as exc:  # a renderer bug, or a placeholder in an invalid place
            raise EditingError(f"the edit would produce malformed storage: {exc}") from exc
        out.append(_Out(storage, anchor))
        counts["changed" if anchor is not None else "added"] += 1

    # Unchanged leading and trailing blocks need no parse and no diff (big pages stay fast).
    head, tail, middle = _changed_region(view, orig_keys, edited_markdown)
    for k in range(head):
        keep(k, moved=False)
    middle_orig = orig_keys[head : len(orig_keys) - tail]
    middle_edit = [e.key for e in middle]
    matcher = difflib.SequenceMatcher(None, middle_orig, middle_edit, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        i1, i2 = i1 + head, i2 + head
        if tag == "equal":
            for k in range(i2 - i1):
                keep(i1 + k, moved=False)
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(j2 - j1):
            item = middle[j1 + k]
            same = first_by_key.get(item.key)
            if same is not None:
                keep(same, moved=same != i1 + k)
            else:
                render(item, i1 + k if k < paired else None)
        counts["removed"] += max(0, (i2 - i1) - (j2 - j1))
    for k in range(len(orig_keys) - tail, len(orig_keys)):
        keep(k, moved=False)

    storage = _join(source, originals, out)
    used = kept_ids + writer.used
    _check_structure(view, used)
    seen = Counter(used)
    removed = tuple(p for i, p in sorted(view.placeholders.items()) if i not in seen)
    duplicated = tuple(view.placeholders[i] for i, n in sorted(seen.items()) if n > 1)
    return ApplyResult(
        storage=storage,
        removed_placeholders=removed,
        duplicated_placeholders=duplicated,
        unchanged_blocks=counts["unchanged"],
        moved_blocks=counts["moved"],
        changed_blocks=counts["changed"],
        added_blocks=counts["added"],
        removed_blocks=counts["removed"],
    )


def _excerpt(markdown: str, limit: int = 60) -> str:
    flat = " ".join(markdown.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def _changed_region(
    view: MarkdownView, orig_keys: list[str], edited: str, *, fast: bool = True
) -> tuple[int, int, list[_Edited]]:
    """``(head, tail, middle)``: how many original blocks lead and trail unchanged, and the
    edited blocks in between.

    The view's text is its blocks joined by blank lines, so the text the edit left alone
    at both ends maps onto whole blocks without parsing it.  Only the changed region is
    parsed, with one unchanged block on each side as context; the parse is trusted when
    those two come back as the same blocks (the change did not merge into, swallow or
    reopen a neighbour: an unclosed fence, a lazy continuation, an indented list item
    continuation ...), else the whole edited document is parsed, as Markdown requires.
    """
    n = len(orig_keys)
    text = view.text
    if edited == text:
        return n, 0, []
    starts: list[int] = []
    at = 0
    for block in view.blocks:
        starts.append(at)
        at += len(block.markdown) + 2
    starts.append(len(text))  # block i with its separator is text[starts[i]:starts[i + 1]]
    limit = min(len(text), len(edited))
    prefix = _common_prefix(text, edited, limit)
    suffix = _common_prefix(text[::-1], edited[::-1], limit - prefix) if n else 0
    head = 0
    while head < n and starts[head + 1] <= prefix:
        head += 1
    tail = 0
    while tail < n - head and starts[n - tail - 1] >= len(text) - suffix:
        tail += 1
    if n and fast:
        ctx_head, ctx_tail = max(0, head - 1), max(0, tail - 1)
        start = starts[ctx_head]
        end_in_edit = len(edited) - (len(text) - starts[n - ctx_tail])
        if start <= end_in_edit:
            parsed = split_blocks(edited[start:end_in_edit])
            lead_ok = ctx_head == head or (bool(parsed) and parsed[0].key == orig_keys[ctx_head])
            trail_ok = ctx_tail == tail or (
                len(parsed) > (ctx_head != head) and parsed[-1].key == orig_keys[n - tail]
            )
            if lead_ok and trail_ok:
                return head, tail, parsed[(head - ctx_head) : len(parsed) - (tail - ctx_tail)]
    # The general case: the whole document, trimmed of equal blocks at both ends.
    blocks = split_blocks(edited)
    keys = [b.key for b in blocks]
    head = 0
    while head < min(n, len(keys)) and orig_keys[head] == keys[head]:
        head += 1
    tail = 0
    while tail < min(n, len(keys)) - head and orig_keys[-1 - tail] == keys[-1 - tail]:
        tail += 1
    return head, tail, blocks[head : len(blocks) - tail]


def _common_prefix(a: str, b: str, limit: int) -> int:
    """Length of the longest common prefix of ``a`` and ``b`` (at most ``limit``)."""
    lo, hi = 0, limit
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # bisection over slices: C-speed comparisons, O(log n) of them
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _template(raw: str) -> Template | None:
    """The original block as a template, when it is a single element."""
    doc = parse_storage(raw)
    elements = [n for n in doc.children if n.kind == "element"]
    if len(doc.children) != 1 or len(elements) != 1:
        return None
    return Template(doc, elements[0])


def _join(source: bytes, originals: list[ViewBlock], out: list[_Out]) -> str:
    """Concatenate output blocks, keeping original inter-block bytes between neighbours."""
    if not originals:
        return "".join(item.storage for item in out)
    parts: list[str] = []
    prev: int | None = -1
    for item in out:
        parts.append(_gap(source, originals, prev, item.anchor))
        parts.append(item.storage)
        prev = item.anchor
    parts.append(_gap(source, originals, prev, len(originals)))
    return "".join(parts)


def _gap(source: bytes, originals: list[ViewBlock], before: int | None, after: int | None) -> str:
    """Original bytes between blocks ``before`` and ``after`` if they were neighbours."""
    if before is None or after is None or after != before + 1:
        return ""
    start = originals[before].end if before >= 0 else 0
    end = originals[after].start if after < len(originals) else len(source)
    return source[start:end].decode("utf-8")


def _check_structure(view: MarkdownView, used: list[int]) -> None:
    """Layout tokens of one layout must all stay, in order, or all go."""
    groups: dict[int, list[int]] = {}
    for ident, ph in sorted(view.placeholders.items()):
        if ph.role == "structure":
            groups.setdefault(ph.group, []).append(ident)
    for ids in groups.values():
        members = set(ids)
        present = [i for i in used if i in members]
        if not present:
            continue
        if present != ids:
            missing = [i for i in ids if i not in present]
            culprit = view.placeholders[missing[0] if missing else present[0]]
            raise PlaceholderError(
                f"layout placeholder {culprit.token} was removed, repeated or moved out of "
                "order; keep all of one layout's placeholders in their order (content "
                "between them can change), or delete all of them to remove the layout",
                token=culprit.token,
            )
