"""Targeted edits change only their target; everything else stays byte-identical."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_confluence.editing import (
    EditingError,
    StorageParseError,
    TargetNotFoundError,
    append,
    find_section,
    insert_after_section,
    insert_before_section,
    prepend,
    replace_section,
    replace_text,
    sections,
)

CORPUS = Path(__file__).parent / "storage_corpus"
INSTALL = (CORPUS / "02_headings_and_sections.xml").read_text(encoding="utf-8")


def _only_changed(old: str, new: str, start: int, end: int, inserted: str) -> None:
    """``new`` is ``old`` with bytes ``start:end`` replaced by ``inserted``."""
    src = old.encode()
    assert new.encode() == src[:start] + inserted.encode() + src[end:]


def test_sections_follow_heading_levels() -> None:
    found = [(s.title, s.level) for s in sections(INSTALL)]
    assert found[:4] == [("Install", 1), ("Linux", 2), ("Debian and Ubuntu", 3), ("Fedora", 3)]
    linux = find_section(INSTALL, ["Install", "Linux"])
    body = INSTALL.encode()[linux.start : linux.end].decode()
    assert body.startswith("<h2>Linux</h2>")
    assert "<h3>Fedora</h3>" in body and "macOS" not in body  # ends at the next h2


def test_replace_section_body_keeps_heading_and_everything_else() -> None:
    new = replace_section(INSTALL, ["Install", "Linux"], "Use the **installer**.")
    linux = find_section(INSTALL, ["Install", "Linux"])
    _only_changed(
        INSTALL,
        new,
        linux.body_start,
        linux.content_end,
        "<p>Use the <strong>installer</strong>.</p>",
    )
    assert "<h2>Linux</h2><p>Use the" in new
    # the other "Linux" section (under Configure) is untouched
    assert "<p>On Linux the file may also live in <code>/etc/harbor</code>.</p>" in new


def test_replace_section_with_heading_and_storage_content() -> None:
    section = find_section(INSTALL, ["Configure", "Linux"])
    new = replace_section(
        INSTALL,
        ["Configure", "Linux"],
        "<h2>Linux and BSD</h2><p>See <code>/usr/local/etc</code>.</p>",
        content_is_storage=True,
        include_heading=True,
    )
    _only_changed(
        INSTALL,
        new,
        section.start,
        section.content_end,
        "<h2>Linux and BSD</h2><p>See <code>/usr/local/etc</code>.</p>",
    )
    with pytest.raises(StorageParseError):
        replace_section(INSTALL, ["Install"], "<p>broken", content_is_storage=True)


def test_insert_before_and_after_section() -> None:
    fedora = find_section(INSTALL, ["Install", "Linux", "Fedora"])
    before = insert_before_section(
        INSTALL, ["Install", "Linux", "Fedora"], "### Arch\n\nUse pacman."
    )
    _only_changed(INSTALL, before, fedora.start, fedora.start, "<h3>Arch</h3><p>Use pacman.</p>")
    after = insert_after_section(INSTALL, ["Install", "Linux"], "Linux done.")
    linux = find_section(INSTALL, ["Install", "Linux"])
    _only_changed(INSTALL, after, linux.content_end, linux.content_end, "<p>Linux done.</p>")
    assert after.index("Linux done.") < after.index("<h2>macOS</h2>")


def test_ambiguous_or_missing_section_is_refused() -> None:
    with pytest.raises(TargetNotFoundError, match="matches 2 sections"):
        find_section(INSTALL, ["Linux"])
    with pytest.raises(TargetNotFoundError, match="no section"):
        find_section(INSTALL, ["Install", "Windows"])
    assert find_section(INSTALL, ["install", "macos"]).title == "macOS"  # case-insensitive


def test_sections_inside_layout_cells() -> None:
    storage = (CORPUS / "17_layouts.xml").read_text(encoding="utf-8")
    new = replace_section(storage, ["Left column"], "Replaced.")
    assert new == storage.replace("<p>Content on the left.</p>", "<p>Replaced.</p>")


def test_append_and_prepend() -> None:
    assert append(INSTALL, "The end.") == INSTALL + "<p>The end.</p>"
    assert prepend(INSTALL, "# Start") == "<h1>Start</h1>" + INSTALL


def test_replace_text_changes_only_the_matched_characters() -> None:
    storage = (CORPUS / "25_entities.xml").read_text(encoding="utf-8")
    new = replace_text(storage, "see terms", "read the terms")
    assert new == storage.replace("see terms", "read the terms")  # &nbsp;/&mdash; stay as written
    new = replace_text(storage, "include\xa0VAT", "exclude VAT & fees")
    assert new == storage.replace("include&nbsp;VAT", "exclude VAT &amp; fees")
    new = replace_text(storage, "Café", "Bar")
    assert new == storage.replace("Caf&eacute;", "Bar")


def test_replace_text_refuses_unless_found_exactly_once_in_plain_text() -> None:
    with pytest.raises(TargetNotFoundError, match="found 0 times"):
        replace_text(INSTALL, "Windows", "BSD")
    with pytest.raises(TargetNotFoundError, match="found 3 times"):
        replace_text(INSTALL, "Linux", "GNU/Linux")
    macros = (CORPUS / "05_info_note_warning_tip.xml").read_text(encoding="utf-8")
    with pytest.raises(TargetNotFoundError, match="inside macros"):
        replace_text(macros, "cannot be undone", "can be undone")
    links = (CORPUS / "22_page_links.xml").read_text(encoding="utf-8")
    with pytest.raises(TargetNotFoundError):
        replace_text(links, "the runbook", "a runbook")  # link bodies are not plain text
    with pytest.raises(TargetNotFoundError):
        replace_text(INSTALL, "Run apt-get", "Run")  # spans formatting
    with pytest.raises(EditingError):
        replace_text(INSTALL, "", "x")
