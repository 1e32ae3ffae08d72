"""Issue 17's runner-built actions, end to end against the simulator over loopback.

Each one reads something first (policy-checked like any call) or keeps working after the
answer (a task poll); the ``sim`` fixture checks every exchange against Atlassian's
documents at teardown.  Writes go through the review queue: held, approved, then sent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from harbor_confluence.errors import InputError
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.pipeline.transforms import DOWNLOAD_CAP
from harbor_confluence.sim import Simulator

ENG, ENG_KEY, HOME = "65538", "ENG", "98305"
ARCH = "98306"


def _attachments(port: Port) -> list[dict[str, Any]]:
    listed = port.call("list-attachments", {"query": {"limit": 100}})
    assert listed.ok, listed.error
    items: list[dict[str, Any]] = listed.summary
    return items


def _attachment(port: Port, *, media: str | None = None, over: int | None = None) -> dict[str, Any]:
    for item in _attachments(port):
        if media is not None and item.get("mediaType") == media:
            return item
        if over is not None and int(item.get("fileSize") or 0) > over:
            return item
    raise AssertionError(f"no seeded attachment with media {media} / over {over}")


def _page_of(item: dict[str, Any]) -> str:
    page = item.get("pageId") or item.get("containerId")
    assert page, item
    return str(page)


# -- attachments ------------------------------------------------------------------------------


def test_download_returns_the_text_of_a_csv(auto: Port, sim: Simulator) -> None:
    csv = _attachment(auto, media="text/csv")
    got = auto.call(
        "download-attachment", {"path": {"id": _page_of(csv), "attachmentId": str(csv["id"])}}
    )
    assert got.ok, got.error
    summary = got.summary
    assert summary["mediaType"] == "text/csv"
    text = summary["text"]
    assert "," in text and "\n" in text
    assert summary["size"] == len(text.encode())
    assert summary["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert summary["textTruncated"] is False
    downloads = [e for e in sim.exchanges if e.path.endswith("/download")]
    assert len(downloads) == 1


def test_download_refuses_a_file_over_the_cap_before_fetching_it(
    auto: Port, sim: Simulator
) -> None:
    big = _attachment(auto, over=DOWNLOAD_CAP)
    sim.clear()
    with pytest.raises(InputError) as caught:
        auto.call(
            "download-attachment", {"path": {"id": _page_of(big), "attachmentId": str(big["id"])}}
        )
    (violation,) = caught.value.violations
    assert violation.field == "path.attachmentId" and violation.rule == "download_cap"
    assert f"{DOWNLOAD_CAP:,}" in violation.message
    assert not [e for e in sim.exchanges if e.path.endswith("/download")]  # nothing fetched


def test_download_of_a_binary_file_is_metadata_and_a_digest(auto: Port) -> None:
    png = _attachment(auto, media="image/png")
    got = auto.call(
        "download-attachment", {"path": {"id": _page_of(png), "attachmentId": str(png["id"])}}
    )
    assert got.ok, got.error
    assert "text" not in got.summary
    assert len(got.summary["sha256"]) == 64 and got.summary["size"] > 0


# -- copy with its descendants, through the queue and the task poll --------------------------


def _tree(port: Port, root: str, depth: int = 5) -> list[dict[str, Any]]:
    walk = port.paginate("list-page-descendants", {"path": {"id": root}, "query": {"depth": depth}})
    return list(walk)


def test_copy_of_a_page_with_three_descendants_completes_through_queue_and_poll(
    port: Port, sim: Simulator
) -> None:
    # A page with exactly three descendants, made for the test (held writes approved).
    def made(title: str, parent: str) -> str:
        held = port.call(
            "create-page",
            {"body": {"spaceId": ENG, "title": title, "parentId": parent,
                      "body": {"representation": "storage", "value": f"<p>{title}</p>"}}},
        )  # fmt: skip
        assert held.outcome == "held", held
        done = port.approve(held.ticket or "", operator="olivia")
        assert done.state == "succeeded", done.result
        return str(done.result["summary"]["id"])

    root = made("Copy root", HOME)
    child = made("Copy child", root)
    made("Copy grandchild", child)
    made("Copy second child", root)
    assert len(_tree(port, root)) == 3

    held = port.call(
        "copy-page-tree",
        {"path": {"id": root},
         "body": {"destinationPageId": HOME, "titleOptions": {"prefix": "Copy of "}}},
    )  # fmt: skip
    assert held.outcome == "held" and held.ticket
    sim.clear()
    ticket = port.approve(held.ticket, operator="olivia")
    assert ticket.state == "succeeded", ticket.result
    summary = ticket.result["summary"]
    assert summary["finished"] is True and summary["successful"] is True
    polls = [e for e in sim.exchanges if "/longtask/" in e.path]
    assert len(polls) >= 2  # the task was polled until it finished
    copies = port.call("search-pages", {"query": {"title": "Copy of Copy root"}})
    assert copies.ok and len(copies.summary) == 1
    copied = _tree(port, copies.summary[0]["id"])
    assert sorted(p["title"] for p in copied) == [
        "Copy of Copy child", "Copy of Copy grandchild", "Copy of Copy second child",
    ]  # fmt: skip


# -- pages by space key, templates, trees, users, mentions ------------------------------------


def test_create_page_by_space_key_reads_the_id_first(auto: Port, sim: Simulator) -> None:
    prepared, _ = auto.prepare(
        "create-page", {"body": {"spaceKey": ENG_KEY, "title": "Keyed",
                                 "body": {"representation": "storage", "value": "<p>k</p>"}}}
    )  # fmt: skip
    import json

    sent = json.loads(prepared.body or b"{}")
    assert sent["spaceId"] == ENG and "spaceKey" not in sent
    made = auto.call(
        "create-page", {"body": {"spaceKey": ENG_KEY, "title": "Keyed page",
                                 "body": {"representation": "storage", "value": "<p>k</p>"}}}
    )  # fmt: skip
    assert made.ok and made.summary["spaceId"] == ENG


def test_create_page_with_an_unknown_space_key_names_the_field(auto: Port, sim: Simulator) -> None:
    sim.clear()
    with pytest.raises(InputError) as caught:
        auto.call("create-page", {"body": {"spaceKey": "NOPE", "title": "x"}})
    assert caught.value.violations[0].field == "body.spaceKey"
    assert not [e for e in sim.exchanges if e.method == "POST"]


def test_create_page_from_a_template_copies_its_body(auto: Port) -> None:
    listed = auto.call("list-templates", {"query": {"spaceKey": ENG_KEY}})
    assert listed.ok and listed.summary
    template = listed.summary[0]
    got = auto.call("get-template", {"path": {"contentTemplateId": str(template["templateId"])}})
    made = auto.call(
        "create-page-from-template",
        {"body": {"spaceId": ENG, "title": "From a template", "parentId": HOME,
                  "templateId": str(template["templateId"])}},
    )  # fmt: skip
    assert made.ok, made.error
    page = auto.call("get-page", {"path": {"id": made.summary["id"]},
                                  "query": {"body-format": "storage"}})  # fmt: skip
    body = page.summary["body"]
    assert got.ok and body and body.strip()
    assert body == got.summary.get("body", body)


def test_space_tree_is_depth_bounded(auto: Port) -> None:
    shallow = auto.call("get-space-tree", {"path": {"id": ENG}, "query": {"depth": 1}})
    deep = auto.call("get-space-tree", {"path": {"id": ENG}, "query": {"depth": 3}})
    assert shallow.ok and deep.ok
    assert {p["depth"] for p in shallow.summary} == {1}
    assert max(p["depth"] for p in deep.summary) > 1
    assert all(p["parentId"] == HOME for p in shallow.summary)
    with pytest.raises(InputError):
        auto.call("get-space-tree", {"path": {"id": ENG}, "query": {"depth": 9}})


def test_user_search_is_built_from_typed_criteria(auto: Port, sim: Simulator) -> None:
    found = auto.call("search-users", {"query": {"name": "Marcus"}})
    assert found.ok and found.summary
    assert any("Marcus" in (u.get("displayName") or "") for u in found.summary)
    (exchange,) = [e for e in sim.exchanges if e.path.endswith("/search/user")]
    assert parse_qs(exchange.query)["cql"] == ['type=user AND user.fullname~"Marcus"']
    sneaky = auto.call("search-users", {"query": {"name": 'x" OR type=page'}})
    assert sneaky.ok and sneaky.summary == []  # stays one quoted value


def test_markdown_mention_becomes_a_user_link(auto: Port) -> None:
    account = "557058:7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    prepared, _ = auto.prepare(
        "create-page",
        {"body": {"spaceId": ENG, "title": "Mention",
                  "body": {"representation": "markdown",
                           "value": f"Ask [@Marcus](mention:{account}) first."}}},
    )  # fmt: skip
    assert f'<ri:user ri:account-id=\\"{account}\\"/>'.encode() in (prepared.body or b"")


def test_an_auto_write_records_its_intent_before_its_outcome(auto: Port, home: Path) -> None:
    from harbor_confluence.review.audit import AuditLog

    made = auto.call("create-page", {"body": {"spaceId": ENG, "title": "Intent first"}})
    assert made.ok
    records = [r for r in AuditLog.for_home(home).records() if r.get("action") == "create-page"]
    assert [r["event"] for r in records] == ["auto-sending", "auto-sent"]
    assert records[0]["fingerprint"] == records[1]["fingerprint"]
    assert records[0]["seq"] < records[1]["seq"]
