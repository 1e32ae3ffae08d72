"""Applying an edited Markdown view: only what the agent changed changes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harbor_confluence.editing import (
    EditingError,
    PlaceholderError,
    StaleViewError,
    TargetNotFoundError,
    UnknownPlaceholderError,
    apply_markdown,
    markdown_to_storage,
    parse_storage,
    replace_text,
    review_diff,
    semantic_form,
    to_markdown,
)
from harbor_confluence.editing.placeholders import TOKEN_RE

CORPUS = Path(__file__).parent / "storage_corpus"
DOCS = sorted(CORPUS.glob("*.xml"))


def _read(name: str) -> str:
    return (CORPUS / name).read_text(encoding="utf-8")


def _blocks(text: str) -> list[str]:
    return text.rstrip("\n").split("\n\n") if "```" not in text else [text]


def test_one_paragraph_edit_changes_only_that_block() -> None:
    storage = _read("02_headings_and_sections.xml")
    view = to_markdown(storage)
    target = next(b for b in view.blocks if "package manager" in b.markdown)
    edited = view.text.replace(target.markdown, "Use **apt** or dnf.")
    result = apply_markdown(storage, view, edited)
    src = storage.encode()
    new = result.storage.encode()
    before, after = src[: target.start], src[target.end :]
    assert new.startswith(before) and new.endswith(after)
    assert new[len(before) : len(new) - len(after)] == b"<p>Use <strong>apt</strong> or dnf.</p>"
    assert (result.changed_blocks, result.unchanged_blocks) == (1, len(view.blocks) - 1)
    # every other block's storage bytes are unchanged
    for block in view.blocks:
        if block is not target:
            assert src[block.start : block.end] in new


def _word_edits(path: Path) -> list[tuple[int, str]]:
    storage = path.read_text(encoding="utf-8")
    view = to_markdown(storage)
    src = storage.encode()
    edits: list[tuple[int, str]] = []
    for index, block in enumerate(view.blocks):
        if block.kind in ("placeholder", "structure", "code"):
            continue
        raw = src[block.start : block.end].decode()
        visible = TOKEN_RE.sub(" ", block.markdown)  # not words of placeholder hints
        words = re.findall(r"(?<![\w%/-])[A-Za-z]{4,}(?![\w%/-])", visible)
        for word in words:
            if len(re.findall(rf"\b{word}\b", block.markdown)) != 1:
                continue
            try:
                replace_text(raw, word, "Edited")
            except (TargetNotFoundError, EditingError):
                continue
            edits.append((index, word))
            break
    return edits


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.stem)
def test_word_edit_in_any_block_touches_only_that_block(path: Path) -> None:
    """Across the corpus: change one word of a block; the rest stays byte-identical and
    the block means what the same edit made directly on storage means."""
    storage = path.read_text(encoding="utf-8")
    view = to_markdown(storage)
    src = storage.encode()
    for index, word in _word_edits(path):
        block = view.blocks[index]
        pieces = [b.markdown for b in view.blocks]
        pieces[index] = re.sub(rf"\b{word}\b", "Edited", pieces[index], count=1)
        result = apply_markdown(storage, view, "\n\n".join(pieces) + "\n")
        new = result.storage.encode()
        before, after = src[: block.start], src[block.end :]
        assert new.startswith(before) and new.endswith(after), (path.name, word)
        middle = new[len(before) : len(new) - len(after)].decode()
        expected = replace_text(src[block.start : block.end].decode(), word, "Edited")
        assert semantic_form(middle) == semantic_form(expected), (path.name, word, middle)
        assert result.removed_placeholders == ()


def test_corpus_offers_many_word_edits() -> None:
    assert sum(len(_word_edits(p)) for p in DOCS) >= 60


def test_moved_block_placeholder_keeps_its_bytes() -> None:
    storage = _read("05_info_note_warning_tip.xml")
    view = to_markdown(storage)
    token = view.placeholders[1].token
    edited = view.text.replace(token + "\n\n", "") + "\n" + token + "\n"
    result = apply_markdown(storage, view, edited)
    info = view.placeholders[1].storage
    assert result.storage.count(info) == 1
    assert result.storage.rstrip().endswith(info)
    assert result.removed_placeholders == ()
    assert result.moved_blocks >= 1


def test_removed_placeholder_is_reported_and_review_flags_the_loss() -> None:
    storage = _read("05_info_note_warning_tip.xml")
    view = to_markdown(storage)
    warning = next(p for p in view.placeholders.values() if p.kind == "warning")
    result = apply_markdown(storage, view, view.text.replace(warning.token, ""))
    assert [(p.kind, p.hint) for p in result.removed_placeholders] == [("warning", "Data loss")]
    assert not result.lossless
    assert result.summary()["removed_placeholders"] == [
        {"id": warning.id, "kind": "warning", "hint": "Data loss", "token": warning.token}
    ]
    review = review_diff(storage, result.storage)
    assert review["losses"] == ["macro 'warning': 1 -> 0"]


def test_inline_placeholders_can_be_moved_within_text() -> None:
    storage = _read("21_user_mentions.xml")
    view = to_markdown(storage)
    first, second = view.placeholders[1], view.placeholders[2]
    edited = view.text.replace(
        f"Owner: {first.token}, backup: {second.token}.",
        f"Backup {second.token} now owns it; {first.token} helps.",
    )
    result = apply_markdown(storage, view, edited)
    assert result.removed_placeholders == ()
    p = parse_storage(result.storage).children[0]
    assert p.name == "p"
    assert result.storage.index(second.storage) < result.storage.index(first.storage)
    assert result.storage.startswith(
        f"<p>Backup {second.storage} now owns it; {first.storage} helps.</p>"
    )


def test_unknown_placeholder_id_is_an_error_naming_the_token() -> None:
    storage = _read("06_toc.xml")
    view = to_markdown(storage)
    with pytest.raises(UnknownPlaceholderError, match="⟦99:info made up⟧") as info:
        apply_markdown(storage, view, view.text + "\n⟦99:info made up⟧\n")
    assert info.value.token == "⟦99:info made up⟧"
    assert isinstance(info.value, ValueError)
    with pytest.raises(PlaceholderError, match="malformed"):
        apply_markdown(storage, view, view.text + "\nbroken ⟦1:toc\n")


def test_block_placeholder_in_a_heading_is_refused() -> None:
    storage = _read("06_toc.xml")
    view = to_markdown(storage)
    with pytest.raises(PlaceholderError, match="heading"):
        apply_markdown(storage, view, view.text.replace("# Overview", "# Overview ⟦1:toc⟧"))


def test_block_placeholder_can_move_into_a_list_item() -> None:
    storage = _read("31_release_notes.xml")
    view = to_markdown(storage)
    warning = next(p for p in view.placeholders.values() if p.kind == "warning")
    edited = view.text.replace(warning.token + "\n\n", "").replace(
        "- **Dark mode** for the editor", f"- **Dark mode** for the editor\n\n  {warning.token}"
    )
    result = apply_markdown(storage, view, edited)
    assert result.removed_placeholders == ()
    assert f"{warning.storage}</li></ul>" in result.storage


def test_layout_content_is_editable_and_structure_is_guarded() -> None:
    storage = _read("17_layouts.xml")
    view = to_markdown(storage)
    result = apply_markdown(
        storage, view, view.text.replace("Content on the left.", "New left text.")
    )
    assert result.storage == storage.replace("Content on the left.", "New left text.")
    layout_tokens = [p.token for p in view.placeholders.values() if p.kind == "layout"]
    with pytest.raises(PlaceholderError, match="layout placeholder"):
        apply_markdown(storage, view, view.text.replace(layout_tokens[1], ""))
    # swapping two layout markers is refused too
    a, b = layout_tokens[1], layout_tokens[2]
    swapped = view.text.replace(a, "\0").replace(b, a).replace("\0", b)
    with pytest.raises(PlaceholderError):
        apply_markdown(storage, view, swapped)
    # removing the whole layout (all markers) is allowed and reported
    result = apply_markdown(storage, view, "Just one paragraph now.\n")
    assert result.storage == "<p>Just one paragraph now.</p>"
    assert {p.kind for p in result.removed_placeholders} == {"layout", "info"}


def test_layout_marker_inside_a_list_is_refused() -> None:
    storage = _read("18_layouts_pretty.xml")
    view = to_markdown(storage)
    cell = next(p for p in view.placeholders.values() if p.hint == "cell")
    edited = view.text.replace(cell.token, f"- {cell.token}")
    with pytest.raises(PlaceholderError, match="own"):
        apply_markdown(storage, view, edited)


def test_code_edit_keeps_macro_options() -> None:
    storage = _read("04_code_macro_cdata.xml")
    view = to_markdown(storage)
    result = apply_markdown(storage, view, view.text.replace("DEBUG = os", "DEBUG = not os"))
    doc = parse_storage(result.storage)
    macro = next(n for n in doc.children if n.is_element("ac:structured-macro"))
    params = {p.attrs["ac:name"]: p.text_content() for p in macro.elements("ac:parameter")}
    assert params == {"language": "python", "title": "settings.py", "linenumbers": "true"}
    assert macro.attrs["ac:macro-id"] == "5c7b1f2e-8e8b-4d0e-9a53-6a2f3e0c1d11"
    body = macro.first("ac:plain-text-body")
    assert body is not None
    assert 'DEBUG = not os.environ.get("DEBUG") == "1"' in body.text_content()
    assert 'print("<debug> & ]]> done")' in body.text_content()


def test_table_edit_keeps_table_attributes_and_column_widths() -> None:
    storage = _read("14_simple_table.xml")
    view = to_markdown(storage)
    result = apply_markdown(
        storage, view, view.text.replace("| retries | int | 3 |", "| retries | int | 5 |")
    )
    assert result.storage == storage.replace("<td><p>3</p></td>", "<td><p>5</p></td>")


def test_new_and_swapped_blocks() -> None:
    storage = _read("01_plain_paragraphs.xml")
    view = to_markdown(storage)
    paragraphs = view.text.rstrip("\n").split("\n\n")
    edited = "\n\n".join([paragraphs[1], paragraphs[0], "A brand new paragraph.", paragraphs[2]])
    result = apply_markdown(storage, view, edited + "\n")
    lines = storage.rstrip("\n").split("\n")
    assert result.storage.startswith(lines[1])
    assert lines[0] in result.storage and lines[2] in result.storage
    assert "<p>A brand new paragraph.</p>" in result.storage
    assert result.added_blocks + result.changed_blocks == 1
    assert result.removed_placeholders == ()


def test_duplicated_placeholder_is_reported() -> None:
    storage = _read("06_toc.xml")
    view = to_markdown(storage)
    token = view.placeholders[1].token
    result = apply_markdown(storage, view, view.text + "\n" + token + "\n")
    assert [p.token for p in result.duplicated_placeholders] == [token]
    assert result.storage.count(view.placeholders[1].storage) == 2


def test_stale_view_is_refused() -> None:
    storage = _read("06_toc.xml")
    view = to_markdown(storage)
    with pytest.raises(StaleViewError):
        apply_markdown(storage.replace("Details follow.", "Changed."), view, view.text)


def test_view_can_be_recomputed_instead_of_stored() -> None:
    storage = _read("31_release_notes.xml")
    view = to_markdown(storage)
    edited = view.text.replace("Dark mode", "Light mode")
    by_table = apply_markdown(storage, view.placeholders, edited).storage
    assert by_table == apply_markdown(storage, view, edited).storage
    other = to_markdown(_read("05_info_note_warning_tip.xml")).placeholders
    with pytest.raises(StaleViewError):
        apply_markdown(storage, other, edited)
    assert (
        apply_markdown(storage, None, edited).storage
        == apply_markdown(storage, view, edited).storage
    )


def test_markdown_to_storage_for_new_pages() -> None:
    markdown = (
        "# Title\n\nSome *text* with `code` and a [link](https://example.com) and "
        "[a page](confluence-page:DEV/Some%20Page).\n\n- one\n- two\n  1. nested\n\n"
        "```bash\necho hi\n```\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\n> quoted\n\n---\n\n"
        "![diagram](confluence-attachment:diagram.png)\n"
    )
    storage = markdown_to_storage(markdown)
    parse_storage(storage)
    assert storage.startswith("<h1>Title</h1><p>Some <em>text</em> with <code>code</code>")
    assert '<a href="https://example.com">link</a>' in storage
    assert (
        '<ac:link><ri:page ri:space-key="DEV" ri:content-title="Some Page"/>'
        "<ac:plain-text-link-body><![CDATA[a page]]></ac:plain-text-link-body></ac:link>"
    ) in storage
    assert "<ul><li>one</li><li>two<ol><li>nested</li></ol></li></ul>" in storage
    assert (
        '<ac:structured-macro ac:name="code" ac:schema-version="1"><ac:parameter '
        'ac:name="language">bash</ac:parameter><ac:plain-text-body><![CDATA[echo hi]]>'
    ) in storage
    assert "<table><tbody><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr>" in storage
    assert "<blockquote><p>quoted</p></blockquote><hr/>" in storage
    assert '<ri:attachment ri:filename="diagram.png"/>' in storage
    with pytest.raises(UnknownPlaceholderError):
        markdown_to_storage("A stray ⟦3:info⟧ token.")


def test_markdown_special_characters_are_escaped_in_storage() -> None:
    assert markdown_to_storage("a < b & c > d") == "<p>a &lt; b &amp; c &gt; d</p>"
    assert markdown_to_storage("raw <b>html</b>") == "<p>raw &lt;b&gt;html&lt;/b&gt;</p>"
    storage = markdown_to_storage("```\n]]> inside code\n```")
    assert "<![CDATA[]]]]><![CDATA[> inside code]]>" in storage


def test_random_block_edits_keep_storage_well_formed_and_report_removals() -> None:
    """Delete, duplicate, swap and reword random blocks; nothing is lost unreported."""
    import random

    rng = random.Random(20240601)
    for _ in range(300):
        path = rng.choice(DOCS)
        storage = path.read_text(encoding="utf-8")
        view = to_markdown(storage)
        blocks = [b.markdown for b in view.blocks]
        if not blocks:
            continue
        for _ in range(rng.randint(1, 3)):
            op = rng.choice(["delete", "swap", "dup", "reword", "insert"])
            i = rng.randrange(len(blocks))
            j = rng.randrange(len(blocks))
            if op == "delete" and len(blocks) > 1:
                del blocks[i]
            elif op == "swap":
                blocks[i], blocks[j] = blocks[j], blocks[i]
            elif op == "dup":
                blocks.insert(j, blocks[i])
            elif op == "reword":
                blocks[i] = blocks[i].replace("the", "a", 1)
            else:
                blocks.insert(i, "A *new* paragraph.")
        edited = "\n\n".join(blocks) + "\n"
        try:
            result = apply_markdown(storage, view, edited)
        except PlaceholderError as exc:
            refusal = str(exc)
        else:
            refusal = ""
        if refusal:
            # only layout markers may refuse an edit (moved out of order or dropped)
            assert "layout" in refusal
            continue
        parse_storage(result.storage)
        removed = {p.id for p in result.removed_placeholders}
        for ph in view.placeholders.values():
            if ph.id not in removed and ph.role != "structure":
                assert ph.storage in result.storage, (path.name, ph.token)
            if ph.id in removed:
                assert ph.token not in edited
