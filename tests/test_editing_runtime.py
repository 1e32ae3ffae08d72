"""The editing core as the runner uses it: unverified views, the changed-region fast path,
reviews that see storage-only changes and shrinking text, control characters."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harbor_confluence.editing import (
    EditingError,
    apply_markdown,
    contains_truncation_marker,
    cut,
    markdown_to_storage,
    replace_text,
    review_diff,
    to_markdown,
)
from harbor_confluence.editing import apply as apply_module

CORPUS = Path(__file__).parent / "storage_corpus"
DOCS = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.xml"))]
# Markdown cannot say "two bold runs side by side": a verified view shows the block as
# placeholders, an unverified one as **a****b** (which would not render back the same).
UNSHOWABLE = "<p><strong>a</strong><strong>b</strong></p>"


def test_unverified_view_reads_the_same_on_the_corpus() -> None:
    for doc in DOCS:
        assert to_markdown(doc, verify=False).text == to_markdown(doc).text


def test_unverified_view_refuses_to_rewrite_a_block_it_cannot_show() -> None:
    storage = f"<p>one</p>{UNSHOWABLE}<p>three</p>"
    view = to_markdown(storage, verify=False)
    assert not view.verified and view.text == "one\n\n**a****b**\n\nthree\n"
    # a change elsewhere is fine, and the block it cannot show keeps its bytes
    result = apply_markdown(storage, view, view.text.replace("one", "uno"))
    assert result.storage == storage.replace("<p>one</p>", "<p>uno</p>")
    # a change to that block is refused rather than rewritten without what it holds
    with pytest.raises(EditingError, match="cannot show exactly"):
        apply_markdown(storage, view, view.text.replace("**a****b**", "**a****c**"))
    # deleting it is allowed (a visible removal for the review)
    gone = apply_markdown(storage, view, "one\n\nthree\n")
    assert gone.storage == "<p>one</p><p>three</p>" and gone.removed_blocks == 1
    # the verified view shows it as placeholders instead, and edits around them work
    verified = to_markdown(storage)
    assert verified.verified and "\u27e6" in verified.text
    assert apply_markdown(storage, None, verified.text).storage == storage


def test_apply_with_a_recomputed_unverified_view_matches_the_verified_one() -> None:
    rng = random.Random(7)
    for _ in range(60):
        storage = rng.choice(DOCS)
        view = to_markdown(storage)
        blocks = [b.markdown for b in view.blocks]
        i = rng.randrange(len(blocks))
        blocks[i] = blocks[i].replace("the", "a", 1)
        edited = "\n\n".join(blocks) + "\n"
        try:
            expected = apply_markdown(storage, view, edited).storage
        except EditingError:
            with pytest.raises(EditingError, match="layout"):
                apply_markdown(storage, None, edited, verify=False)
            continue
        assert apply_markdown(storage, None, edited, verify=False).storage == expected


_SNIPPETS = ["\n", "\n\n", "```", "~~~", "- ", "* ", "1. ", "    ", "===", "---", "|", "> ",
             "# ", "[x]: https://example.com\n", "\\", "<", "`", "*", "_", "text"]  # fmt: skip


def test_changed_region_fast_path_equals_a_full_parse() -> None:
    """Parsing only the changed region (with a neighbour on each side as a check) gives
    what parsing the whole edited document gives, for arbitrary text edits."""
    rng = random.Random(20261201)
    original = apply_module._changed_region

    def full(*args: object, fast: bool = True) -> object:
        return original(*args, fast=False)  # type: ignore[arg-type]

    def outcome(storage: str, view: object, edited: str, region: object) -> object:
        apply_module._changed_region = region  # type: ignore[assignment]
        try:
            result = apply_markdown(storage, view, edited)  # type: ignore[arg-type]
            return (result.storage, result.changed_blocks, result.removed_placeholders)
        except EditingError as exc:
            return type(exc).__name__
        finally:
            apply_module._changed_region = original

    for _ in range(400):
        storage = "".join(rng.choice(DOCS) for _ in range(rng.randint(1, 3)))
        view = to_markdown(storage, verify=False)
        edited = view.text
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(edited) + 1)
            roll = rng.random()
            if roll < 0.5:
                edited = edited[:at] + rng.choice(_SNIPPETS) + edited[at:]
            elif roll < 0.8:
                edited = edited[:at] + edited[at + rng.randint(1, 5) :]
            else:
                source = rng.randrange(len(edited) + 1)
                edited = edited[:at] + edited[source : source + 20] + edited[at:]
        assert outcome(storage, view, edited, original) == outcome(storage, view, edited, full)


def test_unchanged_text_needs_no_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = "".join(DOCS)
    view = to_markdown(storage, verify=False)

    def boom(markdown: str) -> object:
        raise AssertionError("parsed")

    monkeypatch.setattr(apply_module, "split_blocks", boom)
    assert apply_markdown(storage, view, view.text).storage == storage


def test_review_sees_a_storage_change_under_unchanged_text() -> None:
    old = (
        '<p>Intro.</p><ac:structured-macro ac:name="jira"><ac:parameter ac:name="key">A-1'
        "</ac:parameter></ac:structured-macro>"
    )
    columns = '<ac:parameter ac:name="columns">key,status</ac:parameter>'
    new = old.replace("</ac:structured-macro>", columns + "</ac:structured-macro>")
    new = new.replace("Intro.", "Intro!")
    review = review_diff(old, new)
    changes = {c["old"]: c for c in review["blocks"]}
    assert changes["Intro."]["words"] == "[-Intro.-] {+Intro!+}"
    jira = next(c for k, c in changes.items() if "jira" in k)
    assert jira["old"] == jira["new"] and "storage changed" in jira["words"]
    assert "+<ac:structured-macro" in jira["storage"] and "key,status" in jira["storage"]
    assert "key,status" in review["diff"]
    assert review["diff"].startswith("--- current\n+++ proposed")


def test_review_flags_a_body_that_lost_most_of_its_words() -> None:
    old = "".join(f"<p>Paragraph {i} says something useful here.</p>" for i in range(40))
    new = "".join(f"<p>Paragraph {i} says something useful here.</p>" for i in range(10))
    review = review_diff(old, new)
    assert "words: 240 -> 60 (75% of the text)" in review["losses"]
    assert review["summary"]["blocks_removed"] == 30
    small = review_diff(old, old.replace("useful", "helpful"))
    assert small["losses"] == []


def test_control_characters_are_refused_not_written() -> None:
    with pytest.raises(EditingError, match="U\\+0008"):
        markdown_to_storage("bad \x08 text")
    with pytest.raises(EditingError, match="U\\+0007"):
        replace_text("<p>old</p>", "old", "new \x07")


def test_cut_marker_is_recognised() -> None:
    value = cut("x" * 50, 20)
    assert value == "x" * 20 + "\u2026 [truncated: 30 more characters]"
    assert contains_truncation_marker(value)
    assert cut("short", 20) == "short"
    assert contains_truncation_marker("body... [3769 more characters]")  # before 1.2.0
    assert not contains_truncation_marker("we kept [3769 characters] of it")
