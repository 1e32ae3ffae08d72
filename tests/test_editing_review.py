"""Review diffs that make content loss loud, and truncation markers."""

from __future__ import annotations

from pathlib import Path

from harbor_confluence.editing import (
    TRUNCATION_MARKER_FORMAT,
    apply_markdown,
    contains_truncation_marker,
    inventory,
    render_review_text,
    review_diff,
    to_markdown,
    truncate,
    truncation_marker,
)

CORPUS = Path(__file__).parent / "storage_corpus"


def _read(name: str) -> str:
    return (CORPUS / name).read_text(encoding="utf-8")


def test_inventory_counts_what_edits_tend_to_drop() -> None:
    counts = inventory(_read("31_release_notes.xml"))
    assert counts["macros"] == {"code": 1, "jira": 1, "toc": 1, "warning": 1}
    assert counts["mentions"] == 1 and counts["dates"] == 1
    links = inventory(_read("22_page_links.xml"))
    assert links["page_links"] == 4 and links["links"] == 6
    media = inventory(_read("19_images.xml"))
    assert media["images"] == 3 and media["attachments"] == 2


def test_review_of_an_unchanged_page() -> None:
    storage = _read("05_info_note_warning_tip.xml")
    review = review_diff(storage, storage)
    assert review["changed"] is False and review["blocks"] == [] and review["losses"] == []


def test_review_shows_word_level_changes_by_section() -> None:
    storage = _read("02_headings_and_sections.xml")
    view = to_markdown(storage)
    edited = view.text.replace("Use Homebrew:", "Prefer MacPorts:")
    new = apply_markdown(storage, view, edited).storage
    review = review_diff(storage, new)
    assert review["summary"]["blocks_changed"] == 1
    (change,) = review["blocks"]
    assert change["section"] == "Install > macOS"
    assert change["words"] == "[-Use Homebrew:-] {+Prefer MacPorts:+} `brew install harbor`."
    assert review["losses"] == []


def test_review_flags_macro_and_link_loss_loudly() -> None:
    old = _read("31_release_notes.xml")
    # what a naive Markdown round trip does: macros, mentions and dates vanish
    new = (
        "<h1>Release 2.4.0</h1><p>Released by someone.</p><h2>New features</h2>"
        "<ul><li><strong>Bulk export</strong></li></ul>"
    )
    review = review_diff(old, new)
    assert "macro 'toc': 1 -> 0" in review["losses"]
    assert "macro 'warning': 1 -> 0" in review["losses"]
    assert "macro 'code': 1 -> 0" in review["losses"]
    assert "mentions: 1 -> 0" in review["losses"]
    text = render_review_text(review)
    assert "!!! CONTENT LOST" in text.splitlines()[1]
    assert "!!!   macro 'warning': 1 -> 0" in text
    assert "- ⟦warning Run the migration before starti…⟧" in text
    assert "warning macro 1->0" in text


def test_review_text_for_additions() -> None:
    old = "<p>One.</p>"
    new = "<p>One.</p><h2>More</h2><p>Two.</p>"
    text = render_review_text(review_diff(old, new))
    assert text.splitlines()[0] == "Review: 0 changed, 2 added, 0 removed, 1 unchanged blocks"
    assert "+ Two." in text and "CONTENT LOST" not in text


def test_truncation_marker() -> None:
    marker = truncation_marker(3769, 4000)
    assert marker == "… [truncated: 3769 more characters; read with offset=4000]"
    assert marker == TRUNCATION_MARKER_FORMAT.format(remaining=3769, offset=4000)
    body = "x" * 7769
    cut = truncate(body, 4000)
    assert cut.endswith(marker) and contains_truncation_marker(cut)
    assert truncate("short", 4000) == "short"
    assert not contains_truncation_marker("a page about truncated tables")
    # agents retype the ellipsis or spacing; still caught
    assert contains_truncation_marker("... [truncated: 12 more characters; read with offset = 10]")
    assert contains_truncation_marker("<p>[Truncated: 1 more character; read with offset=9]</p>")
