"""Storage -> Markdown view -> storage on the whole corpus (tests/storage_corpus/*.xml).

The corpus is written from Atlassian's storage-format reference: macros with parameters and
rich/plain bodies, page/user/attachment links, images, emoticons, tasks, layouts, tables
with merged cells, entities and unicode.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harbor_confluence.editing import (
    StorageParseError,
    apply_markdown,
    canonical,
    parse_storage,
    semantic_form,
    to_markdown,
)
from harbor_confluence.editing.placeholders import TOKEN_RE
from harbor_confluence.editing.render import StorageWriter, Template, parse_markdown

CORPUS = Path(__file__).parent / "storage_corpus"
DOCS = sorted(CORPUS.glob("*.xml"))


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_corpus_is_big_enough() -> None:
    assert len(DOCS) >= 30


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.stem)
def test_round_trip_without_edit_is_byte_identical(path: Path) -> None:
    storage = _read(path)
    view = to_markdown(storage)
    result = apply_markdown(storage, view, view.text)
    assert result.storage == storage  # byte-identical, not merely canonical
    assert canonical(result.storage) == canonical(storage)
    assert result.removed_placeholders == ()
    assert result.changed_blocks == result.added_blocks == result.removed_blocks == 0


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.stem)
def test_every_markdown_block_renders_back_to_the_same_content(path: Path) -> None:
    """Re-render each block from its Markdown (as if the agent had edited it)."""
    storage = _read(path)
    view = to_markdown(storage)
    assert view.fallbacks == (), "a block had to fall back to a placeholder"
    source = storage.encode()
    for block in view.blocks:
        if block.kind == "structure":  # a run of layout tags, not well-formed alone
            continue
        raw = source[block.start : block.end].decode()
        tree = parse_markdown(block.markdown)
        assert len(tree.children) == 1, block.markdown
        doc = parse_storage(raw)
        elements = [n for n in doc.children if n.kind == "element"]
        template = Template(doc, elements[0]) if len(doc.children) == 1 and elements else None
        writer = StorageWriter(view.placeholders, view.inline_originals)
        rendered = writer.block(tree.children[0], template, top=True)
        assert semantic_form(rendered) == semantic_form(raw), block.markdown


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.stem)
def test_placeholders_are_short_and_their_storage_is_verbatim(path: Path) -> None:
    storage = _read(path)
    view = to_markdown(storage)
    tokens = TOKEN_RE.findall(view.text)
    assert sorted(int(t) for t in tokens) == sorted(view.placeholders)
    for ph in view.placeholders.values():
        assert len(ph.token) <= 50
        assert ph.storage in storage  # kept byte for byte
        assert ph.token in view.text


def test_ids_are_deterministic() -> None:
    storage = _read(CORPUS / "31_release_notes.xml")
    first, second = to_markdown(storage), to_markdown(storage)
    assert first.text == second.text
    assert first.placeholders == second.placeholders


def test_markdown_view_expresses_what_markdown_can() -> None:
    text = to_markdown(_read(CORPUS / "22_page_links.xml")).text
    assert "[the getting started guide](confluence-page:DEV/Getting%20Started)" in text
    assert "[**troubleshooting**](confluence-page:DEV/Install%20%2F%20Upgrade%20%28v2%29" in text
    assert "[a search (with spaces)](<https://example.com/search?q=a b&lang=en>)" in text
    code = to_markdown(_read(CORPUS / "04_code_macro_cdata.xml")).text
    assert "```python\nimport os\n" in code and 'print("<debug> & ]]> done")' in code
    assert "````\n$ harbor --version" in code  # a longer fence around a body holding ```
    lists = to_markdown(_read(CORPUS / "12_nested_lists.xml")).text
    assert "1. Prepare the host\n   - Install Docker" in lists
    assert "- Second bullet\n\n* A separate list right after" in lists  # lists stay apart
    assert "4. Fourth\n5. Fifth" in lists
    table = to_markdown(_read(CORPUS / "14_simple_table.xml")).text
    assert table.startswith("| **Name** | **Type** | **Default** |\n| --- | --- | --- |\n")


def test_what_markdown_cannot_express_is_a_placeholder() -> None:
    kinds = {
        "05_info_note_warning_tip.xml": {"info", "note", "warning", "tip"},
        "06_toc.xml": {"toc"},
        "07_expand.xml": {"expand"},
        "08_status_lozenges.xml": {"status"},
        "09_jira.xml": {"jira"},
        "10_children_include.xml": {"children", "include", "excerpt-include"},
        "11_unknown_third_party_macro.xml": {"drawio", "gliffy", "mermaid-cloud"},
        "15_table_merged_cells.xml": {"table"},
        "17_layouts.xml": {"layout", "info"},
        "19_images.xml": {"image"},
        "20_attachments.xml": {"attachment", "view-file", "attachments"},
        "21_user_mentions.xml": {"mention", "date"},
        "23_emoticons.xml": {"emoticon"},
        "24_task_lists.xml": {"tasks"},
        "27_time_placeholders_comments.xml": {"date", "instruction", "commented", "xml-comment"},
    }
    for name, expected in kinds.items():
        view = to_markdown(_read(CORPUS / name))
        assert expected <= {p.kind for p in view.placeholders.values()}, name


def test_block_and_inline_placeholders_sit_where_they_belong() -> None:
    view = to_markdown(_read(CORPUS / "08_status_lozenges.xml"))
    first = view.text.split("\n\n")[0]
    assert re.fullmatch(r"Project state: ⟦1:status On track⟧ as of this week\.", first)
    assert "| API | ⟦2:status In review⟧ |" in view.text  # a lozenge alone in a cell
    view = to_markdown(_read(CORPUS / "05_info_note_warning_tip.xml"))
    assert "\n\n⟦1:info Supported versions⟧\n\n" in view.text  # a paragraph of its own


def test_entities_and_unicode_survive() -> None:
    view = to_markdown(_read(CORPUS / "25_entities.xml"))
    assert "Prices&nbsp;include&nbsp;VAT \u2014 see terms \u2013 2024\u2026" in view.text
    assert "## Café & Crème" in view.text
    text = to_markdown(_read(CORPUS / "26_unicode.xml")).text
    assert "&#x27E6;not a placeholder&#x27E7;" in text  # literal brackets are escaped
    assert "👩‍💻" in text


def test_malformed_storage_is_a_clear_error() -> None:
    with pytest.raises(StorageParseError, match="not well-formed"):
        to_markdown("<p>unclosed")
    with pytest.raises(StorageParseError):
        to_markdown("<p>&undefinedentity;</p>")
