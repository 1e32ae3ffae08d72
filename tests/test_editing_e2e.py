"""Lossless page editing end to end: the runner, the review queue and the simulator.

Pages are built from the storage corpus (tests/storage_corpus/), stored in the simulator
byte for byte, read whole, in pieces and as Markdown, edited (Markdown updates and
edit-page's targeted edits), held for review and approved through the queue.  What the
simulator stores afterwards is compared, byte for byte, with what it stored before.
Every exchange is checked against Atlassian's OpenAPI document at teardown (``sim``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harbor_confluence.editing import TRUNCATION_MARKER_FORMAT, to_markdown
from harbor_confluence.errors import InputError
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL, CliResult, e2e_policy

CORPUS = Path(__file__).parent / "storage_corpus"
DOCS = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.xml"))]
ENG, HOME = "65538", "98305"
MARKER = re.compile(r"\n\u2026 \[truncated: \d+ more characters; read with offset=\d+\]\Z")
TARGET = "<h1>Edit target</h1><p>Old text of the one section this test edits.</p>"


def corpus(name: str) -> str:
    return (CORPUS / name).read_text(encoding="utf-8")


def megabyte_page() -> str:
    """About 1 MB of storage from the corpus, with one uniquely titled section in the middle
    (an ``h1`` section ends at the next ``h1``: the corpus document after it starts with one)."""
    assert DOCS[1].startswith("<h1>")
    parts: list[str] = []
    size = 0
    rounds = 0
    while size < 1_000_000:
        for index, doc in enumerate(DOCS):
            if rounds == 15 and index == 1:
                parts.append(TARGET)
            parts.append(doc)
            size += len(doc.encode())
        rounds += 1
    return "".join(parts)


@pytest.fixture
def auto(sim: Simulator, home: Path, tmp_path: Path) -> Iterator[Port]:
    """Writes sent at once (to seed pages); the default policy's hard limits still apply."""
    with Port.load(
        policy=e2e_policy(tmp_path),
        home=home,
        base_url=sim.url,
        credential=Credential.basic(EMAIL, API_TOKEN, "test"),
        requester="seed",
    ) as p:
        yield p


def create(port: Port, title: str, storage: str) -> str:
    body = {"representation": "storage", "value": storage}
    result = port.call("create-page", {"body": {"spaceId": ENG, "title": title, "body": body}})
    assert result.ok, result.error
    page_id: str = result.summary["id"]
    return page_id


def stored(sim: Simulator, page_id: str) -> str:
    page = sim.store.page(int(page_id))
    assert page is not None
    return page.body_value


def sent_bodies(sim: Simulator, method: str = "PUT") -> list[dict[str, Any]]:
    return [json.loads(e.request_body) for e in sim.exchanges if e.method == method]


def held_then_approved(port: Port, sim: Simulator, action: str, data: dict[str, Any]) -> Any:
    """Hold the write under the default policy, approve it, return the ticket as run."""
    result = port.call(action, data)
    assert result.outcome == "held", result.to_dict()
    sim.clear()
    ticket = port.approve(result.ticket or "", operator="alice")
    assert ticket.state == "succeeded", ticket.result
    return ticket


# -- a 1 MB page: read whole and in pieces, edited by section, everything else kept ---------


def test_megabyte_page_read_whole_and_in_pieces_then_edited_by_section(
    auto: Port, port: Port, sim: Simulator
) -> None:
    page = megabyte_page()
    assert len(page.encode()) >= 1_000_000
    page_id = create(auto, "One megabyte", page)
    assert stored(sim, page_id) == page  # the simulator keeps storage byte for byte

    # whole, in one read
    whole = port.call(
        "get-page",
        {"path": {"id": page_id}, "query": {"body-format": "storage", "body-limit": 2_000_000}},
    ).summary
    assert whole["body"] == page
    assert whole["bodyLength"] == len(page) and "bodyNextOffset" not in whole
    assert whole["bodySha256"] == hashlib.sha256(page.encode()).hexdigest()

    # in pieces: each but the last ends with the marker, which says where to go on
    pieces, offset = [], 0
    while True:
        query = {"body-format": "storage", "body-offset": offset, "body-limit": 300_000,
                 "version": whole["version"]}  # fmt: skip
        got = port.call("get-page", {"path": {"id": page_id}, "query": query}).summary
        assert got["bodySha256"] == whole["bodySha256"] and got["bodyOffset"] == offset
        if "bodyNextOffset" not in got:
            pieces.append(got["body"])
            break
        marker = MARKER.search(got["body"])
        assert marker is not None and f"offset={got['bodyNextOffset']}]" in marker.group(0)
        pieces.append(got["body"][: marker.start()])
        offset = got["bodyNextOffset"]
    assert len(pieces) == 4 and "".join(pieces) == page

    # the Markdown view, paged the same way, is the editing package's view
    view = to_markdown(page, verify=False).text
    md = port.call(
        "get-page",
        {"path": {"id": page_id}, "query": {"body-format": "markdown", "body-limit": 2_000_000}},
    ).summary
    assert md["bodyFormat"] == "markdown" and md["body"] == view
    assert md["bodySha256"] == hashlib.sha256(view.encode()).hexdigest()
    assert md["bodyLength"] / whole["bodyLength"] < 0.6

    # edited by section: held, reviewed, approved through the queue
    edit = {"op": "replace-section", "section": ["Edit target"], "content": "New **text**."}
    result = port.call("edit-page", {"path": {"id": page_id}, "body": edit})
    assert result.outcome == "held"
    ticket = port.ticket(result.ticket or "")
    assert ticket is not None
    review = ticket.review
    assert review["edit"] == {"op": "replace-section", "section": "Edit target"}
    assert review["losses"] == [] and review["summary"]["blocks_changed"] == 1
    (change,) = review["blocks"]
    assert change["section"] == "Edit target" and change["new"] == "New **text**."
    assert len(json.dumps(review)) < 20_000  # a section's review, not the page's
    sim.clear()
    done = port.approve(ticket.id, operator="alice")
    assert done.state == "succeeded", done.result

    after = stored(sim, page_id)
    start = page.index(TARGET) + len("<h1>Edit target</h1>")
    end = page.index(TARGET) + len(TARGET)
    assert after[:start] == page[:start]  # every byte before the section's body
    assert after[len(after) - (len(page) - end) :] == page[end:]  # and every byte after it
    assert after[start : len(after) - (len(page) - end)] == "<p>New <strong>text</strong>.</p>"
    (sent,) = sent_bodies(sim)
    assert sent["version"] == {"number": 2} and sent["body"]["value"] == after


def test_default_read_is_a_marked_piece_never_a_silent_cut(
    auto: Port, port: Port, sim: Simulator
) -> None:
    page = "".join(DOCS) * 2
    page_id = create(auto, "The corpus twice", page)
    got = port.call("get-page", {"path": {"id": page_id}, "query": {"body-format": "storage"}})
    summary = got.summary
    assert len(page) > 20_000 and summary["bodyLength"] == len(page)
    assert summary["body"].startswith(page[:20_000]) and MARKER.search(summary["body"])
    assert summary["bodyNextOffset"] == 20_000
    from harbor_confluence.adapters.tools import _result_reply

    assert "pass body-offset=20000" in _result_reply(got).headline
    # a piece asked for without a format is a piece of the storage body
    tail = port.call("get-page", {"path": {"id": page_id}, "query": {"body-offset": 20_000}})
    assert tail.summary["body"] == page[20_000:] and tail.summary["bodyFormat"] == "storage"
    past = port.call(
        "get-page", {"path": {"id": page_id}, "query": {"body-offset": len(page) + 5}}
    ).summary
    assert past["body"] == "" and "past the end" in past["bodyNote"]
    # the runner-side parameters never reach Confluence; markdown is asked as storage
    queries = [e.query for e in sim.exchanges if e.method == "GET"]
    assert all("body-offset" not in q and "body-limit" not in q for q in queries)
    port.call("get-page", {"path": {"id": page_id}, "query": {"body-format": "markdown"}})
    assert sim.exchanges[-1].query == "body-format=storage"


def test_get_blogpost_pages_its_body_too(port: Port) -> None:
    post = port.call("list-blogposts", {"query": {"limit": 1}}).summary[0]
    query = {"body-format": "markdown", "body-limit": 100}
    got = port.call("get-blogpost", {"path": {"id": post["id"]}, "query": query}).summary
    assert got["bodyFormat"] == "markdown" and got["bodyLength"] > 100
    assert MARKER.search(got["body"]) and got["bodyNextOffset"] == 100


# -- cut copies are never written back ----------------------------------------------------


@pytest.mark.parametrize(
    "cut",
    [
        TRUNCATION_MARKER_FORMAT.format(remaining=3769, offset=4000),
        "... [truncated: 3769 more characters; read with offset = 4000]",
        "... [3769 more characters]",  # the cut marker of runner versions before 1.2.0
    ],
)
def test_write_with_a_truncation_marker_is_refused_and_nothing_sent(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator, cut: str
) -> None:
    for action, data in (
        ("update-page",
         {"path": {"id": "98306"},
          "body": {"body": {"representation": "storage", "value": f"<p>edited</p>{cut}"}}}),
        ("update-page",
         {"path": {"id": "98306"},
          "body": {"body": {"representation": "markdown", "value": f"edited\n{cut}\n"}}}),
        ("create-page",
         {"body": {"spaceId": ENG, "title": "T",
                   "body": {"representation": "markdown", "value": f"x {cut}"}}}),
        ("edit-page",
         {"path": {"id": "98306"},
          "body": {"op": "append", "content": f"more {cut}"}}),
        ("create-footer-comment",
         {"body": {"pageId": "98306",
                   "body": {"representation": "storage", "value": f"<p>{cut}</p>"}}}),
    ):  # fmt: skip
        sim.clear()
        out = cli("run", action, "--input", json.dumps(data), "--json")
        assert out.code == 2, (action, out.out, out.err)
        error = json.loads(out.out)["error"]
        (violation,) = error["violations"]
        assert violation["rule"] == "truncated", violation
        assert violation["field"] in ("body.body.value", "body.content"), violation
        assert "cut copy" in violation["message"]
        assert sim.request_count == 0  # not even the update's read


def test_summary_cut_fields_are_marked_and_refused(port: Port, auto: Port) -> None:
    long = "<p>" + "word " * 400 + "</p>"
    comment = auto.call(
        "create-footer-comment",
        {"body": {"pageId": "98306", "body": {"representation": "storage", "value": long}}},
    )
    listed = port.call(
        "list-page-footer-comments",
        {"path": {"id": "98306"}, "query": {"body-format": "storage", "limit": 100}},
    ).summary
    cut = next(c["body"] for c in listed if c["id"] == comment.summary["id"])
    assert cut.endswith(f"\u2026 [truncated: {len(long) - 1000} more characters]")
    with pytest.raises(InputError) as info:
        port.call(
            "update-footer-comment",
            {"path": {"comment_id": comment.summary["id"]},
             "body": {"body": {"representation": "storage", "value": cut}}},
        )  # fmt: skip
    assert [v.rule for v in info.value.violations] == ["truncated"]


# -- Markdown in, storage out ----------------------------------------------------------------


def test_markdown_create_sends_storage(port: Port, sim: Simulator) -> None:
    markdown = "# Plan\n\nShip **1.2** with [notes](https://example.com/n).\n\n- one\n- two\n"
    data = {"body": {"spaceId": ENG, "title": "From Markdown",
                     "body": {"representation": "markdown", "value": markdown}}}  # fmt: skip
    result = port.call("create-page", data)
    ticket = port.ticket(result.ticket or "")
    assert ticket is not None and b'"representation":"storage"' in (ticket.body or b"")
    assert "Markdown" in ticket.review["converted"]
    sim.clear()
    assert port.approve(ticket.id, operator="alice").state == "succeeded"
    (sent,) = sent_bodies(sim, "POST")
    expected = (
        '<h1>Plan</h1><p>Ship <strong>1.2</strong> with <a href="https://example.com/n">'
        "notes</a>.</p><ul><li>one</li><li>two</li></ul>"
    )
    assert sent["body"] == {"representation": "storage", "value": expected}
    page_id = json.loads(sim.exchanges[-1].response_body)["id"]
    assert stored(sim, page_id) == expected


def test_markdown_blogpost_and_comment_creates_send_storage(auto: Port, sim: Simulator) -> None:
    md = {"representation": "markdown", "value": "Hello *world*."}
    auto.call("create-blogpost", {"body": {"spaceId": ENG, "title": "Post", "body": md}})
    auto.call("create-footer-comment", {"body": {"pageId": "98306", "body": md}})
    bodies = [b["body"] for b in sent_bodies(sim, "POST")]
    assert bodies == [{"representation": "storage", "value": "<p>Hello <em>world</em>.</p>"}] * 2


def test_markdown_update_of_one_paragraph_changes_only_that_block(
    auto: Port, port: Port, sim: Simulator
) -> None:
    page = corpus("31_release_notes.xml")
    page_id = create(auto, "Release notes", page)
    read = port.call(
        "get-page", {"path": {"id": page_id}, "query": {"body-format": "markdown"}}
    ).summary
    view = to_markdown(page)
    target = next(b for b in view.blocks if b.kind == "paragraph" and "Released" in b.markdown)
    assert target.markdown in read["body"] and len(target.placeholder_ids) == 2
    edited = read["body"].replace("Released on", "Shipped *early* on", 1)
    data = {"path": {"id": page_id},
            "body": {"body": {"representation": "markdown", "value": edited},
                     "expected_version": read["version"]}}  # fmt: skip
    ticket = held_then_approved(port, sim, "update-page", data)
    (sent,) = sent_bodies(sim)
    value = sent["body"]["value"]
    src = page.encode()
    before, after = src[: target.start], src[target.end :]
    new = value.encode()
    assert new.startswith(before) and new.endswith(after)
    assert new[len(before) : len(new) - len(after)] == (
        b'<p>Shipped <em>early</em> on <time datetime="2024-04-02" /> by <ac:link>'
        b'<ri:user ri:account-id="5b10ac8d82e05b22cc7d4ef5" /></ac:link>.</p>'
    )  # the date and the mention (placeholders in the Markdown) come back verbatim
    assert stored(sim, page_id) == value
    review = ticket.review
    assert review["summary"]["blocks_changed"] == 1 and review["losses"] == []
    assert review["markdown"]["changed_blocks"] == 1 and review["stale"] is False


def test_removed_macro_placeholder_is_a_loud_loss_in_the_review(
    auto: Port, port: Port, sim: Simulator, cli: Callable[..., CliResult], cli_env: dict[str, str]
) -> None:
    page = corpus("06_toc.xml")
    page_id = create(auto, "With a TOC", page)
    read = port.call(
        "get-page", {"path": {"id": page_id}, "query": {"body-format": "markdown"}}
    ).summary
    token = next(line for line in read["body"].splitlines() if line.startswith("\u27e6"))
    assert ":toc" in token
    edited = read["body"].replace(token + "\n\n", "")
    data = {"path": {"id": page_id},
            "body": {"body": {"representation": "markdown", "value": edited}}}  # fmt: skip
    sim.clear()
    result = port.call("update-page", data)
    assert result.outcome == "held"
    assert [e.method for e in sim.exchanges] == ["GET"]  # the read; nothing written
    assert "macro 'toc': 1 -> 0" in result.extra["losses"]
    ticket = port.ticket(result.ticket or "")
    assert ticket is not None
    losses = ticket.review["losses"]
    assert "macro 'toc': 1 -> 0" in losses
    assert any(loss.startswith(f"placeholder {token} removed") for loss in losses)
    assert ticket.review["markdown"]["removed_placeholders"][0]["kind"] == "toc"
    removed = [b for b in ticket.review["blocks"] if b["op"] == "removed"]
    assert removed and "toc" in removed[0]["old"]

    shown = cli("queue", "show", ticket.id)
    assert shown.code == 0
    first = shown.out.splitlines()[0]
    assert first.startswith("LOSS: ") and "macro 'toc': 1 -> 0" in first
    assert "!!! CONTENT LOST" in shown.out and "Counts: toc macro 1->0" in shown.out
    as_json = cli("queue", "show", ticket.id, "--json").json()
    assert "macro 'toc': 1 -> 0" in as_json["review"]["losses"]


def test_a_macro_change_behind_an_unchanged_placeholder_is_shown(auto: Port, port: Port) -> None:
    page = corpus("06_toc.xml")
    page_id = create(auto, "TOC levels", page)
    changed = page.replace('"maxLevel">3<', '"maxLevel">2<')
    result = port.call(
        "update-page",
        {"path": {"id": page_id},
         "body": {"body": {"representation": "storage", "value": changed}}},
    )  # fmt: skip
    ticket = port.ticket(result.ticket or "")
    assert ticket is not None
    (change,) = ticket.review["blocks"]
    assert change["old"] == change["new"] and "storage changed" in change["words"]
    assert '+<ac:structured-macro ac:name="toc"' in change["storage"]
    assert 'maxLevel">2<' in ticket.review["diff"]


# -- targeted edits: each changes only its target ------------------------------------------

SECTIONS = corpus("02_headings_and_sections.xml")
EDITS: list[tuple[dict[str, Any], Callable[[str], str], str | None]] = [
    (
        {"op": "replace-section", "section": ["Install", "macOS"], "content": "Use *pipx*."},
        # the section's body is everything between its heading and the next heading
        lambda s: s.replace(
            "<h2>macOS</h2>\n<p>Use Homebrew: <code>brew install harbor</code>.</p>",
            "<h2>macOS</h2><p>Use <em>pipx</em>.</p>",
        ),
        None,
    ),
    (
        {"op": "insert-before-section", "section": ["Configure"],
         "content": "## Upgrade\n\nRe-run."},
        lambda s: s.replace("<h1>Configure</h1>",
                            "<h2>Upgrade</h2><p>Re-run.</p><h1>Configure</h1>"),
        None,
    ),
    (
        {"op": "insert-after-section", "section": ["Install", "Linux", "Fedora"],
         "content": "<p>Or <code>rpm</code>.</p>", "content_format": "storage"},
        lambda s: s.replace(
            "<p>Run <code>dnf install harbor</code>.</p>",
            "<p>Run <code>dnf install harbor</code>.</p><p>Or <code>rpm</code>.</p>",
        ),
        None,
    ),
    (
        {"op": "append", "content": "The end."},
        lambda s: s + "<p>The end.</p>",
        None,
    ),
    (
        {"op": "prepend", "content": "> Draft"},
        lambda s: "<blockquote><p>Draft</p></blockquote>" + s,
        None,
    ),
    (
        {"op": "replace-text", "find": "the package manager", "content": "a package manager & co"},
        lambda s: s.replace("the package manager", "a package manager &amp; co"),
        None,
    ),
    (
        {"op": "set-title", "title": "Installing Harbor"},
        lambda s: s,
        "Installing Harbor",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "expect", "title"), EDITS, ids=[e[0]["op"] for e in EDITS])
def test_each_targeted_edit_changes_only_its_target(
    auto: Port,
    port: Port,
    sim: Simulator,
    edit: dict[str, Any],
    expect: Callable[[str], str],
    title: str | None,
) -> None:
    page_id = create(auto, "Install guide", SECTIONS)
    ticket = held_then_approved(port, sim, "edit-page", {"path": {"id": page_id}, "body": edit})
    (sent,) = sent_bodies(sim)
    assert sent["body"] == {"representation": "storage", "value": expect(SECTIONS)}
    assert sent["title"] == (title or "Install guide")
    assert sent["version"] == {"number": 2} and sent["status"] == "current"
    assert sent["spaceId"] == ENG and sent["id"] == page_id
    assert stored(sim, page_id) == expect(SECTIONS)
    review = ticket.review
    assert review["edit"]["op"] == edit["op"] and review["losses"] == []
    if title:
        assert review["title_change"] == "'Install guide' -> 'Installing Harbor'"
        assert review["changed"] is False


def test_targeted_edits_that_do_not_fit_the_page_are_refused(
    auto: Port, port: Port, sim: Simulator
) -> None:
    page_id = create(auto, "Install guide", SECTIONS)
    cases = [
        ({"op": "replace-section", "section": ["Linux"], "content": "x"}, "body.section",
         "not_found", "matches 2 sections"),
        ({"op": "replace-section", "section": ["Windows"], "content": "x"}, "body.section",
         "not_found", "no section 'Windows'"),
        ({"op": "replace-text", "find": "harbor", "content": "x"}, "body.find", "not_found",
         "must occur exactly once"),
        ({"op": "append", "content": "<p>unclosed", "content_format": "storage"}, "body.content",
         "storage", "not well-formed"),
        ({"op": "append", "content": "stray \u27e63:info\u27e7"}, "body.content", "markdown",
         "unknown placeholder"),
    ]  # fmt: skip
    for edit, field, rule, words in cases:
        sim.clear()
        with pytest.raises(InputError) as info:
            port.call("edit-page", {"path": {"id": page_id}, "body": edit})
        (violation,) = info.value.violations
        assert (violation.field, violation.rule) == (field, rule), violation
        assert words in violation.message
        assert [e.method for e in sim.exchanges] == ["GET"]  # the read it needed; no write
    before_read = [
        ({"op": "append"}, [("body.content", "required")]),
        ({"op": "set-title"}, [("body.title", "required")]),
        ({"op": "append", "content": "x", "find": "y"}, [("body.find", "not")]),
        ({"op": "replace-text", "find": "a", "content": "b", "content_format": "storage"},
         [("body.content_format", "not")]),
        ({"op": "append", "content": "bell \x07"}, [("body.content", "xml")]),
    ]  # fmt: skip
    for edit, expected in before_read:
        sim.clear()
        with pytest.raises(InputError) as info:
            port.call("edit-page", {"path": {"id": page_id}, "body": edit})
        assert [(v.field, v.rule) for v in info.value.violations] == expected
        assert sim.request_count == 0


def test_markdown_and_edit_updates_refuse_a_moved_version(
    auto: Port, port: Port, sim: Simulator
) -> None:
    page_id = create(auto, "Moving", SECTIONS)
    auto.call("edit-page", {"path": {"id": page_id}, "body": {"op": "append", "content": "v2"}})
    for action, body in (
        ("edit-page", {"op": "append", "content": "late", "expected_version": 1}),
        ("update-page",
         {"body": {"representation": "markdown", "value": "late"}, "expected_version": 1}),
    ):  # fmt: skip
        with pytest.raises(InputError) as info:
            port.call(action, {"path": {"id": page_id}, "body": body})
        (violation,) = info.value.violations
        assert violation.field == "body.expected_version" and violation.rule == "conflict"
        assert "version 2 now" in violation.message


def test_markdown_edit_with_a_made_up_placeholder_is_refused(auto: Port, port: Port) -> None:
    page_id = create(auto, "TOC", corpus("06_toc.xml"))
    with pytest.raises(InputError) as info:
        port.call(
            "update-page",
            {"path": {"id": page_id},
             "body": {"body": {"representation": "markdown",
                               "value": "\u27e699:jira made up\u27e7\n"}}},
        )  # fmt: skip
    (violation,) = info.value.violations
    assert (violation.field, violation.rule) == ("body.body.value", "markdown")
    assert "unknown placeholder" in violation.message


def test_simulator_refuses_storage_that_is_not_well_formed(auto: Port) -> None:
    result = auto.call(
        "create-page",
        {"body": {"spaceId": ENG, "title": "Broken",
                  "body": {"representation": "storage", "value": "<p><b>x</p></b>"}}},
    )  # fmt: skip
    assert result.status == 400 and "Error parsing xhtml" in result.error["message"]


def test_async_calls_convert_and_edit_off_the_event_loop(auto: Port, port: Port) -> None:
    import asyncio

    page_id = create(auto, "Async", SECTIONS)

    async def both() -> tuple[Any, Any]:
        read = await port.acall(
            "get-page", {"path": {"id": page_id}, "query": {"body-format": "markdown"}}
        )
        edit = {"op": "replace-text", "find": "the package manager", "content": "pipx"}
        held = await port.acall("edit-page", {"path": {"id": page_id}, "body": edit})
        return read, held

    read, held = asyncio.run(both())
    assert read.summary["bodyFormat"] == "markdown" and read.summary["body"].startswith("# Install")
    assert held.outcome == "held"
    ticket = port.ticket(held.ticket or "")
    assert ticket is not None
    assert json.loads(ticket.body or b"")["body"]["value"] == SECTIONS.replace(
        "the package manager", "pipx"
    )


def test_a_held_read_run_from_its_ticket_still_hands_out_a_marked_piece(
    auto: Port, sim: Simulator, home: Path
) -> None:
    """The runner-side parameters are not in the stored request: the piece is the default
    one, in the format the answer carries, and still marked."""
    from harbor_confluence.pipeline.policy import policy_from_data

    page = "".join(DOCS) * 2
    page_id = create(auto, "Held read", page)
    rules = {"rules": [{"name": "hold-reads", "actions": ["get-page"],
                        "decision": "require_approval"}]}  # fmt: skip
    with Port.load(
        policy=policy_from_data(rules, "test"),
        home=home,
        base_url=sim.url,
        credential=Credential.basic(EMAIL, API_TOKEN, "test"),
    ) as holding:
        query = {"body-format": "storage", "body-offset": 5, "body-limit": 10}
        held = holding.call("get-page", {"path": {"id": page_id}, "query": query})
        assert held.outcome == "held"
        done = holding.approve(held.ticket or "", operator="alice")
    summary = (done.result or {})["summary"]
    assert summary["bodyFormat"] == "storage" and summary["bodyLength"] == len(page)
    assert summary["body"].startswith(page[:20_000]) and MARKER.search(summary["body"])
