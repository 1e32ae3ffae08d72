"""The CLI: listing, describing, running, exit codes, config, manifests, held requests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from harbor_confluence.pipeline.executor import default_manifest_path
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, CliResult, run_subprocess


def test_actions_json(cli: Callable[..., CliResult], home: Path) -> None:
    result = cli("actions", "--json")
    assert result.code == 0
    rows = {r["name"]: r for r in result.json()}
    assert rows["search-pages"]["decision"] == "auto"
    assert rows["create-page"]["decision"] == "require_approval"
    for row in rows.values():
        assert {"name", "method", "route", "decision"} <= set(row)


def test_describe_json(cli: Callable[..., CliResult], home: Path) -> None:
    result = cli("describe", "get-page", "--json")
    assert result.code == 0
    info = result.json()
    assert info["parameters"]["path"]["properties"]["id"]["pattern"]
    assert info["decision"] == "auto"


def test_run_ok_and_upstream_error(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator
) -> None:
    ok = cli("run", "search-pages", "--input", '{"query": {"limit": 2}}', "--json")
    assert ok.code == 0 and ok.json()["ok"] is True
    missing = cli("run", "get-page", "--input", '{"path": {"id": "424242424242"}}', "--json")
    assert missing.code == 5
    assert missing.json()["status"] == 404 and missing.json()["error"]["message"]


def test_run_denied_exit_3(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator
) -> None:
    result = cli("run", "search-pages", "--input", '{"query": {"limit": 150}}', "--json")
    assert result.code == 3
    assert result.json()["error"]["rule"] == "search-limit-cap"
    assert sim.request_count == 0


def test_run_held_exit_4_and_queue_show(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator
) -> None:
    body = {"body": {"spaceId": "65538", "title": "From the CLI"}}
    result = cli("run", "create-page", "--input", json.dumps(body), "--json")
    assert result.code == 4
    ticket = result.json()["ticket"]
    shown = cli("queue", "show", ticket, "--json")
    assert shown.code == 0 and shown.json()["state"] == "pending"
    assert shown.json()["request"]["body"] == body["body"]
    assert sim.request_count == 0


def test_held_request_survives_a_process_restart(cli_env: dict[str, str], sim: Simulator) -> None:
    body = json.dumps({"body": {"spaceId": "65538", "title": "Survives restarts"}})
    held = run_subprocess("run", "create-page", "--input", body, "--json", env=cli_env)
    assert held.code == 4, held.err
    ticket = json.loads(held.out)["ticket"]
    listed = run_subprocess("queue", "list", "--json", env=cli_env)
    assert listed.code == 0
    rows = json.loads(listed.out)
    assert [r["id"] for r in rows] == [ticket]
    assert rows[0]["request"]["url"].endswith("/wiki/api/v2/pages")
    assert sim.request_count == 0
    for out in (held.out, held.err, listed.out, listed.err):
        assert API_TOKEN not in out


def test_config_set_get_unset(cli: Callable[..., CliResult], home: Path) -> None:
    assert cli("config", "set", "base-url", "https://acme.atlassian.net").code == 0
    got = cli("config", "get", "base-url", "--json")
    assert got.json()["value"] == "https://acme.atlassian.net"
    assert (home / "config.json").stat().st_mode & 0o777 == 0o600
    bad = cli("config", "set", "base-url", "https://your-domain.atlassian.net/")
    assert bad.code == 1 and "placeholder" in bad.err
    insecure = cli("config", "set", "base-url", "http://acme.atlassian.net")
    assert insecure.code == 2 and "https" in insecure.err  # a broken URL rule: invalid input
    assert cli("config", "unset", "base-url").code == 0
    assert cli("config", "get", "base-url", "--json").json()["value"] is None


def test_placeholder_base_url_message(cli: Callable[..., CliResult], home: Path) -> None:
    result = cli("run", "search-pages")
    assert result.code == 1
    assert "harbor-confluence config set base-url" in result.err


def test_manifest_schema_and_validate(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    schema = cli("manifest", "schema")
    assert schema.code == 0 and json.loads(schema.out)["title"] == "Manifest"
    ok = cli("manifest", "validate", str(default_manifest_path()))
    raw = yaml.safe_load(default_manifest_path().read_text())
    assert ok.code == 0 and f"{len(raw['actions'])} actions" in ok.out
    raw["actions"][1]["route"] = "/wiki/api/v2/pages/{+id}"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    result = cli("manifest", "validate", str(bad), "--json")
    assert result.code == 2
    problems = result.json()["error"]["problems"]
    assert any("action 'get-page'" in p and "field route" in p for p in problems)


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = run_subprocess("demo", env={"HARBOR_CONFLUENCE_HOME": str(tmp_path)}, timeout=120)
    assert result.code == 0, result.err
    assert "create-page (require_approval: nothing sent)" in result.out
    assert '"outcome": "held"' in result.out
    assert '"count": 0' in result.out  # the simulator saw no POST


def test_cli_import_is_lazy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, harbor_confluence.cli as c; "
        "print(sorted(m for m in ('httpx','pydantic','jsonschema','yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_actions_listing_cache_follows_the_policy(
    cli: Callable[..., CliResult], home: Path, tmp_path: Path
) -> None:
    from harbor_confluence.paths import default_policy_path

    policy = tmp_path / "policy.yaml"
    policy.write_text(default_policy_path().read_text())
    first = cli("actions", "--json", "--policy", str(policy))
    again = cli("actions", "--json", "--policy", str(policy))
    assert first.json() == again.json()
    assert list((home / "cache").glob("actions-*.json"))
    policy.write_text("version: 1\nrules: []\n")  # deny everything
    changed = cli("actions", "--json", "--policy", str(policy)).json()
    assert {r["decision"] for r in changed} == {"deny"}
