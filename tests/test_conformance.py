"""The whole catalog against Atlassian's OpenAPI documents, plus its size and policy budget.

Per action (``speccheck.check_action``, shared with catalog import and drafts): the method
and route exist in the v2 (or v1) document; every path and query parameter exists there
with the same name (``{page_id}`` is ``{page-id}``), no wider in type, enum and bounds
(a digit-pattern string stands in for an int64 id); the OAuth scopes equal the spec's
``x-atlassian-oauth2-scopes`` (v1: the ``oAuthDefinitions`` security entry); the body
schema's properties exist in the spec's request body.

Where the runner builds part of the request (``transform``, ``update``, multipart), the
input is not what is sent, so the *built* request is checked against the document
instead, with the same openapi-core validator the simulator exchanges go through.
Runs in CI (``HARBOR_REQUIRE_CONTRACT=1``) and skips, saying why, without the documents.
"""

from __future__ import annotations

import base64
import fnmatch
from dataclasses import dataclass
from typing import Any

import pytest

from harbor_confluence.catalog.speccheck import check_action
from harbor_confluence.pipeline.executor import Port, default_manifest_path, default_policy_path
from harbor_confluence.pipeline.manifest import Action, Manifest, load_manifest
from harbor_confluence.pipeline.policy import load_policy, policy_from_data
from harbor_confluence.pipeline.request import RequestBuilder, Target
from harbor_confluence.pipeline.transforms import ReadOutcome, transform_for
from harbor_confluence.pipeline.validation import InputValidator
from tests.contract import ContractChecker, require_spec

pytestmark = pytest.mark.contract

MANIFEST = load_manifest(default_manifest_path())
NAMES = [a.name for a in MANIFEST.actions]
TARGET = Target.parse("https://acme.atlassian.net/")
MCP_BUDGET_BYTES = 30_000
COMPACT_BUDGET_BYTES = 3_000
MAX_DESCRIPTION = 90


@pytest.fixture(scope="module")
def specs() -> tuple[dict[str, Any], dict[str, Any]]:
    return require_spec("v2"), require_spec("v1")


@pytest.fixture(scope="module")
def checker(specs: tuple[dict[str, Any], dict[str, Any]]) -> ContractChecker:
    return ContractChecker(specs[0], v1_spec=specs[1])


@pytest.mark.parametrize("name", NAMES)
def test_action_conforms_to_the_spec(
    name: str, specs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    action = MANIFEST.action(name)
    assert action.scopes, f"{name}: declare the spec's OAuth scopes"
    assert check_action(action, *specs) == []


def test_conformance_check_catches_a_wider_schema(
    specs: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """The check above can fail: widen one bound, rename one parameter, drop one scope."""
    raw = MANIFEST.action("search-pages").model_dump(by_alias=True, exclude_none=True)
    raw["parameters"]["query"]["properties"]["limit"]["maximum"] = 1000
    raw["parameters"]["query"]["properties"]["spaceId"] = {"type": "string", "pattern": "^1$"}
    raw["scopes"] = ["read:confluence-content.all"]
    problems = check_action(Action.model_validate(raw), *specs)
    assert any("query.limit: maximum must be at most the spec's 250" in p for p in problems)
    assert any(p.startswith("query.spaceId: not a query parameter") for p in problems)
    assert any(
        p.startswith("scopes ['read:confluence-content.all'] do not match") for p in problems
    )


# -- runner-built requests, checked as sent --------------------------------------------------

# What a read would return while preparing (the runner's pre-read), for composing offline.
READ = ReadOutcome(
    {
        "id": "98306",
        "title": "Architecture Overview",
        "spaceId": "65538",
        "key": "review-state",
        "value": {"state": "draft"},
        "version": {"number": 3, "authorId": "557058:x", "createdAt": "2024-01-01T00:00:00Z"},
        "body": {"storage": {"value": "<p>old</p>", "representation": "storage"}},
    }
)
# What the other reads of runner-built actions answer (list-spaces by key, get-template,
# get-space, get-attachment), where READ does not fit.
READS: dict[str, ReadOutcome] = {
    "create-page": ReadOutcome({"results": [{"id": "65538", "key": "ENG"}]}),
    "create-page-from-template": ReadOutcome(
        {"templateId": "720897", "name": "ADR", "body": {"storage": {"value": "<p>t</p>"}}}
    ),
    "get-space-tree": ReadOutcome({"id": "65538", "homepageId": "98305"}),
    "download-attachment": ReadOutcome(
        {"id": "att425991", "title": "rota.csv", "mediaType": "text/csv", "fileSize": 120}
    ),
}
STORAGE = {"representation": "storage", "value": "<p>new</p>"}
MARKDOWN = {"representation": "markdown", "value": "# New\n\nSome **bold** text.\n"}
FILE = {"filename": "notes.txt", "mediaType": "text/plain",
        "contentBase64": base64.b64encode(b"hello\n").decode()}  # fmt: skip

BUILT_SAMPLES: list[tuple[str, dict[str, Any]]] = [
    (
        "search-content",
        {
            "query": {
                "text": 'a "b" \\ c',
                "type": "blogpost",
                "spaces": ["ENG", "~5570"],
                "labels": ["x"],
                "contributor": "557058:abc",
                "ancestor": "98305",
                "created_from": "2024-01-01",
                "created_to": "2024-12-31",
                "modified_from": "2024-01-01",
                "modified_to": "2024-12-31",
                "limit": 10,
                "cursor": "abc",
            }
        },
    ),
    ("search-content", {"query": {"title": "Runbook"}}),
    ("get-page-diff", {"path": {"id": "98306"}, "query": {"from": 1, "to": 3}}),
    ("get-page-diff", {"path": {"id": "98306"}, "query": {"from": 1}}),
    ("add-labels", {"path": {"id": "98306"}, "body": {"labels": ["alpha", "beta_2"]}}),
    ("update-page", {"path": {"id": "98306"}, "body": {"body": STORAGE}}),
    (
        "update-page",
        {
            "path": {"id": "98306"},
            "body": {
                "title": "New",
                "body": STORAGE,
                "expected_version": 7,
                "version_message": "why",
            },
        },
    ),
    (
        "update-page",
        {"path": {"id": "98306"}, "body": {"body": MARKDOWN, "expected_version": 3}},
    ),
    ("edit-page", {"path": {"id": "98306"}, "body": {"op": "append", "content": "More *text*."}}),
    (
        "edit-page",
        {
            "path": {"id": "98306"},
            "body": {"op": "replace-text", "find": "old", "content": "new", "title": "T2"},
        },
    ),
    ("edit-page", {"path": {"id": "98306"}, "body": {"op": "set-title", "title": "Renamed"}}),
    ("get-page", {"path": {"id": "98306"}, "query": {"body-format": "markdown"}}),
    (
        "get-page",
        {"path": {"id": "98306"}, "query": {"body-offset": 10, "body-limit": 100, "version": 2}},
    ),
    ("get-blogpost", {"path": {"id": "229378"}, "query": {"body-format": "markdown"}}),
    ("create-page", {"body": {"spaceId": "65538", "title": "M", "body": MARKDOWN}}),
    ("create-blogpost", {"body": {"spaceId": "65538", "title": "M", "body": MARKDOWN}}),
    ("create-footer-comment", {"body": {"pageId": "98306", "body": MARKDOWN}}),
    ("update-blogpost", {"path": {"id": "229378"}, "body": {"body": STORAGE}}),
    ("update-blogpost", {"path": {"id": "229378"}, "body": {"body": MARKDOWN}}),
    (
        "update-footer-comment",
        {"path": {"comment_id": "1"}, "body": {"body": STORAGE, "expected_version": 2}},
    ),
    ("update-footer-comment", {"path": {"comment_id": "1"}, "body": {"body": MARKDOWN}}),
    (
        "update-page-property",
        {"path": {"page_id": "98306", "property_id": "5"}, "body": {"value": {"state": "final"}}},
    ),
    (
        "update-space-property",
        {
            "path": {"space_id": "65538", "property_id": "5"},
            "body": {"value": [1, "two"], "key": "review-state"},
        },
    ),
    ("upload-attachment", {"path": {"id": "98306"}, "body": {"file": FILE}}),
    ("create-page", {"body": {"spaceKey": "ENG", "title": "By key", "body": STORAGE}}),
    (
        "create-page-from-template",
        {"body": {"spaceId": "65538", "title": "From a template", "templateId": "720897"}},
    ),
    ("get-space-tree", {"path": {"id": "65538"}, "query": {"depth": 2, "limit": 50}}),
    ("download-attachment", {"path": {"id": "98306", "attachmentId": "att425991"}}),
    ("search-users", {"query": {"name": 'Ann "the" Lee', "limit": 10}}),
    (
        "copy-page-tree",
        {
            "path": {"id": "98306"},
            "body": {"destinationPageId": "98305", "titleOptions": {"prefix": "Copy of "}},
        },
    ),
    (
        "upload-attachment-version",
        {"path": {"id": "98306", "attachmentId": "att65539"}, "body": {"file": FILE}},
    ),
    (
        "create-inline-comment",
        {
            "body": {
                "pageId": "98306",
                "body": MARKDOWN,
                "inlineCommentProperties": {
                    "textSelection": "failover",
                    "textSelectionMatchCount": 2,
                    "textSelectionMatchIndex": 1,
                },
            }
        },
    ),
    ("reply-inline-comment", {"body": {"parentCommentId": "1", "body": STORAGE}}),
    ("resolve-inline-comment", {"path": {"comment_id": "1"}}),
    ("resolve-inline-comment", {"path": {"comment_id": "1"}, "body": {"expected_version": 2}}),
    ("reopen-inline-comment", {"path": {"comment_id": "1"}, "body": {"resolved": False}}),
    ("create-blogpost-footer-comment", {"body": {"blogPostId": "229378", "body": MARKDOWN}}),
    (
        "upload-attachment",
        {"path": {"id": "98306"}, "body": {"file": FILE, "comment": "v2", "minorEdit": True}},
    ),
]


@dataclass(frozen=True)
class _Sent:
    """A built request in the shape the contract checker reads (the response is not at issue:
    an empty 400, which the documents declare without a body schema)."""

    method: str
    path: str
    query: str
    request_headers: tuple[tuple[str, str], ...]
    request_body: bytes
    status: int = 400
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: bytes = b""


def built(name: str, data: dict[str, Any]) -> _Sent:
    action = MANIFEST.action(name)
    clean = InputValidator(action).validate(data)
    composed = transform_for(action).compose(action, clean, READS.get(name, READ))
    prepared = RequestBuilder(action).build(TARGET, composed.request)
    path, _, query = prepared.url[len(TARGET.origin) :].partition("?")
    headers = [("Authorization", "Basic " + base64.b64encode(b"user@example.com:x").decode())]
    headers += list(prepared.headers.items())
    if prepared.content_type:
        headers.append(("Content-Type", prepared.content_type))
    return _Sent(prepared.method, path, query, tuple(headers), prepared.body or b"")


def test_every_runner_built_action_has_a_sample() -> None:
    runner_built = {
        a.name
        for a in MANIFEST.actions
        if a.transform
        or a.update
        or a.body_view
        or a.markdown_body
        or a.request_body_mode == "multipart"
    }
    assert runner_built == {name for name, _ in BUILT_SAMPLES}


@pytest.mark.parametrize(("name", "data"), BUILT_SAMPLES, ids=[n for n, _ in BUILT_SAMPLES])
def test_built_request_conforms(name: str, data: dict[str, Any], checker: ContractChecker) -> None:
    sent = built(name, data)
    result = checker.check_exchange(sent)  # raises, naming the violation, if it does not conform
    assert f"({MANIFEST.action(name).method} " in result.operation
    # Only the document's own defect may be tolerated: overlapping open-object oneOf bodies.
    assert all("is valid under each of" in error for error in result.request_errors)


def test_built_request_check_can_fail(checker: ContractChecker) -> None:
    """A built body missing what the spec requires is caught (update-page without a title)."""
    sent = built("update-page", {"path": {"id": "98306"}, "body": {"body": STORAGE}})
    broken = _Sent(sent.method, sent.path, sent.query, sent.request_headers,
                   sent.request_body.replace(b'"title"', b'"titel"'))  # fmt: skip
    with pytest.raises(AssertionError, match="does not conform"):
        checker.check_exchange(broken)


# -- the budget: lean enough to list every action as an MCP tool ---------------------------


def test_descriptions_are_one_short_line() -> None:
    for action in MANIFEST.actions:
        assert len(action.description) <= MAX_DESCRIPTION, action.name
        assert "\n" not in action.description, action.name


def mcp_listing(port: Port, *argv: str) -> list[dict[str, Any]]:
    """The tools ``harbor-confluence mcp [argv]`` serves for this port (per-action shape)."""
    from harbor_confluence.cli import build_parser
    from harbor_confluence.cli.mcp import scoped_toolkit

    args = build_parser().parse_args(["mcp", *argv])
    return scoped_toolkit(args, port).definitions("mcp")


@pytest.mark.parametrize("policy", ["default", "everything"])
def test_all_tools_fit_the_mcp_budget(home: object, policy: str) -> None:
    """Issue 17's rule: the listing ``mcp`` serves by default fits 30,000 B, the compact
    pair offers the whole catalog in 3,000 B, and ``--all-actions`` offers every action."""
    from harbor_confluence.adapters.tools import encoded_size, tool_sizes

    chosen = (
        load_policy(default_policy_path())
        if policy == "default"
        else policy_from_data({"rules": [{"name": "all", "decision": "auto"}]}, "all")
    )
    with Port.load(policy=chosen, home=str(home)) as port:
        default = mcp_listing(port)
        full = mcp_listing(port, "--all-actions")
        sizes = tool_sizes(port, "mcp")
    assert encoded_size(default) <= MCP_BUDGET_BYTES
    offered = {d["name"] for d in default}
    assert {"get-page", "search-pages", "search-content", "create-page"} <= offered
    assert {d["name"] for d in full} >= set(NAMES)  # the whole catalog, one flag away
    assert sizes["actions_offered"] == len(MANIFEST.actions)
    assert sizes["compact"]["bytes"] <= COMPACT_BUDGET_BYTES


# -- the default policy names every action -------------------------------------------------


def test_default_policy_names_every_action_explicitly() -> None:
    policy = load_policy(default_policy_path())
    named = {name for rule in policy.rules for name in rule.actions}
    unnamed = [a.name for a in MANIFEST.actions if a.name not in named]
    assert unnamed == []
    globs = [p for p in named if any(c in p for c in "*?[")]
    assert globs == []  # names, not patterns: a new action is denied until someone decides


def test_default_policy_rules_name_only_catalog_actions() -> None:
    policy = load_policy(default_policy_path())
    for rule in policy.rules:
        for pattern in rule.actions:
            assert any(fnmatch.fnmatchcase(n, pattern) for n in NAMES), (rule.name, pattern)


def _decide(manifest: Manifest, name: str, data: dict[str, Any]) -> tuple[str, str]:
    policy = load_policy(default_policy_path())
    decision = policy.decide(manifest.action(name), data)
    return decision.outcome, decision.rule


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("get-page", {"path": {"id": "1"}}, ("auto", "reads-auto")),
        ("search-content", {"query": {"cql": "x"}}, ("auto", "reads-auto")),
        ("list-tasks", {"query": {"limit": 101}}, ("deny", "search-limit-cap")),
        ("create-blogpost", {"body": {}}, ("require_approval", "creates-review")),
        ("update-page", {"body": {}}, ("require_approval", "updates-review")),
        ("delete-page", {"query": {"purge": True}}, ("deny", "purge-denied")),
        ("delete-blogpost", {"query": {"purge": True}}, ("deny", "purge-denied")),
        ("delete-page", {"query": {"purge": False}}, ("require_approval", "deletes-review")),
        ("remove-label", {"path": {}}, ("require_approval", "deletes-review")),
        ("get-page-by-title", {"query": {}}, ("auto", "reads-auto")),
        ("list-page-descendants", {"query": {"limit": 101}}, ("deny", "search-limit-cap")),
        ("list-folder-direct-children", {"query": {"limit": 100}}, ("auto", "reads-auto")),
        ("move-page", {"path": {}}, ("require_approval", "tree-changes-review")),
        ("copy-page-tree", {"body": {}}, ("require_approval", "tree-changes-review")),
        ("resolve-inline-comment", {"body": {}}, ("require_approval", "updates-review")),
        ("create-inline-comment", {"body": {}}, ("require_approval", "creates-review")),
        ("create-folder", {"body": {}}, ("require_approval", "creates-review")),
        ("delete-folder", {"path": {}}, ("require_approval", "deletes-review")),
    ],
)
def test_default_policy_decisions(
    name: str, data: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert _decide(MANIFEST, name, data) == expected


def test_deletes_need_two_other_operators() -> None:
    policy = load_policy(default_policy_path())
    for action in MANIFEST.actions:
        if action.destructive:
            decision, _ = policy.static_decision(action)
            assert decision.outcome == "require_approval", action.name
            assert decision.approvers == 2 and decision.forbid_self_approval, action.name


@pytest.mark.parametrize("name", ["upload-attachment", "upload-attachment-version"])
def test_upload_size_cap(name: str) -> None:
    policy = load_policy(default_policy_path())
    upload = MANIFEST.action(name)
    small = policy.decide(upload, {"body": {}}, b"x" * 5_242_880)
    big = policy.decide(upload, {"body": {}}, b"x" * 5_242_881)
    assert (small.outcome, small.rule) == ("require_approval", "creates-review")
    assert (big.outcome, big.rule) == ("deny", "upload-size-cap")
