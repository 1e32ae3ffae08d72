"""Catalog: export the live port as a hub document, import one, refusals, re-imports."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harbor_confluence.catalog.dock import FORMAT, catalog_json_schema, export_document
from harbor_confluence.pipeline.documents import find_credentials
from harbor_confluence.pipeline.executor import Port, default_manifest_path
from harbor_confluence.pipeline.manifest import PLACEHOLDER_BASE_URL, load_manifest
from harbor_confluence.review.audit import AuditLog
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL, CliResult

SCHEMA_FILE = Path(__file__).parents[1] / "harbor_confluence" / "schemas" / "catalog.schema.json"
Cli = Callable[..., CliResult]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The packaged port as a hub document (what ``catalog export`` writes); read-only."""
    return export_document(load_manifest(default_manifest_path()))


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


def small(doc: dict[str, Any], version: str, *names: str) -> dict[str, Any]:
    """A copy of ``doc`` at ``version`` keeping only the named actions."""
    out = copy.deepcopy(doc)
    out["manifestVersion"] = version
    out["actions"] = [a for a in out["actions"] if a["name"] in names]
    return out


def records(home: Path, event: str) -> list[dict[str, Any]]:
    return [r for r in AuditLog.for_home(home).records() if r["event"] == event]


# -- the format -------------------------------------------------------------------------------


def test_shipped_schema_matches_the_model() -> None:
    shipped = json.loads(SCHEMA_FILE.read_text())
    assert shipped == json.loads(json.dumps(catalog_json_schema())), (
        "regenerate harbor_confluence/schemas/catalog.schema.json"
    )


def test_export_validates_against_the_shipped_schema(document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(document)
    assert document["format"] == FORMAT
    assert document["publisher"] == document["port"]["publisher"]


def test_cli_schema_prints_the_shipped_file(cli: Cli, home: Path) -> None:
    result = cli("catalog", "schema")
    assert result.code == 0
    assert json.loads(result.out) == json.loads(SCHEMA_FILE.read_text())


def test_export_carries_no_secret_and_no_local_override(
    cli: Cli, cli_env: dict[str, str], sim: Simulator, home: Path, tmp_path: Path
) -> None:
    assert cli("config", "set", "base-url", sim.url).code == 0
    out = tmp_path / "hub.json"
    result = cli("catalog", "export", "-o", str(out))
    assert result.code == 0, result.err
    text = out.read_text()
    doc = json.loads(text)
    assert doc["port"]["baseUrl"] == PLACEHOLDER_BASE_URL
    assert sim.url not in text and "127.0.0.1" not in text
    assert API_TOKEN not in text and EMAIL not in text
    assert list(find_credentials(doc)) == []


# -- round trip -------------------------------------------------------------------------------


def test_round_trip_export_import_run(
    cli: Cli, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Export the live port, import it into an empty state dir, set the tenant, run."""
    for var in (
        "CONFLUENCE_URL",
        "CONFLUENCE_EMAIL",
        "CONFLUENCE_API_TOKEN",
        "CONFLUENCE_ACCESS_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HARBOR_CONFLUENCE_HOME", str(tmp_path / "exporter"))
    hub = tmp_path / "confluence-cloud-api.json"
    assert cli("catalog", "export", "-o", str(hub)).code == 0

    fresh = tmp_path / "fresh"
    monkeypatch.setenv("HARBOR_CONFLUENCE_HOME", str(fresh))
    imported = cli("catalog", "import", str(hub), "--as", "alice", "--json")
    assert imported.code == 0, imported.out
    assert imported.json()["kind"] == "install"
    assert (fresh / "port" / "manifest.json").is_file()
    assert (fresh / "port" / "policy.yaml").is_file()
    status = cli("catalog", "status", "--json").json()
    assert status["source"] == "installed" and status["policy_state"] == "generated"

    monkeypatch.setenv("CONFLUENCE_EMAIL", EMAIL)
    monkeypatch.setenv("CONFLUENCE_API_TOKEN", API_TOKEN)
    before = cli("run", "get-page", "--input", '{"path": {"id": "98305"}}')
    assert before.code == 1
    assert "placeholder" in before.err and "config set base-url" in before.err
    assert sim.request_count == 0

    assert cli("config", "set", "base-url", sim.url).code == 0
    ran = cli("run", "get-page", "--input", '{"path": {"id": "98305"}}', "--json")
    assert ran.code == 0, ran.out
    assert ran.json()["summary"]["id"] == "98305"
    assert [e.path for e in sim.exchanges] == ["/wiki/api/v2/pages/98305"]

    (event,) = records(fresh, "catalog-import")
    assert event["operator"] == "alice" and event["kind"] == "install"
    assert event["to_version"] == load_manifest(default_manifest_path()).manifest_version


def test_imported_port_is_what_port_load_uses(
    cli: Cli, home: Path, tmp_path: Path, document: dict[str, Any]
) -> None:
    doc = small(document, "7.0.0", "get-page", "search-pages")
    assert cli("catalog", "import", str(write(tmp_path / "d.json", doc)), "--yes").code == 0
    names = [row["name"] for row in cli("actions", "--json").json()]
    assert sorted(names) == ["get-page", "search-pages"]
    with Port.load(home=home) as port:
        assert port.manifest.manifest_version == "7.0.0"
        # the live policy starts as the packaged one: its rules decide, not defaultPolicy
        assert port.policy.static_decision(port.action("get-page"))[0].rule == "reads-auto"
    packaged = cli("actions", "--json", "--manifest", str(default_manifest_path())).json()
    assert len(packaged) == len(document["actions"])  # an explicit manifest still wins


# -- refusals: clear error, nothing installed -------------------------------------------------


def _token(doc: dict[str, Any]) -> None:
    doc["port"]["auth"]["authToken"] = "ATATT3xFfGF0" + "a1b2c3d4e5f6g7h8i9j0"


def _absolute(doc: dict[str, Any]) -> None:
    doc["actions"][0]["route"] = "https://evil.example/wiki/api/v2/pages"


def _admin(doc: dict[str, Any]) -> None:
    a = next(a for a in doc["actions"] if a["name"] == "get-page")
    a["route"] = "/wiki/api/v2/pages/{id}/classification-level"


def _plus_path(doc: dict[str, Any]) -> None:
    a = next(a for a in doc["actions"] if a["name"] == "get-page")
    a["route"] = "/wiki/api/v2/{+id}"


def _tenant(doc: dict[str, Any]) -> None:
    doc["port"]["baseUrl"] = "https://acme.atlassian.net/"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_token, "credential refused at port.auth.authToken"),
        (_absolute, "absolute URLs are refused"),
        (_admin, "admin or permission-management route (classification levels)"),
        (_plus_path, "only simple {var} expansion is allowed, not {+id}"),
        (_tenant, "field port.baseUrl: a hub document carries the placeholder"),
    ],
    ids=["token", "absolute-url", "admin-route", "plus-path", "tenant-url"],
)
def test_import_refusals_install_nothing(
    cli: Cli,
    home: Path,
    tmp_path: Path,
    document: dict[str, Any],
    mutate: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    doc = copy.deepcopy(document)
    mutate(doc)
    result = cli("catalog", "import", str(write(tmp_path / "bad.json", doc)), "--yes")
    assert result.code == 2
    assert expected in result.err
    assert not (home / "port").exists()
    (refusal,) = records(home, "catalog-import-refused")
    assert any(expected in p for p in refusal["problems"])
    assert "a1b2c3d4e5f6g7h8i9j0" not in (home / "audit.jsonl").read_text()


def test_malformed_json_is_refused(cli: Cli, home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "harbor.hub.integration/v1", "actions": [}')
    result = cli("catalog", "import", str(bad), "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert error["source"] == str(bad)
    assert error["problems"][0].startswith("not valid JSON: ")
    assert not (home / "port").exists()


def test_not_a_hub_document(cli: Cli, home: Path, tmp_path: Path) -> None:
    yaml_file = tmp_path / "port.yaml"
    yaml_file.write_text("manifestVersion: 1.0.0\n")
    assert "a hub document is a JSON file" in cli("catalog", "import", str(yaml_file)).err
    manifest_only = write(tmp_path / "m.json", {"manifestVersion": "1.0.0"})
    result = cli("catalog", "import", str(manifest_only))
    assert result.code == 2
    assert "field format: Field required" in result.err
    assert not (home / "port").exists()


def test_same_version_with_different_content_is_refused(
    cli: Cli, home: Path, tmp_path: Path, document: dict[str, Any]
) -> None:
    first = small(document, "2.0.0", "get-page", "search-pages")
    assert cli("catalog", "import", str(write(tmp_path / "a.json", first)), "--yes").code == 0
    installed = (home / "port" / "manifest.json").read_bytes()
    policy = (home / "port" / "policy.yaml").read_bytes()

    again = cli("catalog", "import", str(write(tmp_path / "same.json", first)))
    assert again.code == 0 and "nothing to do" in again.out

    changed = copy.deepcopy(first)
    changed["actions"][0]["defaultPolicy"] = "require_approval"
    result = cli("catalog", "import", str(write(tmp_path / "b.json", changed)), "--yes")
    assert result.code == 2
    assert "version 2.0.0 is already installed with different content" in result.err
    assert "defaultPolicy: auto -> require_approval" in result.err
    assert (home / "port" / "manifest.json").read_bytes() == installed
    assert (home / "port" / "policy.yaml").read_bytes() == policy


# -- re-import: diff, confirmation, downgrade ---------------------------------------------------


class _Terminal(io.StringIO):
    """A stdin that says it is a terminal, holding the operator's answer."""

    def isatty(self) -> bool:
        return True


def _upgrade(document: dict[str, Any]) -> dict[str, Any]:
    new = small(document, "2.1.0", "get-page", "create-page")
    new["actions"][0]["defaultPolicy"] = "require_approval"  # get-page: auto -> review
    query = new["actions"][0]["parameters"]["query"]["properties"]
    query.pop(sorted(query)[0])
    space = copy.deepcopy(next(a for a in document["actions"] if a["name"] == "get-space"))
    space["name"] = "fetch-space"
    new["actions"].append(space)
    return new


def test_higher_version_shows_the_diff_and_needs_confirmation(
    cli: Cli,
    home: Path,
    tmp_path: Path,
    document: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = small(document, "2.0.0", "get-page", "search-pages", "create-page")
    assert cli("catalog", "import", str(write(tmp_path / "a.json", first)), "--yes").code == 0
    installed = (home / "port" / "manifest.json").read_bytes()
    upgrade = write(tmp_path / "b.json", _upgrade(document))

    scripted = cli("catalog", "import", str(upgrade))  # stdin is not a terminal here
    assert scripted.code == 1
    assert "re-run with --yes" in scripted.err and "Nothing was installed" in scripted.err
    for line in (
        "manifest 2.0.0 -> 2.1.0",
        "+ fetch-space  GET /wiki/api/v2/spaces/{id}",
        "- search-pages  GET /wiki/api/v2/pages",
        "~ get-page",
        "defaultPolicy: auto -> require_approval",
        "parameters.query: removed ",
        "+ fetch-space (new read): deny (rule default-deny); proposal auto not accepted",
        "= get-page (read): auto (rule reads-auto); proposal require_approval not accepted",
        "re-run with --accept-proposals",
    ):
        assert line in scripted.err, line
    assert (home / "port" / "manifest.json").read_bytes() == installed

    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    declined = cli("catalog", "import", str(upgrade))
    assert declined.code == 1 and "not applied" in declined.err
    assert (home / "port" / "manifest.json").read_bytes() == installed

    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    accepted = cli("catalog", "import", str(upgrade), "--accept-proposals", "--json")
    assert accepted.code == 0, accepted.out
    body = accepted.json()
    assert body["kind"] == "upgrade" and body["to"] == "2.1.0"
    assert [a["name"] for a in body["diff"]["added"]] == ["fetch-space"]
    assert [a["name"] for a in body["diff"]["removed"]] == ["search-pages"]
    rows = {r["name"]: r for r in cli("actions", "--json").json()}
    assert set(rows) == {"get-page", "create-page", "fetch-space"}
    assert rows["get-page"]["decision"] == "require_approval"  # an accepted, tighter proposal
    assert rows["fetch-space"]["decision"] == "auto"  # a new read, proposal accepted
    assert rows["create-page"]["decision"] == "require_approval"
    changes = {c["action"]: c for c in body["policy_changes"]}
    assert changes["fetch-space"]["status"] == "new" and changes["fetch-space"]["proposal_accepted"]
    upgrade_event = records(home, "catalog-import")[-1]
    assert upgrade_event["kind"] == "upgrade" and upgrade_event["removed"] == ["search-pages"]


def test_lower_version_needs_force(
    cli: Cli, home: Path, tmp_path: Path, document: dict[str, Any]
) -> None:
    newest = write(tmp_path / "a.json", small(document, "3.0.0", "get-page"))
    assert cli("catalog", "import", str(newest), "--yes").code == 0
    older = write(tmp_path / "old.json", small(document, "2.9.0", "get-page", "search-pages"))
    refused = cli("catalog", "import", str(older), "--yes")
    assert refused.code == 2
    assert "version 2.9.0 is lower than the installed 3.0.0; pass --force" in refused.err
    forced = cli("catalog", "import", str(older), "--force", "--yes", "--json")
    assert forced.code == 0 and forced.json()["kind"] == "downgrade"
    assert cli("catalog", "status", "--json").json()["version"] == "2.9.0"


def test_an_edited_policy_is_kept_and_gaps_are_named(
    cli: Cli, home: Path, tmp_path: Path, document: dict[str, Any]
) -> None:
    first = write(tmp_path / "a.json", small(document, "1.0.0", "get-page"))
    assert cli("catalog", "import", str(first), "--yes").code == 0
    mine = "version: 1\nrules:\n  - {name: mine, actions: [get-page], decision: auto}\n"
    (home / "port" / "policy.yaml").write_text(mine)
    # (1.2.1 would be refused: it is the packaged port's version, with other content)
    newer = write(tmp_path / "b.json", small(document, "1.0.1", "get-page", "get-space"))
    result = cli("catalog", "import", str(newer), "--yes")
    assert result.code == 0, result.err
    assert "policy: kept (edited by the operator)" in result.out
    assert "denied by your policy until you add rules: get-space" in result.out
    assert (home / "port" / "policy.yaml").read_text() == mine


def test_import_rejects_port_file_options(cli: Cli, home: Path, tmp_path: Path) -> None:
    result = cli("catalog", "import", str(tmp_path / "x.json"), "--policy", "p.yaml")
    assert result.code == 2 and "--manifest/--policy do not apply" in result.err


def test_export_refuses_a_policy_file(cli: Cli, home: Path) -> None:
    result = cli("catalog", "export", "--policy", "policies/default.yaml")
    assert result.code == 2 and "--policy does not apply to catalog export" in result.err
