"""Every catalog action end to end against the simulator; the lost-update scenario.

The ``sim`` fixture validates every exchange (request and response) against Atlassian's
documents at teardown, so each scenario here is also a contract check of what the runner
sent and what the simulator answered.  Writes run under a test policy that makes them
``auto`` (the default policy holds them); purge stays denied.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harbor_confluence.errors import PolicyDenied
from harbor_confluence.pipeline.executor import Port, default_manifest_path
from harbor_confluence.pipeline.manifest import load_manifest
from harbor_confluence.pipeline.summary import Result
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL

NAMES = [a.name for a in load_manifest(default_manifest_path()).actions]
ENG, ENG_KEY, HOME = "65538", "ENG", "98305"
ARCH = "98306"  # "Architecture Overview"
DECISION_TYPE = "ac:com.example.decisions:decision"  # seeded custom content type


def ok(port: Port, name: str, data: Any = None) -> Result:
    result = port.call(name, data)
    assert result.ok and result.outcome == "sent", (name, result.status, result.error)
    return result


def storage(value: str) -> dict[str, str]:
    return {"representation": "storage", "value": value}


def first(port: Port, name: str, data: Any = None) -> dict[str, Any]:
    result = ok(port, name, data)
    assert result.summary, f"{name} returned nothing"
    item: dict[str, Any] = result.summary[0]
    return item


def new_page(port: Port, title: str = "E2E page") -> dict[str, Any]:
    made = ok(
        port,
        "create-page",
        {"body": {"spaceId": ENG, "title": title, "parentId": HOME,
                  "body": storage("<p>one</p>")}},
    )  # fmt: skip
    summary: dict[str, Any] = made.summary
    return summary


def new_blogpost(port: Port) -> dict[str, Any]:
    made = ok(
        port,
        "create-blogpost",
        {"body": {"spaceId": ENG, "title": "E2E post", "body": storage("<p>post</p>")}},
    )
    summary: dict[str, Any] = made.summary
    return summary


# -- one scenario per action: each returns the action's result and asserts what matters ----

Scenario = Callable[[Port], Result]


def _search_pages(p: Port) -> Result:
    r = ok(p, "search-pages", {"query": {"space-id": [ENG], "limit": 5, "sort": "title"}})
    assert r.count == 5 and all(i["spaceId"] == ENG for i in r.summary) and r.next_cursor
    return r


def _get_page(p: Port) -> Result:
    query = {"body-format": "storage", "include-labels": True}
    r = ok(p, "get-page", {"path": {"id": ARCH}, "query": query})
    assert r.summary["id"] == ARCH and r.summary["body"].startswith("<")
    return r


def _create_page(p: Port) -> Result:
    page = new_page(p, "Created by e2e")
    got = ok(p, "get-page", {"path": {"id": page["id"]}})
    assert got.summary["title"] == "Created by e2e" and got.summary["version"] == 1
    return ok(p, "get-page", {"path": {"id": page["id"]}})


def _update_page(p: Port) -> Result:
    page = new_page(p)
    r = ok(p, "update-page", {"path": {"id": page["id"]}, "body": {"body": storage("<p>2</p>")}})
    assert r.summary["version"] == 2 and r.summary["title"] == page["title"]
    return r


def _edit_page(p: Port) -> Result:
    page = new_page(p, "E2E edit")
    edit = {"op": "append", "content": "Two **bold**."}
    r = ok(p, "edit-page", {"path": {"id": page["id"]}, "body": edit})
    assert r.summary["version"] == 2 and r.summary["title"] == "E2E edit"
    got = ok(p, "get-page", {"path": {"id": page["id"]}, "query": {"body-format": "storage"}})
    assert got.summary["body"] == "<p>one</p><p>Two <strong>bold</strong>.</p>"
    return r


def _delete_page(p: Port) -> Result:
    page = new_page(p)
    r = p.call("delete-page", {"path": {"id": page["id"]}})
    assert r.ok and r.status == 204
    trashed = ok(p, "search-pages", {"query": {"status": ["trashed"], "title": page["title"]}})
    assert [(i["id"], i["status"]) for i in trashed.summary] == [(page["id"], "trashed")]
    with pytest.raises(PolicyDenied) as info:
        p.call("delete-page", {"path": {"id": page["id"]}, "query": {"purge": True}})
    assert info.value.rule == "purge-denied"
    return r


def _children(p: Port) -> Result:
    r = ok(p, "list-page-children", {"path": {"id": HOME}, "query": {"limit": 10}})
    assert r.count and all(i["spaceId"] == ENG for i in r.summary if "spaceId" in i)
    return r


def _ancestors(p: Port) -> Result:
    page = new_page(p)
    r = ok(p, "get-page-ancestors", {"path": {"id": page["id"]}})
    assert [i["id"] for i in r.summary][-1] == HOME
    return r


def _versions(p: Port) -> Result:
    r = ok(p, "list-page-versions", {"path": {"id": ARCH}, "query": {"limit": 2}})
    assert r.count == 2 and r.next_cursor and r.summary[0]["number"] >= 1
    return r


def _version(p: Port) -> Result:
    r = ok(p, "get-page-version", {"path": {"page_id": ARCH, "version_number": 1}})
    assert r.summary["number"] == 1 and r.summary["authorId"]
    return r


def _diff(p: Port) -> Result:
    page = new_page(p)
    ok(p, "update-page", {"path": {"id": page["id"]}, "body": {"body": storage("<p>two</p>")}})
    r = ok(p, "get-page-diff", {"path": {"id": page["id"]}, "query": {"from": 1}})
    assert r.summary["diff"].endswith("-<p>one</p>\n+<p>two</p>")
    return r


def _page_labels(p: Port) -> Result:
    ok(p, "add-labels", {"path": {"id": ARCH}, "body": {"labels": ["e2e-label"]}})
    r = ok(p, "list-page-labels", {"path": {"id": ARCH}, "query": {"limit": 50}})
    assert "e2e-label" in [i["name"] for i in r.summary]
    return r


def _page_attachments(p: Port) -> Result:
    r = ok(p, "list-page-attachments", {"path": {"id": HOME}})
    assert all(i["pageId"] == HOME for i in r.summary)
    return r


def _page_footer_comments(p: Port) -> Result:
    ok(p, "create-footer-comment", {"body": {"pageId": ARCH, "body": storage("<p>c</p>")}})
    r = ok(p, "list-page-footer-comments", {"path": {"id": ARCH},
                                            "query": {"body-format": "storage"}})  # fmt: skip
    assert any(i.get("body") == "<p>c</p>" for i in r.summary)
    return r


def _page_inline_comments(p: Port) -> Result:
    some = first(p, "list-inline-comments")
    r = ok(p, "list-page-inline-comments", {"path": {"id": some["pageId"]}})
    assert some["id"] in [i["id"] for i in r.summary]
    return r


def _property(p: Port, owner: str, prefix: str, owner_id: str) -> dict[str, Any]:
    body = {"key": "e2e-key", "value": {"n": 1}}
    made = ok(p, f"create-{prefix}-property", {"path": {owner: owner_id}, "body": body})
    assert made.summary["key"] == "e2e-key" and made.summary["version"] == 1
    summary: dict[str, Any] = made.summary
    return summary


def _list_page_properties(p: Port) -> Result:
    _property(p, "page_id", "page", ARCH)
    r = ok(p, "list-page-properties", {"path": {"page_id": ARCH}, "query": {"key": "e2e-key"}})
    assert [i["value"] for i in r.summary] == [{"n": 1}]
    return r


def _get_page_property(p: Port) -> Result:
    prop = _property(p, "page_id", "page", ARCH)
    r = ok(p, "get-page-property", {"path": {"page_id": ARCH, "property_id": prop["id"]}})
    assert r.summary == {"id": prop["id"], "key": "e2e-key", "value": {"n": 1}, "version": 1}
    return r


def _create_page_property(p: Port) -> Result:
    _property(p, "page_id", "page", ARCH)
    return ok(p, "list-page-properties", {"path": {"page_id": ARCH}})


def _update_page_property(p: Port) -> Result:
    prop = _property(p, "page_id", "page", ARCH)
    path = {"page_id": ARCH, "property_id": prop["id"]}
    r = ok(p, "update-page-property", {"path": path, "body": {"value": {"n": 2}}})
    assert r.summary["version"] == 2 and r.summary["value"] == {"n": 2}
    return r


def _delete_page_property(p: Port) -> Result:
    prop = _property(p, "page_id", "page", ARCH)
    path = {"page_id": ARCH, "property_id": prop["id"]}
    r = p.call("delete-page-property", {"path": path})
    assert r.ok and r.status == 204
    assert p.call("get-page-property", {"path": path}).status == 404
    return r


def _spaces(p: Port) -> Result:
    r = ok(p, "list-spaces", {"query": {"keys": [ENG_KEY, "OPS"]}})
    assert sorted(i["key"] for i in r.summary) == [ENG_KEY, "OPS"]
    return r


def _space(p: Port) -> Result:
    r = ok(p, "get-space", {"path": {"id": ENG}})
    assert r.summary["key"] == ENG_KEY and r.summary["homepageId"] == HOME
    return r


def _space_pages(p: Port) -> Result:
    r = ok(p, "list-space-pages", {"path": {"id": ENG}, "query": {"depth": "root"}})
    assert [i["id"] for i in r.summary] == [HOME]
    return r


def _space_blogposts(p: Port) -> Result:
    post = new_blogpost(p)
    r = ok(p, "list-space-blogposts", {"path": {"id": ENG}, "query": {"limit": 100}})
    assert post["id"] in [i["id"] for i in r.summary]
    return r


def _space_labels(p: Port) -> Result:
    r = ok(p, "list-space-labels", {"path": {"id": ENG}})
    assert isinstance(r.summary, list)
    return r


def _list_space_properties(p: Port) -> Result:
    _property(p, "space_id", "space", ENG)
    r = ok(p, "list-space-properties", {"path": {"space_id": ENG}, "query": {"key": "e2e-key"}})
    assert [i["key"] for i in r.summary] == ["e2e-key"]
    return r


def _get_space_property(p: Port) -> Result:
    prop = _property(p, "space_id", "space", ENG)
    r = ok(p, "get-space-property", {"path": {"space_id": ENG, "property_id": prop["id"]}})
    assert r.summary["value"] == {"n": 1}
    return r


def _create_space_property(p: Port) -> Result:
    _property(p, "space_id", "space", ENG)
    return ok(p, "list-space-properties", {"path": {"space_id": ENG}})


def _update_space_property(p: Port) -> Result:
    prop = _property(p, "space_id", "space", ENG)
    path = {"space_id": ENG, "property_id": prop["id"]}
    r = ok(p, "update-space-property", {"path": path, "body": {"value": "plain"}})
    assert r.summary["version"] == 2 and r.summary == {**prop, "value": "plain", "version": 2}
    return r


def _delete_space_property(p: Port) -> Result:
    prop = _property(p, "space_id", "space", ENG)
    path = {"space_id": ENG, "property_id": prop["id"]}
    r = p.call("delete-space-property", {"path": path})
    assert r.ok and r.status == 204
    return r


def _blogposts(p: Port) -> Result:
    r = ok(p, "list-blogposts", {"query": {"space-id": [ENG], "limit": 3}})
    assert r.count and all(i["spaceId"] == ENG for i in r.summary)
    return r


def _blogpost(p: Port) -> Result:
    post = first(p, "list-blogposts")
    r = ok(p, "get-blogpost", {"path": {"id": post["id"]}, "query": {"body-format": "storage"}})
    assert r.summary["id"] == post["id"] and r.summary["body"]
    return r


def _create_blogpost(p: Port) -> Result:
    post = new_blogpost(p)
    return ok(p, "get-blogpost", {"path": {"id": post["id"]}})


def _update_blogpost(p: Port) -> Result:
    post = new_blogpost(p)
    body = {"body": storage("<p>v2</p>"), "expected_version": 1}
    r = ok(p, "update-blogpost", {"path": {"id": post["id"]}, "body": body})
    assert r.summary["version"] == 2
    return r


def _delete_blogpost(p: Port) -> Result:
    post = new_blogpost(p)
    r = p.call("delete-blogpost", {"path": {"id": post["id"]}})
    assert r.ok and r.status == 204
    with pytest.raises(PolicyDenied):
        p.call("delete-blogpost", {"path": {"id": post["id"]}, "query": {"purge": True}})
    return r


def _blogpost_labels(p: Port) -> Result:
    post = new_blogpost(p)
    ok(p, "add-labels", {"path": {"id": post["id"]}, "body": {"labels": ["news"]}})
    r = ok(p, "list-blogpost-labels", {"path": {"id": post["id"]}})
    assert [i["name"] for i in r.summary] == ["news"]
    return r


def _blogpost_versions(p: Port) -> Result:
    post = new_blogpost(p)
    r = ok(p, "list-blogpost-versions", {"path": {"id": post["id"]}})
    assert [i["number"] for i in r.summary] == [1]
    return r


def _blogpost_comments(p: Port) -> Result:
    post = new_blogpost(p)
    ok(
        p,
        "create-footer-comment",
        {"body": {"blogPostId": post["id"], "body": storage("<p>b</p>")}},
    )
    r = ok(p, "list-blogpost-footer-comments", {"path": {"id": post["id"]}})
    assert r.count == 1 and r.summary[0]["blogPostId"] == post["id"]
    return r


def _footer_comments(p: Port) -> Result:
    r = ok(p, "list-footer-comments", {"query": {"limit": 5, "body-format": "storage"}})
    assert r.count and all("id" in i for i in r.summary)
    return r


def _footer_comment(p: Port) -> Result:
    some = first(p, "list-footer-comments")
    r = ok(p, "get-footer-comment", {"path": {"comment_id": some["id"]},
                                     "query": {"body-format": "storage"}})  # fmt: skip
    assert r.summary["id"] == some["id"] and r.summary["body"]
    return r


def _comment(p: Port, parent: dict[str, str]) -> dict[str, Any]:
    made = ok(p, "create-footer-comment", {"body": {**parent, "body": storage("<p>hi</p>")}})
    summary: dict[str, Any] = made.summary
    return summary


def _create_comment(p: Port) -> Result:
    top = _comment(p, {"pageId": ARCH})
    reply = _comment(p, {"parentCommentId": top["id"]})
    assert reply["parentCommentId"] == top["id"]
    return ok(p, "get-footer-comment", {"path": {"comment_id": reply["id"]}})


def _update_comment(p: Port) -> Result:
    top = _comment(p, {"pageId": ARCH})
    r = ok(p, "update-footer-comment", {"path": {"comment_id": top["id"]},
                                        "body": {"body": storage("<p>edited</p>")}})  # fmt: skip
    assert r.summary["version"] == 2
    return r


def _delete_comment(p: Port) -> Result:
    top = _comment(p, {"pageId": ARCH})
    r = p.call("delete-footer-comment", {"path": {"comment_id": top["id"]}})
    assert r.ok and r.status == 204
    assert p.call("get-footer-comment", {"path": {"comment_id": top["id"]}}).status == 404
    return r


def _replies(p: Port) -> Result:
    top = _comment(p, {"pageId": ARCH})
    reply = _comment(p, {"parentCommentId": top["id"]})
    r = ok(p, "list-comment-replies", {"path": {"id": top["id"]}})
    assert [i["id"] for i in r.summary] == [reply["id"]]
    return r


def _inline_comments(p: Port) -> Result:
    r = ok(p, "list-inline-comments", {"query": {"body-format": "storage"}})
    assert r.count and all(i.get("pageId") or i.get("blogPostId") for i in r.summary)
    return r


def _inline_comment(p: Port) -> Result:
    some = first(p, "list-inline-comments")
    r = ok(p, "get-inline-comment", {"path": {"comment_id": some["id"]}})
    assert r.summary["id"] == some["id"] and "resolutionStatus" in r.summary
    return r


def _attachments(p: Port) -> Result:
    r = ok(p, "list-attachments", {"query": {"limit": 5}})
    assert r.count and all(i["id"].startswith("att") for i in r.summary)
    return r


def _attachment(p: Port) -> Result:
    some = first(p, "list-attachments")
    r = ok(p, "get-attachment", {"path": {"id": some["id"]}})
    assert r.summary["id"] == some["id"] and r.summary["fileSize"] == some["fileSize"]
    return r


def _upload(p: Port, page_id: str, content: bytes, name: str = "e2e.txt") -> Result:
    return ok(
        p,
        "upload-attachment",
        {"path": {"id": page_id},
         "body": {"file": {"filename": name, "mediaType": "text/plain",
                           "contentBase64": base64.b64encode(content).decode()},
                  "comment": "from e2e"}},
    )  # fmt: skip


def _delete_attachment(p: Port) -> Result:
    page = new_page(p)
    uploaded = _upload(p, page["id"], b"bye")
    att = uploaded.summary[0]["id"]
    r = p.call("delete-attachment", {"path": {"id": att.removeprefix("att")}})
    assert r.ok and r.status == 204
    return r


def _upload_attachment(p: Port) -> Result:
    page = new_page(p)
    r = _upload(p, page["id"], b"hello attachment\n")
    item = r.summary[0]
    assert item["title"] == "e2e.txt" and item["fileSize"] == 17
    listed = ok(p, "list-page-attachments", {"path": {"id": page["id"]}})
    assert [i["title"] for i in listed.summary] == ["e2e.txt"]
    return r


def _labels(p: Port) -> Result:
    r = ok(p, "list-labels", {"query": {"limit": 10}})
    assert r.count and all(i["name"] for i in r.summary)
    return r


def _add_labels(p: Port) -> Result:
    page = new_page(p)
    r = ok(p, "add-labels", {"path": {"id": page["id"]}, "body": {"labels": ["a-1", "b_2"]}})
    assert sorted(i["name"] for i in r.summary) == ["a-1", "b_2"]
    assert {i["prefix"] for i in r.summary} == {"global"}
    return r


def _remove_label(p: Port) -> Result:
    page = new_page(p)
    ok(p, "add-labels", {"path": {"id": page["id"]}, "body": {"labels": ["keep", "drop"]}})
    r = p.call("remove-label", {"path": {"id": page["id"], "label": "drop"}})
    assert r.ok and r.status == 204
    left = ok(p, "list-page-labels", {"path": {"id": page["id"]}})
    assert [i["name"] for i in left.summary] == ["keep"]
    return r


def _tasks(p: Port) -> Result:
    r = ok(p, "list-tasks", {"query": {"status": "incomplete", "limit": 5}})
    assert r.count and {i["status"] for i in r.summary} == {"incomplete"}
    return r


def _task(p: Port) -> Result:
    some = first(p, "list-tasks")
    r = ok(p, "get-task", {"path": {"id": some["id"]}})
    assert r.summary["id"] == some["id"]
    return r


def _update_task(p: Port) -> Result:
    some = first(p, "list-tasks", {"query": {"status": "incomplete"}})
    r = ok(p, "update-task", {"path": {"id": some["id"]}, "body": {"status": "complete"}})
    assert r.summary["status"] == "complete"
    assert ok(p, "get-task", {"path": {"id": some["id"]}}).summary["status"] == "complete"
    return r


def _custom_contents(p: Port) -> Result:
    r = ok(p, "list-custom-content", {"query": {"type": DECISION_TYPE, "limit": 5}})
    assert r.count and {i["type"] for i in r.summary} == {DECISION_TYPE}
    return r


def _custom_content(p: Port) -> Result:
    some = first(p, "list-custom-content", {"query": {"type": DECISION_TYPE}})
    r = ok(p, "get-custom-content", {"path": {"id": some["id"]},
                                     "query": {"body-format": "storage"}})  # fmt: skip
    assert r.summary["id"] == some["id"] and r.summary["type"] == DECISION_TYPE
    return r


def _current_user(p: Port) -> Result:
    r = ok(p, "get-current-user")
    assert r.summary["accountId"].startswith("557058:") and r.summary["displayName"]
    return r


def _search(p: Port) -> Result:
    r = ok(p, "search-content", {"query": {"text": "failover", "spaces": [ENG_KEY, "OPS"]}})
    assert r.count and all(i["id"] and i["title"] for i in r.summary)
    return r


# -- runner-built reads and creates of issue 17 (pipeline/transforms.py) ---------------------


def _space_tree(p: Port) -> Result:
    r = ok(p, "get-space-tree", {"path": {"id": ENG}, "query": {"depth": 2}})
    assert r.summary and {i["depth"] for i in r.summary} == {1, 2}
    assert all(i["parentId"] == HOME for i in r.summary if i["depth"] == 1)
    return r


def _download(p: Port) -> Result:
    csv = ok(p, "get-attachment", {"path": {"id": "att425991"}}).summary
    r = ok(p, "download-attachment",
           {"path": {"id": csv["pageId"], "attachmentId": "att425991"}})  # fmt: skip
    assert r.summary["mediaType"] == "text/csv" and r.summary["size"] == csv["fileSize"]
    assert r.summary["text"] and not r.summary["textTruncated"]
    return r


def _search_users(p: Port) -> Result:
    r = ok(p, "search-users", {"query": {"name": "Marcus"}})
    assert [u["displayName"] for u in r.summary] == ["Marcus Webb"]
    return r


def _page_from_template(p: Port) -> Result:
    body = {"spaceId": ENG, "title": "E2E from template", "templateId": "720897"}
    r = ok(p, "create-page-from-template", {"body": body})
    assert "<h2>Status</h2>" in body_of(p, r.summary["id"])
    return r


# -- issue 17: the content tree, moves and copies, inline comment writes, users, templates,
# watches and analytics.  Seeded ids (sim/data): a folder under the ENG home page with a
# folder inside it, a whiteboard under ARCH, a database under the page after ARCH.
FOLDER, SUB_FOLDER = "557057", "557058"
WHITEBOARD, DATABASE = "557059", "557060"
ADR_TEMPLATE = "720897"
PRIYA = "557058:2f4c6e1a-8b3d-4f5e-9a7c-1d2e3f4a5b6c"
MARCUS = "557058:7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
DANA = "5d8f3a2b1c0e9f7a6b5c4d3e"
UNWATCHED = "98313"  # watched by others, not by the caller


def body_of(port: Port, page_id: str) -> str:
    got = ok(port, "get-page", {"path": {"id": page_id}, "query": {"body-format": "storage"}})
    body: str = got.summary["body"]
    return body


def new_inline(port: Port, page_id: str) -> dict[str, Any]:
    """An inline comment on the only "one" of a page made by ``new_page``."""
    props = {"textSelection": "one", "textSelectionMatchCount": 1, "textSelectionMatchIndex": 0}
    made = ok(port, "create-inline-comment", {"body": {
        "pageId": page_id, "body": storage("<p>why one?</p>"), "inlineCommentProperties": props,
    }})  # fmt: skip
    summary: dict[str, Any] = made.summary
    return summary


def _descendants(p: Port) -> Result:
    r = ok(p, "list-page-descendants", {"path": {"id": HOME}, "query": {"depth": 2, "limit": 100}})
    depths = {i["depth"] for i in r.summary}
    assert depths == {1, 2}, depths
    assert all(i["parentId"] == HOME for i in r.summary if i["depth"] == 1)
    assert (FOLDER, "folder") in [(i["id"], i["type"]) for i in r.summary]
    return r


def _direct_children(p: Port) -> Result:
    r = ok(p, "list-page-direct-children", {"path": {"id": HOME}, "query": {"limit": 100}})
    kinds = {i["type"] for i in r.summary}
    assert {"page", "folder"} <= kinds and FOLDER in [i["id"] for i in r.summary]
    return r


def _folder(p: Port) -> Result:
    r = ok(p, "get-folder", {"path": {"id": FOLDER}})
    assert r.summary["title"] == "Team Handbook" and r.summary["spaceId"] == ENG
    assert r.summary["parentId"] == HOME and r.summary["parentType"] == "page"
    return r


def _new_folder(p: Port, title: str = "E2E folder") -> dict[str, Any]:
    made = ok(p, "create-folder", {"body": {"spaceId": ENG, "title": title, "parentId": HOME}})
    summary: dict[str, Any] = made.summary
    return summary


def _create_folder(p: Port) -> Result:
    made = _new_folder(p, "Created folder")
    r = ok(p, "get-folder", {"path": {"id": made["id"]}})
    assert r.summary["title"] == "Created folder" and r.summary["parentId"] == HOME
    return r


def _delete_folder(p: Port) -> Result:
    made = _new_folder(p)
    r = p.call("delete-folder", {"path": {"id": made["id"]}})
    assert r.ok and r.status == 204
    after = p.call("get-folder", {"path": {"id": made["id"]}})
    assert after.status == 404 or after.summary["status"] == "trashed"
    return r


def _folder_children(p: Port) -> Result:
    r = ok(p, "list-folder-direct-children", {"path": {"id": FOLDER}})
    assert (SUB_FOLDER, "folder") in [(i["id"], i["type"]) for i in r.summary]
    assert all(i["type"] in ("page", "folder", "whiteboard", "database") for i in r.summary)
    return r


def _folder_descendants(p: Port) -> Result:
    r = ok(p, "list-folder-descendants", {"path": {"id": FOLDER}, "query": {"depth": 3}})
    assert (SUB_FOLDER, 1, FOLDER) in [(i["id"], i["depth"], i["parentId"]) for i in r.summary]
    return r


def _whiteboard(p: Port) -> Result:
    r = ok(p, "get-whiteboard", {"path": {"id": WHITEBOARD}})
    assert r.summary["title"] == "Architecture sketches" and r.summary["parentId"] == ARCH
    return r


def _whiteboard_children(p: Port) -> Result:
    r = ok(p, "list-whiteboard-direct-children", {"path": {"id": WHITEBOARD}})
    assert r.count == len(r.summary) and all(i["id"] and i["type"] for i in r.summary)
    return r


def _database(p: Port) -> Result:
    r = ok(p, "get-database", {"path": {"id": DATABASE}})
    assert r.summary["title"] == "Service inventory" and r.summary["spaceId"] == ENG
    return r


def _database_children(p: Port) -> Result:
    r = ok(p, "list-database-direct-children", {"path": {"id": DATABASE}})
    assert r.count == len(r.summary) and all(i["id"] and i["type"] for i in r.summary)
    return r


def _move_page(p: Port) -> Result:
    page, parent = new_page(p, "E2E moved"), new_page(p, "E2E new parent")
    path = {"pageId": page["id"], "position": "append", "targetId": parent["id"]}
    r = ok(p, "move-page", {"path": path})
    assert r.summary["pageId"] == page["id"]
    assert ok(p, "get-page", {"path": {"id": page["id"]}}).summary["parentId"] == parent["id"]
    return r


def _copy_page(p: Port) -> Result:
    target = new_page(p, "E2E copy target")
    body = {"destination": {"type": "parent_page", "value": target["id"]},
            "pageTitle": "Copy of Architecture Overview"}  # fmt: skip
    r = ok(p, "copy-page", {"path": {"id": ARCH}, "body": body})
    assert r.summary["id"] != ARCH and r.summary["title"] == body["pageTitle"]
    assert body_of(p, r.summary["id"]) == body_of(p, ARCH)
    return r


def _copy_tree(p: Port) -> Result:
    top = new_page(p, "E2E tree top")
    made = ok(
        p,
        "create-page",
        {
            "body": {
                "spaceId": ENG,
                "title": "E2E tree leaf",
                "parentId": top["id"],
                "body": storage("<p>l</p>"),
            }
        },
    )
    assert made.summary["parentId"] == top["id"]
    body = {"destinationPageId": HOME, "titleOptions": {"prefix": "Copy - "}}
    r = ok(p, "copy-page-tree", {"path": {"id": top["id"]}, "body": body})
    assert r.status == 202 and r.summary["taskId"] in r.summary["status"]
    assert r.summary["finished"] and r.summary["successful"]  # the runner polled it to its end
    return r


def _copy_page_tree(p: Port) -> Result:
    r = _copy_tree(p)
    task = ok(p, "get-long-task", {"path": {"id": r.summary["taskId"]}})
    assert task.summary["id"] == r.summary["taskId"]
    return r


def _long_task(p: Port) -> Result:
    task = _copy_tree(p).summary["taskId"]
    r = ok(p, "get-long-task", {"path": {"id": task}})
    assert r.summary["id"] == task and 0 <= r.summary["percentageComplete"] <= 100
    assert isinstance(r.summary["finished"], bool)
    return r


def _restore_version(p: Port) -> Result:
    page = new_page(p)
    ok(p, "update-page", {"path": {"id": page["id"]}, "body": {"body": storage("<p>two</p>")}})
    restore = {"operationKey": "restore", "params": {"versionNumber": 1, "message": "back"}}
    r = ok(p, "restore-page-version", {"path": {"id": page["id"]}, "body": restore})
    assert r.summary["number"] == 3
    assert body_of(p, page["id"]) == "<p>one</p>"
    return r


def _page_by_title(p: Port) -> Result:
    query = {"spaceKey": ENG_KEY, "title": "Architecture Overview", "expand": ["version", "space"]}
    r = ok(p, "get-page-by-title", {"query": query})
    assert [(i["id"], i["spaceKey"]) for i in r.summary] == [(ARCH, ENG_KEY)]
    return r


def _upload_version(p: Port) -> Result:
    page = new_page(p)
    first_upload = _upload(p, page["id"], b"v1\n").summary[0]
    content = b"version two\n"
    r = ok(p, "upload-attachment-version", {
        "path": {"id": page["id"], "attachmentId": first_upload["id"]},
        "body": {"file": {"filename": "e2e.txt", "mediaType": "text/plain",
                          "contentBase64": base64.b64encode(content).decode()}},
    })  # fmt: skip
    assert r.summary["id"] == first_upload["id"] and r.summary["version"] == 2
    assert r.summary["fileSize"] == len(content)
    return r


def _create_inline(p: Port) -> Result:
    page = new_page(p, "E2E inline")
    made = new_inline(p, page["id"])
    r = ok(p, "get-inline-comment", {"path": {"comment_id": made["id"]}})
    assert r.summary["pageId"] == page["id"] and r.summary["selection"] == "one"
    assert r.summary["resolutionStatus"] == "open"
    return r


def _reply_inline(p: Port) -> Result:
    top = new_inline(p, new_page(p, "E2E inline reply")["id"])
    r = ok(
        p,
        "reply-inline-comment",
        {"body": {"parentCommentId": top["id"], "body": storage("<p>because</p>")}},
    )
    assert r.summary["parentCommentId"] == top["id"]
    return r


def _resolve_inline(p: Port) -> Result:
    top = new_inline(p, new_page(p, "E2E inline resolve")["id"])
    r = ok(p, "resolve-inline-comment", {"path": {"comment_id": top["id"]}})
    assert r.summary["resolutionStatus"] == "resolved" and r.summary["version"] == 2
    return r


def _reopen_inline(p: Port) -> Result:
    top = new_inline(p, new_page(p, "E2E inline reopen")["id"])
    ok(p, "resolve-inline-comment", {"path": {"comment_id": top["id"]}})
    r = ok(p, "reopen-inline-comment", {"path": {"comment_id": top["id"]}})
    assert r.summary["resolutionStatus"] == "reopened" and r.summary["version"] == 3
    return r


def _blogpost_footer_comment(p: Port) -> Result:
    post = new_blogpost(p)
    r = ok(
        p,
        "create-blogpost-footer-comment",
        {"body": {"blogPostId": post["id"], "body": storage("<p>nice post</p>")}},
    )
    assert r.summary["blogPostId"] == post["id"]
    listed = ok(p, "list-blogpost-footer-comments", {"path": {"id": post["id"]}})
    assert [i["id"] for i in listed.summary] == [r.summary["id"]]
    return r


def _user(p: Port) -> Result:
    r = ok(p, "get-user", {"query": {"accountId": PRIYA}})
    assert r.summary["accountId"] == PRIYA and r.summary["displayName"] == "Priya Raman"
    return r


def _users(p: Port) -> Result:
    r = ok(p, "get-users", {"query": {"accountId": ",".join([PRIYA, MARCUS, DANA])}})
    assert sorted(i["accountId"] for i in r.summary) == sorted([PRIYA, MARCUS, DANA])
    return r


def _templates(p: Port) -> Result:
    r = ok(p, "list-templates", {"query": {"spaceKey": ENG_KEY, "limit": 50}})
    assert ADR_TEMPLATE in [i["templateId"] for i in r.summary]
    return r


def _template(p: Port) -> Result:
    r = ok(p, "get-template", {"path": {"contentTemplateId": ADR_TEMPLATE}})
    assert r.summary["name"] == "Architecture decision record"
    assert r.summary["body"].startswith("<h2>Status</h2>")
    return r


def _page_watch(p: Port) -> Result:
    assert ok(p, "get-page-watch", {"path": {"contentId": UNWATCHED}}).summary == {
        "watching": False
    }
    r = ok(p, "get-page-watch", {"path": {"contentId": ARCH}})
    assert r.summary == {"watching": True}
    return r


def _watch(p: Port) -> Result:
    page = new_page(p, "E2E watched")
    r = p.call("watch-page", {"path": {"contentId": page["id"]}})
    assert r.ok and r.status == 204
    assert ok(p, "get-page-watch", {"path": {"contentId": page["id"]}}).summary["watching"]
    return r


def _unwatch(p: Port) -> Result:
    r = p.call("unwatch-page", {"path": {"contentId": ARCH}})
    assert r.ok and r.status == 204
    watch = ok(p, "get-page-watch", {"path": {"contentId": ARCH}})
    assert watch.summary["watching"] is False
    return r


def _views(p: Port) -> Result:
    r = ok(p, "get-page-views", {"path": {"contentId": ARCH}})
    since = ok(
        p,
        "get-page-views",
        {"path": {"contentId": ARCH}, "query": {"fromDate": "2024-05-01T00:00:00.000Z"}},
    )
    assert r.summary["count"] >= 6 and 0 < since.summary["count"] < r.summary["count"]
    return r


def _viewers(p: Port) -> Result:
    r = ok(p, "get-page-viewers", {"path": {"contentId": ARCH}})
    views = ok(p, "get-page-views", {"path": {"contentId": ARCH}})
    assert 4 <= r.summary["count"] < views.summary["count"]
    return r


SCENARIOS: dict[str, Scenario] = {
    "search-pages": _search_pages,
    "get-page": _get_page,
    "create-page": _create_page,
    "update-page": _update_page,
    "edit-page": _edit_page,
    "delete-page": _delete_page,
    "list-page-children": _children,
    "get-page-ancestors": _ancestors,
    "list-page-versions": _versions,
    "get-page-version": _version,
    "get-page-diff": _diff,
    "list-page-labels": _page_labels,
    "list-page-attachments": _page_attachments,
    "list-page-footer-comments": _page_footer_comments,
    "list-page-inline-comments": _page_inline_comments,
    "list-page-properties": _list_page_properties,
    "get-page-property": _get_page_property,
    "create-page-property": _create_page_property,
    "update-page-property": _update_page_property,
    "delete-page-property": _delete_page_property,
    "list-spaces": _spaces,
    "get-space": _space,
    "list-space-pages": _space_pages,
    "list-space-blogposts": _space_blogposts,
    "list-space-labels": _space_labels,
    "list-space-properties": _list_space_properties,
    "get-space-property": _get_space_property,
    "create-space-property": _create_space_property,
    "update-space-property": _update_space_property,
    "delete-space-property": _delete_space_property,
    "list-blogposts": _blogposts,
    "get-blogpost": _blogpost,
    "create-blogpost": _create_blogpost,
    "update-blogpost": _update_blogpost,
    "delete-blogpost": _delete_blogpost,
    "list-blogpost-labels": _blogpost_labels,
    "list-blogpost-versions": _blogpost_versions,
    "list-blogpost-footer-comments": _blogpost_comments,
    "list-footer-comments": _footer_comments,
    "get-footer-comment": _footer_comment,
    "create-footer-comment": _create_comment,
    "update-footer-comment": _update_comment,
    "delete-footer-comment": _delete_comment,
    "list-comment-replies": _replies,
    "list-inline-comments": _inline_comments,
    "get-inline-comment": _inline_comment,
    "list-attachments": _attachments,
    "get-attachment": _attachment,
    "delete-attachment": _delete_attachment,
    "upload-attachment": _upload_attachment,
    "list-labels": _labels,
    "add-labels": _add_labels,
    "remove-label": _remove_label,
    "list-tasks": _tasks,
    "get-task": _task,
    "update-task": _update_task,
    "list-custom-content": _custom_contents,
    "get-custom-content": _custom_content,
    "get-current-user": _current_user,
    "search-content": _search,
    "get-space-tree": _space_tree,
    "download-attachment": _download,
    "search-users": _search_users,
    "create-page-from-template": _page_from_template,
    "list-page-descendants": _descendants,
    "list-page-direct-children": _direct_children,
    "get-folder": _folder,
    "create-folder": _create_folder,
    "delete-folder": _delete_folder,
    "list-folder-direct-children": _folder_children,
    "list-folder-descendants": _folder_descendants,
    "get-whiteboard": _whiteboard,
    "list-whiteboard-direct-children": _whiteboard_children,
    "get-database": _database,
    "list-database-direct-children": _database_children,
    "move-page": _move_page,
    "copy-page": _copy_page,
    "copy-page-tree": _copy_page_tree,
    "get-long-task": _long_task,
    "restore-page-version": _restore_version,
    "get-page-by-title": _page_by_title,
    "upload-attachment-version": _upload_version,
    "create-inline-comment": _create_inline,
    "reply-inline-comment": _reply_inline,
    "resolve-inline-comment": _resolve_inline,
    "reopen-inline-comment": _reopen_inline,
    "create-blogpost-footer-comment": _blogpost_footer_comment,
    "get-user": _user,
    "get-users": _users,
    "list-templates": _templates,
    "get-template": _template,
    "get-page-watch": _page_watch,
    "watch-page": _watch,
    "unwatch-page": _unwatch,
    "get-page-views": _views,
    "get-page-viewers": _viewers,
}


def test_every_action_has_a_scenario() -> None:
    assert sorted(SCENARIOS) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_action_end_to_end(name: str, auto: Port, sim: Simulator) -> None:
    scenario = SCENARIOS[name]
    sim.clear()
    result = scenario(auto)
    assert result.ok
    action = auto.action(name)
    route = action.route.split("{", 1)[0]
    sent = [e for e in sim.exchanges if e.method == action.method and e.path.startswith(route)]
    assert sent, f"{name}: no {action.method} {route}... reached the simulator"


# -- uploads -------------------------------------------------------------------------------


def test_upload_is_multipart_with_the_token_header(auto: Port, sim: Simulator) -> None:
    page = new_page(auto)
    sim.clear()
    content = b"\x00\x01binary\r\n--not-a-boundary\r\n"
    _upload(auto, page["id"], content, "data.bin")
    (exchange,) = sim.exchanges
    headers = dict(exchange.request_headers)
    assert headers["X-Atlassian-Token"] == "no-check"
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=harbor-")
    assert content in exchange.request_body
    got = ok(auto, "list-page-attachments", {"path": {"id": page["id"]}})
    assert got.summary[0]["fileSize"] == len(content)


def test_held_upload_is_stable_and_carries_the_digest(port: Port, sim: Simulator) -> None:
    content = b"report body\n" * 100
    data = {"path": {"id": ARCH},
            "body": {"file": {"filename": "r.txt", "mediaType": "text/plain",
                              "contentBase64": base64.b64encode(content).decode()}}}  # fmt: skip
    one, decision = port.prepare("upload-attachment", data)
    two, _ = port.prepare("upload-attachment", data)
    assert one.body == two.body and one.fingerprint == two.fingerprint  # deterministic boundary
    assert decision.outcome == "require_approval" and decision.rule == "creates-review"
    held = port.call("upload-attachment", data)
    assert held.outcome == "held" and sim.request_count == 0
    ticket = port.ticket(held.ticket or "")
    assert ticket is not None
    assert ticket.review["file"] == {
        "filename": "r.txt", "mediaType": "text/plain", "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }  # fmt: skip
    assert ticket.headers == {"X-Atlassian-Token": "no-check"}
    other = {**data, "body": {"file": {**data["body"]["file"], "filename": "s.txt"}}}
    assert port.prepare("upload-attachment", other)[0].fingerprint != one.fingerprint


def test_oversized_upload_is_denied_and_nothing_is_sent(port: Port, sim: Simulator) -> None:
    big = base64.b64encode(b"x" * (5 * 1024 * 1024 + 1)).decode()
    with pytest.raises(PolicyDenied) as info:
        port.call("upload-attachment", {"path": {"id": ARCH},
                                        "body": {"file": {"filename": "big.bin",
                                                          "contentBase64": big}}})  # fmt: skip
    assert info.value.rule == "upload-size-cap"
    assert sim.request_count == 0


@pytest.mark.parametrize(
    ("file", "field", "rule"),
    [
        ({"filename": 'a"b.txt', "contentBase64": "aGk="}, "body.file.filename", "pattern"),
        ({"filename": "../x", "contentBase64": "aGk="}, "body.file.filename", "pattern"),
        ({"filename": "a\r\nb", "contentBase64": "aGk="}, "body.file.filename", "pattern"),
        ({"filename": "a", "contentBase64": "not base64!"}, "body.file.contentBase64", "pattern"),
        ({"filename": "a", "contentBase64": "aGk", "mediaType": "text/plain"}, "body.file",
         "contentEncoding"),
        ({"filename": "a", "contentBase64": "aGk=", "mediaType": "text"}, "body.file.mediaType",
         "pattern"),
        ({"contentBase64": "aGk="}, "body.file.filename", "required"),
    ],
)  # fmt: skip
def test_bad_upload_input(
    auto: Port, sim: Simulator, file: dict[str, str], field: str, rule: str
) -> None:
    from harbor_confluence.errors import InputError

    with pytest.raises(InputError) as info:
        auto.call("upload-attachment", {"path": {"id": ARCH}, "body": {"file": file}})
    assert (field, rule) in [(v.field, v.rule) for v in info.value.violations]
    assert sim.request_count == 0


# -- the lost update -----------------------------------------------------------------------


def test_lost_update_first_approved_wins_second_conflicts(
    auto: Port, sim: Simulator, home: Path
) -> None:
    """Two agents read version 3 and both propose an edit; nothing is overwritten."""
    page = new_page(auto, "Contended page")
    for text in ("<p>two</p>", "<p>three</p>"):
        ok(auto, "update-page", {"path": {"id": page["id"]}, "body": {"body": storage(text)}})

    def agent(name: str) -> Port:
        return Port.load(home=home, base_url=sim.url, requester=name,
                         credential=Credential.basic(EMAIL, API_TOKEN, name))  # fmt: skip

    with agent("agent-a") as a, agent("agent-b") as b:
        seen_a = ok(
            a, "get-page", {"path": {"id": page["id"]}, "query": {"body-format": "storage"}}
        )
        seen_b = ok(
            b, "get-page", {"path": {"id": page["id"]}, "query": {"body-format": "storage"}}
        )
        assert seen_a.summary["version"] == seen_b.summary["version"] == 3

        held = {}
        for who, port_, text in ((a, "a", "<p>A's edit</p>"), (b, "b", "<p>B's edit</p>")):
            result = who.call(
                "update-page",
                {"path": {"id": page["id"]},
                 "body": {"body": storage(text), "expected_version": 3}},
            )  # fmt: skip
            assert result.outcome == "held", result.to_dict()
            held[port_] = result.ticket or ""
        for ticket_id in held.values():
            ticket = a.ticket(ticket_id)
            assert ticket is not None
            assert ticket.review["base_version"] == 3 and ticket.review["stale"] is False
            assert json.loads(ticket.body or b"")["version"] == {"number": 4}
            assert "+<p>" in ticket.review["diff"]

        first_run = a.approve(held["a"], operator="operator-1")
        assert first_run.state == "succeeded", first_run.result
        second_run = a.approve(held["b"], operator="operator-1")
        assert second_run.state == "failed"
        error = (second_run.result or {})["error"]
        assert error["type"] == "conflict"
        assert error["current_version"] == 4 and error["based_on_version"] == 3
        assert error["changed_by"] and error["changed_at"]
        assert "expected_version=4" in error["message"]

        final = ok(a, "get-page", {"path": {"id": page["id"]}, "query": {"body-format": "storage"}})
        assert final.summary["version"] == 4
        assert final.summary["body"] == "<p>A's edit</p>"  # B's approval did not overwrite A's
