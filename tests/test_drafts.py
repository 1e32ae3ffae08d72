"""Drafts: propose, validate, test, request publication, publish by another operator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harbor_confluence.catalog.dock import bump_minor
from harbor_confluence.pipeline.executor import default_manifest_path
from harbor_confluence.pipeline.manifest import load_manifest
from harbor_confluence.review.audit import AuditLog
from harbor_confluence.sim import Simulator
from tests.conftest import CliResult
from tests.contract import require_spec

Cli = Callable[..., CliResult]
ID = {"type": "string", "pattern": "^[0-9]{1,19}$"}
SPACE = "65538"  # the simulator's ENG space


@pytest.fixture(autouse=True)
def _openapi() -> None:
    """validate/publish read Atlassian's documents: skip (or fail in CI) without them."""
    require_spec("v2")


def draft(**overrides: Any) -> dict[str, Any]:
    """A read the simulator serves (GET /wiki/api/v2/spaces/{id}) under a new name."""
    data: dict[str, Any] = {
        "name": "lookup-space",
        "description": "Get one space by id, optionally with its description.",
        "method": "GET",
        "route": "/wiki/api/v2/spaces/{id}",
        "toolset": "spaces",
        "scopes": ["read:space:confluence"],
        "defaultPolicy": "auto",
        "parameters": {
            "path": {"type": "object", "required": ["id"], "properties": {"id": ID}},
            "query": {
                "type": "object",
                "properties": {"description-format": {"type": "string", "enum": ["plain"]}},
            },
        },
        "summary": {"fields": {"id": "id", "key": "key", "name": "name"}},
    }
    data.update(overrides)
    return data


def write(tmp_path: Path, data: dict[str, Any], name: str = "draft.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def events(home: Path, event: str) -> list[dict[str, Any]]:
    return [r for r in AuditLog.for_home(home).records() if r["event"] == event]


def test_draft_lifecycle(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, home: Path, tmp_path: Path
) -> None:
    # propose: one good draft, one whose id can carry a path
    good = cli("drafts", "propose", write(tmp_path, draft()), "--as", "agent-7")
    assert good.code == 0, good.err
    risky = draft(
        name="peek-page",
        route="/wiki/api/v2/pages/{id}",
        scopes=["read:page:confluence"],
        parameters={
            "path": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string", "pattern": "^.+$"}},
            }
        },
    )
    risky_file = write(tmp_path, risky, "risky.yaml")
    assert cli("drafts", "propose", risky_file, "--as", "agent-7").code == 0
    listed = {d["name"]: d for d in cli("drafts", "list", "--json").json()}
    assert set(listed) == {"lookup-space", "peek-page"}
    assert listed["lookup-space"]["proposer"] == "agent-7"
    assert listed["lookup-space"]["status"] == "proposed"

    # drafts are listed apart and are never callable
    live = {row["name"] for row in cli("actions", "--json").json()}
    assert not live & {"lookup-space", "peek-page"}
    not_callable = cli("run", "lookup-space", "--input", json.dumps({"path": {"id": SPACE}}))
    assert not_callable.code == 2 and "unknown action 'lookup-space'" in not_callable.err
    assert sim.request_count == 0

    # validate: the path-capable one fails, naming the variable and why; the other passes
    failed = cli("drafts", "validate", "peek-page", "--json")
    assert failed.code == 2
    problems = failed.json()["error"]["problems"]
    assert problems == [
        "path parameter 'id' can take a path: pattern '^.+$' cannot be shown to exclude '/': "
        "'.' matches any character, including '/'",
        "path.id: type string but the spec says integer",  # and it is wider than an int64 id
    ]
    refused = cli("drafts", "request-publish", "peek-page", "--as", "agent-7")
    assert refused.code == 2 and "failed validation" in refused.err
    passed = cli("drafts", "validate", "lookup-space")
    assert passed.code == 0 and "lookup-space: ok" in passed.out

    # test: a dry run shows the exact request and sends nothing
    data = {"path": {"id": SPACE}, "query": {"description-format": "plain"}}
    dry = cli("drafts", "test", "lookup-space", "--input", json.dumps(data), "--json")
    assert dry.code == 0, dry.out
    request = dry.json()["request"]
    url = f"{sim.url}/wiki/api/v2/spaces/{SPACE}?description-format=plain"
    assert request["method"] == "GET" and request["url"] == url
    assert request["fingerprint"] == hashlib.sha256(f"GET\n{url}\n".encode()).hexdigest()
    assert dry.json()["sent"] is False
    live = dry.json()["live_decision"]
    assert (live["decision"], live["rule"]) == ("deny", "default-deny")
    assert sim.request_count == 0

    # test --send is decided by the live policy, which names no such action: refused
    sent = cli("drafts", "test", "lookup-space", "--input", json.dumps(data), "--send", "--json")
    assert sent.code == 3, sent.out
    assert sent.json()["error"]["rule"] == "default-deny"
    assert sim.request_count == 0

    # request publication; the proposer cannot publish it
    asked = cli("drafts", "request-publish", "lookup-space", "--as", "agent-7")
    assert asked.code == 0, asked.err
    self_publish = cli("drafts", "publish", "lookup-space", "--as", "Agent-7")
    assert self_publish.code == 3
    assert "self-publish refused: Agent-7 proposed draft 'lookup-space'" in self_publish.err
    assert not (home / "port" / "manifest.json").exists()

    # an operator publishes it: minor version bump, live, callable
    packaged = load_manifest(default_manifest_path()).manifest_version
    published = cli(
        "drafts", "publish", "lookup-space", "--as", "alice", "--accept-proposals", "--json"
    )
    assert published.code == 0, published.out
    out = published.json()
    assert out["from"] == packaged and out["to"] == bump_minor(packaged)
    assert out["published_by"] == "alice" and out["proposer"] == "agent-7"
    assert out["policy"] == "installed from the packaged policy, 1 rule added"
    rows = {row["name"]: row for row in cli("actions", "--json").json()}
    assert rows["delete-page"]["decision"] == "require_approval"  # packaged rules kept
    assert rows["lookup-space"]["decision"] == "auto"
    assert "peek-page" not in rows
    ran = cli("run", "lookup-space", "--input", json.dumps({"path": {"id": SPACE}}), "--json")
    assert ran.code == 0, ran.out
    assert ran.json()["summary"]["name"] == "Engineering"
    assert cli("drafts", "show", "lookup-space", "--json").json()["status"] == "published"

    (record,) = events(home, "draft-published")
    assert record["draft"] == "lookup-space" and record["published_by"] == "alice"
    assert record["proposer"] == "agent-7" and record["to"] == bump_minor(packaged)
    assert [r["draft"] for r in events(home, "draft-proposed")] == ["lookup-space", "peek-page"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"route": "/wiki/api/v2/spaces/{+id}"}, "only simple {var} expansion is allowed"),
        ({"route": "https://evil.example/wiki/api/v2/spaces/{id}"}, "absolute URLs are refused"),
        ({"description": "Bearer abcdefghijklmnop1234"}, "credential refused at description"),
        ({"name": "get-page"}, "'get-page' is already a live action"),
        ({"name": "Bad Name"}, "field name: String should match pattern"),
    ],
    ids=["plus-path", "absolute-url", "token", "live-name", "bad-name"],
)
def test_propose_refusals(
    cli: Cli, home: Path, tmp_path: Path, overrides: dict[str, Any], expected: str
) -> None:
    result = cli("drafts", "propose", write(tmp_path, draft(**overrides)), "--as", "agent-7")
    assert result.code == 2
    assert expected in result.err
    assert cli("drafts", "list", "--json").json() == []


def test_admin_and_unknown_routes_fail_validation(cli: Cli, home: Path, tmp_path: Path) -> None:
    admin = draft(
        name="space-perms",
        route="/wiki/api/v2/spaces/{id}/permissions",
        scopes=["read:space.permission:confluence"],
    )
    unknown = draft(name="space-gizmos", route="/wiki/api/v2/spaces/{id}/gizmos")
    # an admin route is refused as soon as it is proposed, by the manifest rules themselves
    perms = cli("drafts", "propose", write(tmp_path, admin), "--json")
    assert perms.code == 2
    (problem,) = perms.json()["error"]["problems"]
    assert problem.startswith("field route: GET /wiki/api/v2/spaces/{id}/permissions is an admin")
    assert "(permission management)" in problem
    assert cli("drafts", "list", "--json").json() == []
    assert cli("drafts", "propose", write(tmp_path, unknown)).code == 0
    gizmos = cli("drafts", "validate", "space-gizmos", "--json").json()["error"]["problems"]
    assert gizmos == [
        "route /wiki/api/v2/spaces/{id}/gizmos is not in Atlassian's v2 OpenAPI document"
    ]


def test_write_drafts_are_shown_not_sent(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, home: Path, tmp_path: Path
) -> None:
    create = draft(
        name="create-child-page",
        method="POST",
        route="/wiki/api/v2/pages",
        scopes=["write:page:confluence"],
        requestBodyMode="json",
        defaultPolicy="require_approval",
        parameters={
            "body": {
                "type": "object",
                "required": ["spaceId", "title", "parentId"],
                "properties": {
                    "spaceId": ID,
                    "parentId": ID,
                    "title": {"type": "string", "minLength": 1, "maxLength": 255},
                },
            }
        },
    )
    assert cli("drafts", "propose", write(tmp_path, create)).code == 0
    assert cli("drafts", "validate", "create-child-page").code == 0
    body = {"spaceId": SPACE, "parentId": "98305", "title": "Child"}
    dry = cli("drafts", "test", "create-child-page", "--input", json.dumps({"body": body}))
    assert dry.code == 0
    assert f"POST {sim.url}/wiki/api/v2/pages" in dry.out
    assert '"title": "Child"' in dry.out and "fingerprint: " in dry.out
    send = ("drafts", "test", "create-child-page", "--input", json.dumps({"body": body}), "--send")
    denied = cli(*send)  # the live (packaged) policy names no such action
    assert denied.code == 3 and "denied by policy rule 'default-deny'" in denied.err
    assert sim.request_count == 0

    # a live policy that holds it: exit 4, nothing sent, nothing queued
    assert cli("catalog", "export", "-o", str(tmp_path / "hub.json")).code == 0
    assert cli("catalog", "import", str(tmp_path / "hub.json")).code == 0
    (home / "port" / "policy.yaml").write_text(
        "version: 1\nrules:\n  - {name: hold-it, actions: [create-child-page], "
        "decision: require_approval}\n"
    )
    held = cli(*send)
    assert held.code == 4
    assert "rule 'hold-it'" in held.err and "cannot send a request that needs approval" in held.err
    assert events(home, "held") == []  # no ticket was queued
    # even a policy that would send it: drafts test never sends a write
    (home / "port" / "policy.yaml").write_text(
        "version: 1\nrules:\n  - {name: all-auto, decision: auto}\n"
    )
    auto = cli(*send)
    assert auto.code == 2 and "only sends reads" in auto.err
    assert sim.request_count == 0


def test_publish_preconditions(cli: Cli, home: Path, tmp_path: Path) -> None:
    assert cli("drafts", "propose", write(tmp_path, draft()), "--as", "agent-7").code == 0
    early = cli("drafts", "request-publish", "lookup-space", "--as", "agent-7")
    assert early.code == 2 and "has not been validated" in early.err
    unrequested = cli("drafts", "publish", "lookup-space", "--as", "alice")
    assert unrequested.code == 2 and "has no publish request" in unrequested.err
    no_identity = cli("drafts", "publish", "lookup-space")
    assert no_identity.code == 2 and "--as OPERATOR" in no_identity.err

    assert cli("drafts", "validate", "lookup-space").code == 0
    assert cli("drafts", "request-publish", "lookup-space", "--as", "agent-7").code == 0
    stored = home / "port" / "drafts" / "lookup-space.json"
    edited = json.loads(stored.read_text())
    edited["action"]["description"] = "Changed behind the operator's back."
    stored.write_text(json.dumps(edited))
    changed = cli("drafts", "publish", "lookup-space", "--as", "alice")
    assert changed.code == 2 and "changed after publication was requested" in changed.err
    assert not (home / "port" / "manifest.json").exists()


def test_replacing_a_draft_is_for_its_proposer(cli: Cli, home: Path, tmp_path: Path) -> None:
    path = write(tmp_path, draft())
    assert cli("drafts", "propose", path, "--as", "agent-7").code == 0
    again = cli("drafts", "propose", path, "--as", "agent-7")
    assert again.code == 2 and "pass --replace" in again.err
    other = cli("drafts", "propose", path, "--as", "agent-8", "--replace")
    assert other.code == 3 and "proposed by agent-7" in other.err
    assert cli("drafts", "propose", path, "--as", "agent-7", "--replace").code == 0


def test_publish_keeps_an_edited_policy(cli: Cli, home: Path, tmp_path: Path) -> None:
    assert cli("catalog", "export", "-o", str(tmp_path / "hub.json")).code == 0
    assert cli("catalog", "import", str(tmp_path / "hub.json")).code == 0
    mine = "version: 1\nrules:\n  - {name: reads, actions: [get-page], decision: auto}\n"
    (home / "port" / "policy.yaml").write_text(mine)
    assert cli("drafts", "propose", write(tmp_path, draft()), "--as", "agent-7").code == 0
    assert cli("drafts", "validate", "lookup-space").code == 0
    assert cli("drafts", "request-publish", "lookup-space", "--as", "agent-7").code == 0
    result = cli("drafts", "publish", "lookup-space", "--as", "alice", "--json")
    assert result.code == 0, result.out
    assert result.json()["policy"] == "kept (edited by the operator)"
    assert "lookup-space" in result.json()["denied_by_policy"]  # proposal not accepted
    assert (home / "port" / "policy.yaml").read_text() == mine


def test_validate_without_the_openapi_document(
    cli: Cli, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("drafts", "propose", write(tmp_path, draft())).code == 0
    empty = tmp_path / "no-specs"
    empty.mkdir()
    monkeypatch.setenv("CONFLUENCE_OPENAPI_DIR", str(empty))
    result = cli("drafts", "validate", "lookup-space")
    assert result.code == 1
    assert str(empty) in result.err and "CONFLUENCE_OPENAPI_DIR" in result.err


def test_unknown_and_malformed_names(cli: Cli, home: Path) -> None:
    missing = cli("drafts", "show", "nope")
    assert missing.code == 2 and "no draft 'nope'; drafts: none" in missing.err
    traversal = cli("drafts", "show", "../../config")
    assert traversal.code == 2 and "is not a draft name" in traversal.err


def test_port_file_options_are_refused(cli: Cli, home: Path) -> None:
    result = cli("drafts", "list", "--manifest", str(default_manifest_path()))
    assert result.code == 2 and "--manifest/--policy do not apply to drafts" in result.err
