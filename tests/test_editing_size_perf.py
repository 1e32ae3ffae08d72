"""Size of the Markdown view against storage, and conversion time on a ~1 MB page.

Numbers are printed (run with ``-s`` to see them); only the size ratio is asserted.
"""

from __future__ import annotations

import time
from pathlib import Path

from harbor_confluence.editing import apply_markdown, to_markdown

CORPUS = Path(__file__).parent / "storage_corpus"
DOCS = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.xml"))]


def test_markdown_view_is_at_most_60_percent_of_storage() -> None:
    storage_bytes = sum(len(doc.encode()) for doc in DOCS)
    markdown_bytes = sum(len(to_markdown(doc).text.encode()) for doc in DOCS)
    ratio = markdown_bytes / storage_bytes
    print(f"\nmarkdown/storage: {markdown_bytes}/{storage_bytes} bytes = {ratio:.1%}")
    assert ratio <= 0.60


def test_one_megabyte_page_both_ways() -> None:
    parts: list[str] = []
    size = 0
    while size < 1_000_000:
        for doc in DOCS:
            parts.append(doc)
            size += len(doc.encode())
    page = "".join(parts)
    started = time.perf_counter()
    view = to_markdown(page)
    to_md = time.perf_counter() - started
    started = time.perf_counter()
    same = apply_markdown(page, view, view.text)
    back = time.perf_counter() - started
    edited_text = view.text.replace("Every second Tuesday", "Every Wednesday", 1)
    started = time.perf_counter()
    edited = apply_markdown(page, view, edited_text)
    back_edit = time.perf_counter() - started
    print(
        f"\n1 MB page ({size} bytes, {len(view.blocks)} blocks, {len(view.placeholders)} "
        f"placeholders): to_markdown {to_md:.2f}s, apply unchanged {back:.2f}s, "
        f"apply one edit {back_edit:.2f}s"
    )
    assert same.storage == page
    assert edited.changed_blocks == 1
    assert edited.storage == page.replace("Every second Tuesday", "Every Wednesday", 1)
