"""Issue 17's catalog breadth: what each new area does, checked through ``Port.call``.

The end-to-end scenarios (test_catalog_e2e.py) prove every action answers; these prove the
answers mean what the action says: a depth bound is a depth bound, a move moves, a copy
copies the body, a restore restores it, an exact title is exact, a resolution is a
versioned change, a watch is visible to the next read.  Writes run under the e2e policy
(the default policy's hard limits, then everything automatic), except where a test shows
the default policy holding a write until an operator approves it.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from harbor_confluence.errors import InputError, PolicyDenied
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.pipeline.summary import Result
from harbor_confluence.sim import Simulator
from tests.test_catalog_e2e import (
    ADR_TEMPLATE,
    ARCH,
    DANA,
    ENG,
    ENG_KEY,
    FOLDER,
    HOME,
    MARCUS,
    PRIYA,
    SUB_FOLDER,
    UNWATCHED,
    body_of,
    new_blogpost,
    new_inline,
    new_page,
    ok,
    storage,
)


def child_page(port: Port, parent: str, title: str, body: str = "<p>child</p>") -> str:
    page = {"spaceId": ENG, "title": title, "parentId": parent, "body": storage(body)}
    made = ok(port, "create-page", {"body": page})
    page_id: str = made.summary["id"]
    return page_id


def parent_of(port: Port, page_id: str) -> str:
    parent: str = ok(port, "get-page", {"path": {"id": page_id}}).summary["parentId"]
    return parent


def ids(result: Result) -> list[str]:
    return [item["id"] for item in result.summary]


# -- the content tree ------------------------------------------------------------------------


def test_descendants_respect_depth(auto: Port) -> None:
    top = new_page(auto, "Tree top")["id"]
    mid = child_page(auto, top, "Tree mid")
    low = child_page(auto, mid, "Tree low")
    bottom = child_page(auto, low, "Tree bottom")

    def walk(depth: int) -> dict[str, tuple[int, str]]:
        got = ok(auto, "list-page-descendants", {"path": {"id": top}, "query": {"depth": depth}})
        return {i["id"]: (i["depth"], i["parentId"]) for i in got.summary}

    assert walk(1) == {mid: (1, top)}
    assert walk(2) == {mid: (1, top), low: (2, mid)}
    assert walk(5) == {mid: (1, top), low: (2, mid), bottom: (3, low)}
    direct = ok(auto, "list-page-direct-children", {"path": {"id": top}})
    assert ids(direct) == [mid]


def test_descendants_depth_is_bounded_before_sending(auto: Port, sim: Simulator) -> None:
    for depth in (0, 6):
        with pytest.raises(InputError) as info:
            auto.call("list-page-descendants", {"path": {"id": HOME}, "query": {"depth": depth}})
        assert [v.field for v in info.value.violations] == ["query.depth"]
    with pytest.raises(PolicyDenied) as denied:
        auto.call("list-folder-descendants", {"path": {"id": FOLDER}, "query": {"limit": 101}})
    assert denied.value.rule == "search-limit-cap"
    assert sim.request_count == 0


def test_folders_hold_pages_and_folders(auto: Port) -> None:
    made = ok(auto, "create-folder", {"body": {"spaceId": ENG, "title": "Breadth folder",
                                               "parentId": FOLDER}})  # fmt: skip
    folder = made.summary["id"]
    assert (made.summary["parentId"], made.summary["parentType"]) == (FOLDER, "folder")
    inside = child_page(auto, folder, "Page in a folder")
    assert parent_of(auto, inside) == folder
    children = ok(auto, "list-folder-direct-children", {"path": {"id": FOLDER}})
    assert {SUB_FOLDER, folder} <= set(ids(children))
    tree = ok(auto, "list-folder-descendants", {"path": {"id": FOLDER}, "query": {"depth": 2}})
    found = {i["id"]: (i["depth"], i["parentId"]) for i in tree.summary}
    assert found[folder] == (1, FOLDER) and found[inside] == (2, folder)
    assert ok(auto, "get-folder", {"path": {"id": folder}}).summary["title"] == "Breadth folder"


def test_deleted_folder_leaves_its_parent(auto: Port) -> None:
    folder = ok(auto, "create-folder", {"body": {"spaceId": ENG, "title": "Short-lived",
                                                 "parentId": HOME}}).summary["id"]  # fmt: skip
    before = ok(auto, "list-page-direct-children", {"path": {"id": HOME}, "query": {"limit": 100}})
    assert folder in ids(before)
    assert auto.call("delete-folder", {"path": {"id": folder}}).status == 204
    after = ok(auto, "list-page-direct-children", {"path": {"id": HOME}, "query": {"limit": 100}})
    assert folder not in ids(after)


def test_whiteboards_and_databases_sit_in_the_page_tree(auto: Port) -> None:
    whiteboard = ok(auto, "get-whiteboard", {"path": {"id": "557059"}}).summary
    database = ok(auto, "get-database", {"path": {"id": "557060"}}).summary
    for item, kind in ((whiteboard, "whiteboard"), (database, "database")):
        assert item["spaceId"] == ENG and item["type"] == kind
        siblings = ok(auto, "list-page-direct-children", {"path": {"id": item["parentId"]}})
        assert (item["id"], kind) in [(i["id"], i["type"]) for i in siblings.summary]


# -- moves, copies, restores -----------------------------------------------------------------


def test_move_page_changes_the_parent(auto: Port) -> None:
    page = new_page(auto, "Mover")["id"]
    target = new_page(auto, "New home")["id"]
    assert parent_of(auto, page) == HOME
    ok(auto, "move-page", {"path": {"pageId": page, "position": "append", "targetId": target}})
    assert parent_of(auto, page) == target
    # before / after a sibling: the page takes the sibling's parent
    ok(auto, "move-page", {"path": {"pageId": page, "position": "before", "targetId": ARCH}})
    assert parent_of(auto, page) == parent_of(auto, ARCH)


def test_move_position_is_an_enum(auto: Port, sim: Simulator) -> None:
    with pytest.raises(InputError) as info:
        auto.call("move-page", {"path": {"pageId": ARCH, "position": "../x", "targetId": HOME}})
    assert "path.position" in [v.field for v in info.value.violations]
    assert sim.request_count == 0


def test_copy_page_creates_a_page_with_the_same_body(auto: Port) -> None:
    target = new_page(auto, "Copy target")["id"]
    original = body_of(auto, ARCH)
    copy = ok(auto, "copy-page", {"path": {"id": ARCH}, "body": {
        "destination": {"type": "parent_page", "value": target}, "pageTitle": "ARCH copy",
    }}).summary  # fmt: skip
    assert copy["id"] != ARCH and copy["title"] == "ARCH copy"
    assert body_of(auto, copy["id"]) == original
    assert parent_of(auto, copy["id"]) == target
    assert body_of(auto, ARCH) == original  # the source is untouched
    found = ok(auto, "get-page-by-title", {"query": {"spaceKey": ENG_KEY, "title": "ARCH copy"}})
    assert ids(found) == [copy["id"]]


def test_copies_never_carry_permissions(auto: Port, sim: Simulator) -> None:
    dest = {"type": "parent_page", "value": HOME}
    for name, body in (
        ("copy-page", {"destination": dest, "copyPermissions": True}),
        ("copy-page-tree", {"destinationPageId": HOME, "copyPermissions": True}),
    ):
        with pytest.raises(InputError) as info:
            auto.call(name, {"path": {"id": ARCH}, "body": body})
        assert ("body.copyPermissions", "additionalProperties") in [
            (v.field, v.rule) for v in info.value.violations
        ]
    assert sim.request_count == 0


def test_copy_page_tree_copies_the_descendants(auto: Port) -> None:
    top = new_page(auto, "Subtree")["id"]
    leaf = child_page(auto, top, "Subtree leaf", "<p>leaf body</p>")
    target = new_page(auto, "Subtree target")["id"]
    started = ok(auto, "copy-page-tree", {"path": {"id": top}, "body": {
        "destinationPageId": target, "titleOptions": {"prefix": "Copied "},
    }})  # fmt: skip
    task_id = started.summary["taskId"]
    assert started.summary["finished"] is True  # the runner polled the task to its end
    task: dict[str, Any] = {}
    for _ in range(200):  # bounded by count, not by time
        task = ok(auto, "get-long-task", {"path": {"id": task_id}}).summary
        if task["finished"]:
            break
    assert task["finished"] and task["successful"] and task["percentageComplete"] == 100
    copied = ok(auto, "list-page-descendants", {"path": {"id": target}, "query": {"depth": 3}})
    titles = {i["title"]: (i["depth"], i["id"]) for i in copied.summary}
    assert titles["Copied Subtree"][0] == 1 and titles["Copied Subtree leaf"][0] == 2
    assert body_of(auto, titles["Copied Subtree leaf"][1]) == "<p>leaf body</p>"
    assert parent_of(auto, leaf) == top  # the source tree stays where it was


def test_restore_page_version_restores_the_body(auto: Port) -> None:
    page = new_page(auto, "Restorable")["id"]
    for text in ("<p>two</p>", "<p>three</p>"):
        ok(auto, "update-page", {"path": {"id": page}, "body": {"body": storage(text)}})
    restored = ok(auto, "restore-page-version", {"path": {"id": page}, "body": {
        "operationKey": "restore", "params": {"versionNumber": 2, "message": "undo three"},
    }})  # fmt: skip
    assert restored.summary["number"] == 4
    got = ok(auto, "get-page", {"path": {"id": page}, "query": {"body-format": "storage"}})
    assert got.summary["body"] == "<p>two</p>" and got.summary["version"] == 4
    versions = ok(auto, "list-page-versions", {"path": {"id": page}})
    assert "undo three" in [v.get("message") for v in versions.summary]


def test_restore_is_held_and_runs_once_approved(port: Port, sim: Simulator) -> None:
    """The default policy holds the new writes; approving the ticket runs it."""
    body = {"operationKey": "restore", "params": {"versionNumber": 1, "message": "approved"}}
    held = port.call("restore-page-version", {"path": {"id": ARCH}, "body": body})
    assert held.outcome == "held" and held.rule == "tree-changes-review"
    assert sim.request_count == 0
    version_one = {"body-format": "storage", "version": 1}
    first_body = ok(port, "get-page", {"path": {"id": ARCH}, "query": version_one})
    before = ok(port, "get-page", {"path": {"id": ARCH}}).summary["version"]
    done = port.approve(held.ticket or "", operator="operator-1")
    assert done.state == "succeeded", done.result
    after = ok(port, "get-page", {"path": {"id": ARCH}, "query": {"body-format": "storage"}})
    assert after.summary["version"] == before + 1
    assert after.summary["body"] == first_body.summary["body"]


# -- finding a page by title -------------------------------------------------------------------


def test_get_page_by_title_is_exact(auto: Port) -> None:
    def find(space: str, title: str) -> list[str]:
        return ids(ok(auto, "get-page-by-title", {"query": {"spaceKey": space, "title": title}}))

    assert find(ENG_KEY, "Architecture Overview") == [ARCH]
    assert find(ENG_KEY, "Architecture Overvie") == []
    assert find(ENG_KEY, "Architecture Overview ") == []
    assert find("OPS", "Architecture Overview") == []
    with_body = ok(auto, "get-page-by-title", {"query": {
        "spaceKey": ENG_KEY, "title": "Architecture Overview", "expand": ["body.storage"],
    }}).summary  # fmt: skip
    assert with_body[0]["body"] == body_of(auto, ARCH)[: len(with_body[0]["body"])]


def test_get_page_by_title_type_is_page_only(auto: Port, sim: Simulator) -> None:
    with pytest.raises(InputError):
        auto.call("get-page-by-title",
                  {"query": {"spaceKey": ENG_KEY, "title": "x", "type": "blogpost"}})  # fmt: skip
    with pytest.raises(InputError):
        auto.call("get-page-by-title", {"query": {"title": "Architecture Overview"}})
    assert sim.request_count == 0


# -- attachments ---------------------------------------------------------------------------------


def test_upload_attachment_version_replaces_the_file(auto: Port) -> None:
    page = new_page(auto, "Attachment versions")["id"]

    def file(content: bytes) -> dict[str, Any]:
        return {"file": {"filename": "notes.txt", "mediaType": "text/plain",
                         "contentBase64": base64.b64encode(content).decode()}}  # fmt: skip

    first = ok(auto, "upload-attachment", {"path": {"id": page}, "body": file(b"one\n")})
    att = first.summary[0]["id"]
    second = ok(auto, "upload-attachment-version", {
        "path": {"id": page, "attachmentId": att}, "body": file(b"second version\n"),
    })  # fmt: skip
    assert (second.summary["id"], second.summary["version"]) == (att, 2)
    listed = ok(auto, "list-page-attachments", {"path": {"id": page}})
    assert [(i["title"], i["fileSize"], i["version"]) for i in listed.summary] == [
        ("notes.txt", len(b"second version\n"), 2)
    ]


# -- inline comments ---------------------------------------------------------------------------


def test_inline_comment_resolve_and_reopen(auto: Port) -> None:
    page = new_page(auto, "Inline lifecycle")["id"]
    made = new_inline(auto, page)
    comment = {"comment_id": made["id"]}
    seen = ok(auto, "get-inline-comment", {"path": comment, "query": {"body-format": "storage"}})
    assert (seen.summary["resolutionStatus"], seen.summary["version"]) == ("open", 1)
    resolved = ok(auto, "resolve-inline-comment", {"path": comment})
    assert (resolved.summary["resolutionStatus"], resolved.summary["version"]) == ("resolved", 2)
    reopened = ok(auto, "reopen-inline-comment", {"path": comment})
    assert (reopened.summary["resolutionStatus"], reopened.summary["version"]) == ("reopened", 3)
    after = ok(auto, "get-inline-comment", {"path": comment, "query": {"body-format": "storage"}})
    assert after.summary["body"] == seen.summary["body"] == "<p>why one?</p>"
    listed = ok(auto, "list-page-inline-comments",
                {"path": {"id": page}, "query": {"resolution-status": ["reopened"]}})  # fmt: skip
    assert ids(listed) == [made["id"]]


def test_stale_resolution_conflicts(auto: Port) -> None:
    made = new_inline(auto, new_page(auto, "Inline conflict")["id"])
    comment = {"comment_id": made["id"]}
    ok(auto, "resolve-inline-comment", {"path": comment})
    stale = auto.call("reopen-inline-comment", {"path": comment, "body": {"expected_version": 1}})
    assert not stale.ok and stale.status == 409
    assert (stale.error or {})["type"] == "conflict"
    got = ok(auto, "get-inline-comment", {"path": comment})
    assert (got.summary["resolutionStatus"], got.summary["version"]) == ("resolved", 2)


def test_held_resolution_shows_the_change_and_runs_on_approval(
    port: Port, auto: Port, sim: Simulator
) -> None:
    made = new_inline(auto, new_page(auto, "Inline review")["id"])
    held = port.call("resolve-inline-comment", {"path": {"comment_id": made["id"]}})
    assert held.outcome == "held" and held.rule == "updates-review"
    ticket = port.ticket(held.ticket or "")
    assert ticket is not None and ticket.review["base_version"] == 1
    assert "-open" in ticket.review["diff"] and "+resolved" in ticket.review["diff"]
    done = port.approve(held.ticket or "", operator="operator-1")
    assert done.state == "succeeded", done.result
    got = ok(auto, "get-inline-comment", {"path": {"comment_id": made["id"]}})
    assert got.summary["resolutionStatus"] == "resolved"


def test_replies_hang_under_their_inline_comment(auto: Port) -> None:
    top = new_inline(auto, new_page(auto, "Inline replies")["id"])
    reply = ok(auto, "reply-inline-comment", {"body": {
        "parentCommentId": top["id"], "body": storage("<p>a reply</p>"),
    }}).summary  # fmt: skip
    assert reply["parentCommentId"] == top["id"] and reply["id"] != top["id"]


def test_inline_comment_needs_a_selection(auto: Port, sim: Simulator) -> None:
    page = new_page(auto, "No selection")["id"]
    sim.clear()
    with pytest.raises(InputError) as info:
        auto.call("create-inline-comment",
                  {"body": {"pageId": page, "body": storage("<p>x</p>")}})  # fmt: skip
    assert "body.inlineCommentProperties" in [v.field for v in info.value.violations]
    assert sim.request_count == 0


def test_blogpost_footer_comment_lists_under_the_blog_post(auto: Port) -> None:
    post = new_blogpost(auto)["id"]
    made = ok(auto, "create-blogpost-footer-comment", {"body": {
        "blogPostId": post, "body": {"representation": "markdown", "value": "Nice **post**"},
    }}).summary  # fmt: skip
    assert made["blogPostId"] == post and not made.get("pageId")
    listed = ok(auto, "list-blogpost-footer-comments",
                {"path": {"id": post}, "query": {"body-format": "storage"}})  # fmt: skip
    assert [(i["id"], i["body"]) for i in listed.summary] == [
        (made["id"], "<p>Nice <strong>post</strong></p>")
    ]


# -- users, templates ------------------------------------------------------------------------


def test_get_users_returns_every_asked_account(auto: Port) -> None:
    asked = [PRIYA, MARCUS, DANA]
    got = ok(auto, "get-users", {"query": {"accountId": ",".join(asked)}})
    by_id = {i["accountId"]: i["displayName"] for i in got.summary}
    assert sorted(by_id) == sorted(asked)
    for account in asked:
        one = ok(auto, "get-user", {"query": {"accountId": account}}).summary
        assert one["displayName"] == by_id[account]


def test_get_users_is_bounded(auto: Port, sim: Simulator) -> None:
    too_many = ",".join(f"557058:{n:04d}" for n in range(101))
    for bad in (too_many, "", "a,,b", "a b"):
        with pytest.raises(InputError):
            auto.call("get-users", {"query": {"accountId": bad}})
    assert sim.request_count == 0


def test_templates_list_and_get(auto: Port) -> None:
    space = ok(auto, "list-templates", {"query": {"spaceKey": ENG_KEY}})
    names = {i["templateId"]: i["name"] for i in space.summary}
    assert names[ADR_TEMPLATE] == "Architecture decision record"
    global_only = ok(auto, "list-templates", {"query": {"limit": 100}})  # no spaceKey
    assert "Meeting notes" in [i["name"] for i in global_only.summary]
    assert ADR_TEMPLATE not in [i["templateId"] for i in global_only.summary]
    one = ok(auto, "get-template", {"path": {"contentTemplateId": ADR_TEMPLATE}}).summary
    assert one["name"] == names[ADR_TEMPLATE] and "adr" in one["labels"]
    assert one["body"].startswith("<h2>Status</h2>")


def test_templates_page_by_start(auto: Port) -> None:
    walk = auto.paginate("list-templates", {"query": {"spaceKey": ENG_KEY, "limit": 1}})
    items = walk.items()
    assert walk.report.complete, walk.report.to_dict()
    assert walk.report.requests >= len(items) >= 2
    assert len({i["templateId"] for i in items}) == len(items)
    assert ADR_TEMPLATE in [i["templateId"] for i in items]


# -- watches, analytics ------------------------------------------------------------------------


def test_watch_then_unwatch(auto: Port) -> None:
    page = new_page(auto, "Watch me")["id"]
    path = {"contentId": page}
    assert ok(auto, "get-page-watch", {"path": path}).summary == {"watching": False}
    assert auto.call("watch-page", {"path": path}).status == 204
    assert ok(auto, "get-page-watch", {"path": path}).summary == {"watching": True}
    assert auto.call("unwatch-page", {"path": path}).status == 204
    assert ok(auto, "get-page-watch", {"path": path}).summary == {"watching": False}
    assert ok(auto, "get-page-watch", {"path": {"contentId": UNWATCHED}}).summary == {
        "watching": False
    }


def test_unwatch_needs_two_operators(port: Port, sim: Simulator) -> None:
    held = port.call("unwatch-page", {"path": {"contentId": ARCH}})
    assert held.outcome == "held" and held.rule == "deletes-review"
    ticket = port.ticket(held.ticket or "")
    assert ticket is not None and ticket.headers == {"X-Atlassian-Token": "no-check"}
    assert sim.request_count == 0


def test_views_count_and_distinct_viewers(auto: Port) -> None:
    path = {"contentId": ARCH}
    views = ok(auto, "get-page-views", {"path": path}).summary
    viewers = ok(auto, "get-page-viewers", {"path": path}).summary
    assert views["id"] == viewers["id"] and str(views["id"]) == ARCH
    assert views["count"] >= 6 and 4 <= viewers["count"] < views["count"]
    since = {"fromDate": "2024-05-01T00:00:00.000Z"}
    recent = ok(auto, "get-page-views", {"path": path, "query": since}).summary
    recent_viewers = ok(auto, "get-page-viewers", {"path": path, "query": since}).summary
    assert 0 < recent["count"] < views["count"]
    assert 0 < recent_viewers["count"] <= recent["count"]
    with pytest.raises(InputError):
        auto.call("get-page-views", {"path": path, "query": {"fromDate": "last week"}})
