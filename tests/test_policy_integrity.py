"""Governance cannot be weakened through the catalog, drafts or an alternative manifest.

One test per security finding (5-8), then the rules behind them: a document's
defaultPolicy is only a proposal; imports and publishes add rules to the live policy and
never loosen or drop one; no write is ever sent without approval because of an import;
``drafts test --send`` is decided by the live policy; the manifest loader refuses admin and
permission routes wherever a manifest comes from.  Refused sends are checked against the
simulator: it must have received nothing.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harbor_confluence.catalog.dock import (
    apply_import,
    export_document,
    installed_paths,
    plan_import,
    policy_state,
)
from harbor_confluence.errors import ManifestError
from harbor_confluence.paths import default_manifest_path, default_policy_path
from harbor_confluence.pipeline.manifest import (
    Manifest,
    admin_route_problem,
    load_manifest,
    manifest_from_data,
)
from harbor_confluence.pipeline.policy import Policy, load_policy
from harbor_confluence.review.audit import AuditLog
from harbor_confluence.sim import Simulator
from tests.conftest import CliResult, run_subprocess
from tests.contract import require_spec

Cli = Callable[..., CliResult]
ID = {"type": "string", "pattern": "^[0-9]{1,19}$"}
ARCH = "98306"  # a page the simulator serves
SPACE = "65538"  # the simulator's ENG space
PACKAGED = load_manifest(default_manifest_path())


@pytest.fixture
def document() -> dict[str, Any]:
    """The packaged port as a hub document (what ``catalog export`` writes)."""
    return export_document(PACKAGED)


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(data))
    return path


def action_data(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in doc["actions"] if a["name"] == name)
    return found


def live_policy(home: Path) -> Policy:
    return load_policy(installed_paths(home).policy)


def live_manifest(home: Path) -> Manifest:
    return load_manifest(installed_paths(home).manifest)


def events(home: Path, event: str) -> list[dict[str, Any]]:
    return [r for r in AuditLog.for_home(home).records() if r["event"] == event]


def decide(policy: Policy, manifest: Manifest, name: str, data: dict[str, Any],
           body: bytes | None = None) -> tuple[str, str]:  # fmt: skip
    decision = policy.decide(manifest.action(name), data, body)
    return decision.outcome, decision.rule


# -- finding 5: an import cannot make delete-page automatic -----------------------------------


def test_finding5_import_cannot_make_delete_auto(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, home: Path, tmp_path: Path,
    document: dict[str, Any],
) -> None:  # fmt: skip
    doc = copy.deepcopy(document)
    doc["manifestVersion"] = "1.8.0"
    action_data(doc, "delete-page")["defaultPolicy"] = "auto"
    hub = write(tmp_path / "doc.json", doc)

    # without a terminal and without --yes: the diff and the policy plan, and nothing installed
    scripted = run_subprocess("catalog", "import", str(hub), env=cli_env, stdin="")
    assert scripted.code == 1, scripted.err
    assert "defaultPolicy: require_approval -> auto" in scripted.err
    assert "delete-page (write): require_approval (rule deletes-review, 2 approvers" in scripted.err
    assert "proposal auto refused: a write is never sent without approval" in scripted.err
    assert not (home / "port").exists()

    # applied, even with the proposals accepted, delete-page stays held by two operators
    applied = cli("catalog", "import", str(hub), "--yes", "--accept-proposals", "--json")
    assert applied.code == 0, applied.out
    change = {c["action"]: c for c in applied.json()["policy_changes"]}["delete-page"]
    assert change["proposal"] == "auto" and change["proposal_accepted"] is True
    assert change["after"].startswith("require_approval (rule deletes-review, 2 approvers")
    decision, _ = live_policy(home).static_decision(live_manifest(home).action("delete-page"))
    assert (decision.outcome, decision.approvers, decision.forbid_self_approval) == (
        "require_approval", 2, True
    )  # fmt: skip

    ran = cli("run", "delete-page", "--input", json.dumps({"path": {"id": ARCH}}))
    assert ran.code == 4, ran.out + ran.err  # held for approval
    assert sim.request_count == 0
    (record,) = events(home, "catalog-import")
    assert record["accept_proposals"] is True


# -- finding 6: export -> import keeps the packaged policy's strictness -----------------------


def test_finding6_export_import_keeps_packaged_policy(cli: Cli, home: Path, tmp_path: Path) -> None:
    hub = tmp_path / "hub.json"
    assert cli("catalog", "export", "-o", str(hub)).code == 0
    imported = cli("catalog", "import", str(hub), "--json")  # unchanged: nothing to confirm
    assert imported.code == 0, imported.out
    assert imported.json()["policy_changes"] == []
    assert imported.json()["policy_source"] == "packaged"

    policy, manifest = live_policy(home), live_manifest(home)
    assert policy.rules == load_policy(default_policy_path()).rules
    assert policy_state(installed_paths(home).policy) == "generated"
    page = {"path": {"id": ARCH}}
    # 1. deletes need two approvers, not the requester
    delete, _ = policy.static_decision(manifest.action("delete-page"))
    assert (delete.outcome, delete.rule, delete.approvers, delete.forbid_self_approval) == (
        "require_approval", "deletes-review", 2, True
    )  # fmt: skip
    # 2. purge=true is denied
    assert decide(policy, manifest, "delete-page", {**page, "query": {"purge": True}}) == (
        "deny", "purge-denied"
    )  # fmt: skip
    # 3. limit over 100 is denied (the manifest allows up to 250)
    assert decide(policy, manifest, "search-pages", {"query": {"limit": 200}}) == (
        "deny", "search-limit-cap"
    )  # fmt: skip
    assert decide(policy, manifest, "search-pages", {"query": {"limit": 100}})[0] == "auto"
    # 4. uploads over 5 MB are denied, smaller ones held
    upload = {**page, "body": {"file": {"filename": "a.bin", "contentBase64": "aGk="}}}
    big = b"x" * (5 * 1024 * 1024 + 1)
    assert decide(policy, manifest, "upload-attachment", upload, big) == (
        "deny", "upload-size-cap"
    )  # fmt: skip
    assert decide(policy, manifest, "upload-attachment", upload, b"hi")[0] == "require_approval"


def test_finding6_same_version_other_content_is_refused_in_a_fresh_home(
    cli: Cli, home: Path, tmp_path: Path, document: dict[str, Any]
) -> None:
    doc = copy.deepcopy(document)  # the packaged version, with other content
    action_data(doc, "delete-page")["defaultPolicy"] = "auto"
    hub = write(tmp_path / "same.json", doc)
    for extra in ((), ("--yes",), ("--yes", "--force", "--accept-proposals")):
        result = cli("catalog", "import", str(hub), *extra)
        assert result.code == 2, (extra, result.out)
        assert f"version {PACKAGED.manifest_version} is the packaged port's version" in result.err
        assert "needs a higher manifestVersion" in result.err
        assert "defaultPolicy: require_approval -> auto" in result.err
        assert not (home / "port").exists()
    assert len(events(home, "catalog-import-refused")) == 3
    assert events(home, "catalog-import") == []


def test_same_version_as_packaged_is_refused_with_another_port_installed(
    cli: Cli, home: Path, tmp_path: Path, document: dict[str, Any]
) -> None:
    first = copy.deepcopy(document)
    first["manifestVersion"] = "0.9.0"
    assert cli("catalog", "import", str(write(tmp_path / "a.json", first)), "--yes").code == 0
    installed = (home / "port" / "manifest.json").read_bytes()
    doc = copy.deepcopy(document)
    doc["actions"] = [a for a in doc["actions"] if a["name"] != "get-space"]
    result = cli("catalog", "import", str(write(tmp_path / "b.json", doc)), "--yes")
    assert result.code == 2
    assert "is the packaged port's version with different content" in result.err
    assert (home / "port" / "manifest.json").read_bytes() == installed


def test_downgrade_stays_refused(
    cli: Cli, home: Path, tmp_path: Path, document: dict[str, Any]
) -> None:
    newer = copy.deepcopy(document)
    newer["manifestVersion"] = "3.0.0"
    assert cli("catalog", "import", str(write(tmp_path / "a.json", newer)), "--yes").code == 0
    older = copy.deepcopy(document)
    older["manifestVersion"] = "2.0.0"
    refused = cli("catalog", "import", str(write(tmp_path / "b.json", older)), "--yes")
    assert refused.code == 2 and "lower than the installed 3.0.0" in refused.err
    assert live_manifest(home).manifest_version == "3.0.0"


# -- finding 7: drafts test --send is decided by the live policy ------------------------------


def lookup_space() -> dict[str, Any]:
    return {
        "name": "lookup-space",
        "description": "Get one space by id.",
        "method": "GET",
        "route": "/wiki/api/v2/spaces/{id}",
        "scopes": ["read:space:confluence"],
        "defaultPolicy": "auto",
        "parameters": {
            "path": {"type": "object", "required": ["id"], "properties": {"id": ID}},
            "query": {
                "type": "object",
                "properties": {"description-format": {"type": "string", "enum": ["plain"]}},
            },
        },
        "summary": {"fields": {"id": "id", "key": "key"}},
    }


def test_finding7_drafts_test_send_uses_the_live_policy(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, home: Path, tmp_path: Path
) -> None:
    require_spec("v2")
    assert cli("drafts", "propose", str(write(tmp_path / "d.yaml", lookup_space()))).code == 0
    assert cli("drafts", "validate", "lookup-space").code == 0
    plain = json.dumps({"path": {"id": SPACE}, "query": {"description-format": "plain"}})
    bare = json.dumps({"path": {"id": SPACE}})

    # the live (packaged) policy names no such action: denied, rule named, nothing sent
    denied = cli("drafts", "test", "lookup-space", "--input", bare, "--send", "--json")
    assert denied.code == 3
    assert denied.json()["error"]["rule"] == "default-deny"
    assert sim.request_count == 0

    # the installed port's policy decides, condition by condition
    assert cli("catalog", "export", "-o", str(tmp_path / "hub.json")).code == 0
    assert cli("catalog", "import", str(tmp_path / "hub.json")).code == 0
    no_plain = {
        "name": "no-plain",
        "actions": ["lookup-space"],
        "decision": "deny",
        "when": {
            "required": ["query"],
            "properties": {"query": {"required": ["description-format"]}},
        },
    }
    lookup_ok = {"name": "lookup-ok", "actions": ["lookup-space"], "decision": "auto"}
    installed_paths(home).policy.write_text(yaml.safe_dump({"rules": [no_plain, lookup_ok]}))
    refused = cli("drafts", "test", "lookup-space", "--input", plain, "--send")
    assert refused.code == 3 and "denied by policy rule 'no-plain'" in refused.err
    assert sim.request_count == 0
    sent = cli("drafts", "test", "lookup-space", "--input", bare, "--send", "--json")
    assert sent.code == 0, sent.out
    assert sent.json()["sent"] is True and sent.json()["result"]["summary"]["key"] == "ENG"
    assert [(e.method, e.path) for e in sim.exchanges] == [("GET", f"/wiki/api/v2/spaces/{SPACE}")]

    # held by the live policy: exit 4, nothing sent, no ticket
    installed_paths(home).policy.write_text(
        "version: 1\nrules:\n  - {name: ask, actions: [lookup-space], decision: require_approval}\n"
    )
    held = cli("drafts", "test", "lookup-space", "--input", bare, "--send")
    assert held.code == 4 and "rule 'ask'" in held.err
    assert sim.request_count == 1  # still only the one allowed read
    assert events(home, "held") == []


# -- finding 8: the manifest loader refuses admin and permission routes -----------------------


PERMISSION_ROUTES = [
    ("/wiki/rest/api/space/{id}/permission", "permission management"),
    ("/wiki/api/v2/spaces/{id}/permissions", "permission management"),
    ("/wiki/rest/api/space/{id}/permission/custom-content", "permission management"),
    ("/wiki/rest/api/space/{id}/permission/{pid}", "permission management"),
    ("/wiki/rest/api/content/{id}/restriction", "content restrictions"),
    ("/wiki/api/v2/pages/{id}/classification-level", "classification levels"),
    ("/wiki/api/v2/spaces/{id}/role-assignments", "role assignments and space roles"),
    ("/wiki/rest/api/space/{id}/settings", "space settings and themes"),
    ("/wiki/api/v2/admin-key", "site administration"),
]


def reroute(route: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The packaged manifest with get-page re-routed (path parameters to match)."""
    raw = yaml.safe_load(default_manifest_path().read_text())
    get_page = next(a for a in raw["actions"] if a["name"] == "get-page")
    get_page["route"] = route
    props = {v: ID for v in ("id", "pid") if "{" + v + "}" in route} | (extra or {})
    get_page["parameters"]["path"] = (
        {"type": "object", "required": sorted(props), "properties": props} if props else None
    )
    if get_page["parameters"]["path"] is None:
        del get_page["parameters"]["path"]
    return dict(raw)


@pytest.mark.parametrize(("route", "label"), PERMISSION_ROUTES)
def test_finding8_run_manifest_refuses_permission_routes(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, tmp_path: Path, route: str, label: str
) -> None:
    manifest = write(tmp_path / "m.yaml", reroute(route))
    data = {"path": {"id": SPACE, "pid": "1"}} if "{pid}" in route else {"path": {"id": SPACE}}
    if "{id}" not in route:
        data = {}
    result = cli("run", "get-page", "--manifest", str(manifest), "--input", json.dumps(data))
    assert result.code == 2, result.out + result.err
    assert str(manifest) in result.err  # the file
    assert "action 'get-page'" in result.err  # the action
    assert f"admin or permission-management route ({label})" in result.err  # the rule
    assert sim.request_count == 0
    listing = cli("actions", "--manifest", str(manifest))
    assert listing.code == 2 and f"({label})" in listing.err


@pytest.mark.parametrize(
    ("what", "shown"),
    [
        ({"type": "string", "enum": ["labels", "permission"]}, "{what}='permission'"),
        ({"type": "string", "pattern": "^[a-z-]{1,30}$"}, "{what}="),
        ({"type": "string", "const": "restriction", "pattern": "^[a-z]+$"}, "'restriction'"),
    ],
    ids=["enum", "letters", "const"],
)
def test_route_variables_cannot_spell_an_admin_route(what: dict[str, Any], shown: str) -> None:
    raw = reroute("/wiki/rest/api/space/{id}/{what}", {"what": what})
    with pytest.raises(ManifestError) as info:
        manifest_from_data(raw, "m.yaml")
    (problem,) = info.value.problems
    assert problem.startswith("action 'get-page' (actions[1]): route: GET /wiki/rest/api/space")
    assert "admin or permission-management route" in problem and shown in problem


def test_a_letter_variable_in_a_collection_is_fine() -> None:
    # remove-label's {label} names a label inside /label/: it cannot name another resource
    letters = {"type": "string", "pattern": "^[a-z-]{1,30}$"}
    schema = {"properties": {"id": ID, "label": letters}}
    route = "/wiki/rest/api/content/{id}/label/{label}"
    assert admin_route_problem("DELETE", route, schema) is None
    # but right after another variable it could name a sub-resource
    assert admin_route_problem("GET", "/wiki/rest/api/content/{id}/{label}", schema) is not None
    assert PACKAGED.action("remove-label").route == route


def test_packaged_manifest_still_loads() -> None:
    assert len(load_manifest(default_manifest_path()).actions) == len(PACKAGED.actions) > 50


def test_installed_manifest_with_a_permission_route_is_refused(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, home: Path
) -> None:
    """Even a manifest placed in port/ by hand (not through import) does not load."""
    port = home / "port"
    port.mkdir(parents=True)
    write(port / "manifest.json", reroute("/wiki/rest/api/space/{id}/permission"))
    result = cli("run", "get-page", "--input", json.dumps({"path": {"id": SPACE}}))
    assert result.code == 2 and "(permission management)" in result.err
    assert sim.request_count == 0


# -- the policy an import or publish installs --------------------------------------------------


def test_new_and_changed_actions_need_accepted_proposals(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, home: Path, tmp_path: Path,
    document: dict[str, Any],
) -> None:  # fmt: skip
    doc = copy.deepcopy(document)
    doc["manifestVersion"] = "1.8.0"
    fetch = copy.deepcopy(action_data(doc, "get-space"))
    fetch["name"] = "fetch-space"
    zap = copy.deepcopy(action_data(doc, "delete-page"))
    zap.update(name="zap-page", defaultPolicy="auto")
    make = copy.deepcopy(action_data(doc, "create-page"))
    make.update(name="make-page", defaultPolicy="auto")
    action_data(doc, "get-space")["route"] = "/wiki/api/v2/spaces/{id}/labels"  # re-routed
    doc["actions"] += [fetch, zap, make]
    hub = write(tmp_path / "doc.json", doc)

    plan = cli("catalog", "import", str(hub), "--yes", "--json")
    assert plan.code == 0, plan.out
    changes = {c["action"]: c for c in plan.json()["policy_changes"]}
    assert {n: (c["status"], c["after"].split(" ")[0]) for n, c in changes.items()} == {
        "fetch-space": ("new", "deny"),
        "get-space": ("changed", "deny"),
        "zap-page": ("new", "require_approval"),
        "make-page": ("new", "require_approval"),
    }
    assert "pass --accept-proposals" in changes["fetch-space"]["note"]
    assert set(plan.json()["denied_by_policy"]) == {"fetch-space", "get-space"}
    policy, manifest = live_policy(home), live_manifest(home)
    zap_decision, _ = policy.static_decision(manifest.action("zap-page"))
    assert (zap_decision.approvers, zap_decision.forbid_self_approval) == (2, True)
    big = {"body": {"spaceId": SPACE, "title": "x", "body": {"representation": "storage",
                                                            "value": "x" * 1_000_001}}}  # fmt: skip
    assert decide(policy, manifest, "make-page", big)[0] == "deny"  # the new write's body cap

    for name, data in (("fetch-space", {"path": {"id": SPACE}}),
                       ("get-space", {"path": {"id": SPACE}})):  # fmt: skip
        ran = cli("run", name, "--input", json.dumps(data))
        assert ran.code == 3, (name, ran.err)
    made = cli("run", "make-page", "--input", json.dumps(
        {"body": {"spaceId": SPACE, "title": "T", "body": {"representation": "storage",
                                                          "value": "<p>x</p>"}}}))  # fmt: skip
    assert made.code == 4, made.err
    assert sim.request_count == 0

    # the operator accepts the proposals of the next version: reads open, writes still held
    doc["manifestVersion"] = "1.9.0"
    nxt = write(tmp_path / "next.json", doc)
    accepted = cli("catalog", "import", str(nxt), "--yes", "--accept-proposals", "--json")
    assert accepted.code == 0, accepted.out
    policy, manifest = live_policy(home), live_manifest(home)
    assert policy.static_decision(manifest.action("get-space"))[0].outcome == "deny"  # kept
    assert policy.static_decision(manifest.action("zap-page"))[0].outcome == "require_approval"
    assert policy.static_decision(manifest.action("make-page"))[0].outcome == "require_approval"


def test_accepted_read_proposal_in_the_next_import(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, home: Path, tmp_path: Path,
    document: dict[str, Any],
) -> None:  # fmt: skip
    doc = copy.deepcopy(document)
    doc["manifestVersion"] = "1.8.0"
    fetch = copy.deepcopy(action_data(doc, "get-space"))
    fetch["name"] = "fetch-space"
    doc["actions"].append(fetch)
    hub = write(tmp_path / "doc.json", doc)
    assert cli("catalog", "import", str(hub), "--yes", "--accept-proposals").code == 0
    ran = cli("run", "fetch-space", "--input", json.dumps({"path": {"id": SPACE}}), "--json")
    assert ran.code == 0, ran.out
    assert [e.path for e in sim.exchanges] == [f"/wiki/api/v2/spaces/{SPACE}"]


def test_an_operator_policy_that_auto_sends_everything_gets_writes_held(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, home: Path, tmp_path: Path,
    document: dict[str, Any],
) -> None:  # fmt: skip
    assert cli("catalog", "export", "-o", str(tmp_path / "hub.json")).code == 0
    assert cli("catalog", "import", str(tmp_path / "hub.json")).code == 0
    mine = (
        "version: 1\nrules:\n  # reads and writes alike\n  - {name: everything, decision: auto}\n"
    )
    installed_paths(home).policy.write_text(mine)
    doc = copy.deepcopy(document)
    doc["manifestVersion"] = "1.8.0"
    result = cli("catalog", "import", str(write(tmp_path / "doc.json", doc)), "--yes", "--json")
    assert result.code == 0, result.out
    assert result.json()["policy"].endswith("kept as port/policy.yaml.bak")
    assert installed_paths(home).policy_backup.read_text() == mine
    policy, manifest = live_policy(home), live_manifest(home)
    for a in manifest.actions:
        outcome = policy.static_decision(a)[0].outcome
        assert outcome == ("auto" if a.is_read else "require_approval"), a.name
    deleted = policy.static_decision(manifest.action("delete-page"))[0]
    assert (deleted.approvers, deleted.forbid_self_approval) == (2, True)
    ran = cli("run", "delete-page", "--input", json.dumps({"path": {"id": ARCH}}))
    assert ran.code == 4 and sim.request_count == 0


def test_programmatic_import_takes_accept_proposals(
    home: Path, tmp_path: Path, document: dict[str, Any]
) -> None:
    home.mkdir(parents=True)
    doc = copy.deepcopy(document)
    doc["manifestVersion"] = "1.8.0"
    fetch = copy.deepcopy(action_data(doc, "get-space"))
    fetch["name"] = "fetch-space"
    doc["actions"].append(fetch)
    hub = write(tmp_path / "doc.json", doc)
    declined = plan_import(hub, home)
    assert {c.action: c.after.split(" ")[0] for c in declined.policy.changes} == {
        "fetch-space": "deny"
    }
    plan = plan_import(hub, home, accept_proposals=True)
    assert plan.needs_confirmation  # the live (packaged) port gains an action
    summary = apply_import(plan, home, operator="alice")
    assert summary["accept_proposals"] is True
    fetched = live_policy(home).static_decision(live_manifest(home).action("fetch-space"))[0]
    assert fetched.outcome == "auto"


def test_policy_edited_between_plan_and_apply_is_refused(
    home: Path, tmp_path: Path, document: dict[str, Any]
) -> None:
    home.mkdir(parents=True)
    first = copy.deepcopy(document)
    first["manifestVersion"] = "1.8.0"
    apply_import(plan_import(write(tmp_path / "a.json", first), home), home, operator="alice")
    first["manifestVersion"] = "1.9.0"
    plan = plan_import(write(tmp_path / "b.json", first), home)
    installed_paths(home).policy.write_text("version: 1\nrules: []\n")
    with pytest.raises(Exception, match="changed while this import was being confirmed"):
        apply_import(plan, home, operator="alice")
    assert live_manifest(home).manifest_version == "1.8.0"


def test_publish_in_a_fresh_home_keeps_the_packaged_policy(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, home: Path, tmp_path: Path
) -> None:
    require_spec("v2")
    assert cli("drafts", "propose", str(write(tmp_path / "d.yaml", lookup_space())),
               "--as", "agent-7").code == 0  # fmt: skip
    assert cli("drafts", "validate", "lookup-space").code == 0
    assert cli("drafts", "request-publish", "lookup-space", "--as", "agent-7").code == 0
    published = cli("drafts", "publish", "lookup-space", "--as", "alice", "--json")
    assert published.code == 0, published.out
    assert published.json()["denied_by_policy"] == ["lookup-space"]  # not accepted
    policy, manifest = live_policy(home), live_manifest(home)
    assert policy.rules == load_policy(default_policy_path()).rules  # nothing added, nothing lost
    page = {"path": {"id": ARCH}}
    assert decide(policy, manifest, "delete-page", {**page, "query": {"purge": True}}) == (
        "deny", "purge-denied"
    )  # fmt: skip
    ran = cli("run", "lookup-space", "--input", json.dumps({"path": {"id": SPACE}}))
    assert ran.code == 3 and sim.request_count == 0


def test_unchanged_upload_cap_survives_an_upgrade(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, home: Path, tmp_path: Path,
    document: dict[str, Any],
) -> None:  # fmt: skip
    doc = copy.deepcopy(document)
    doc["manifestVersion"] = "1.8.0"
    action_data(doc, "upload-attachment")["defaultPolicy"] = "auto"
    assert cli("catalog", "import", str(write(tmp_path / "d.json", doc)), "--yes",
               "--accept-proposals").code == 0  # fmt: skip
    content = base64.b64encode(b"x" * (5 * 1024 * 1024 + 1)).decode()
    data = {"path": {"id": ARCH}, "body": {"file": {"filename": "big.bin",
                                                    "contentBase64": content}}}  # fmt: skip
    ran = cli("run", "upload-attachment", "--input", "-", stdin=json.dumps(data))
    assert ran.code == 3 and "upload-size-cap" in ran.err
    assert sim.request_count == 0
