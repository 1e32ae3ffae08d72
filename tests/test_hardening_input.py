"""Hardening of the input side: each test is named after the finding it pins down.

Refusals assert the simulator received nothing; everything runs against the real
runner and the simulator over loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from harbor_confluence.errors import InputError, ManifestError
from harbor_confluence.pipeline.documents import MAX_DOCUMENT_DEPTH, MAX_INPUT_DEPTH, loads_json
from harbor_confluence.pipeline.executor import Port, default_manifest_path, default_policy_path
from harbor_confluence.pipeline.manifest import Action, load_manifest, manifest_from_data
from harbor_confluence.pipeline.policy import load_policy, policy_from_data
from harbor_confluence.pipeline.request import Target, URLRefused
from harbor_confluence.pipeline.validation import InputValidator, UnknownAction
from harbor_confluence.secrets.auth import NoCredential
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_API_TOKEN,
    DEFAULT_EMAIL,
    ENV_ACCESS_TOKEN,
    ENV_API_TOKEN,
    ENV_EMAIL,
    Simulator,
)
from tests.conftest import API_TOKEN, EMAIL, ROOT, CliResult

PAGE = "98305"  # a seeded page
DEEP = 100_000


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_json(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def manifest_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(default_manifest_path().read_text())
    return data


# -- finding 1: integral floats go out as integers -------------------------------------------


def test_finding1_integral_float_sent_as_int(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator
) -> None:
    data = {"path": {"page_id": PAGE, "version_number": 1.0}}
    result = cli("run", "get-page-version", "--input", json.dumps(data), "--json")
    assert result.code == 0, result.out + result.err
    assert sim.exchanges[-1].path == f"/wiki/api/v2/pages/{PAGE}/versions/1"


@pytest.mark.parametrize(("raw", "sent"), [("50.0", "50"), ("1e2", "100"), ("7", "7")])
def test_finding1_integral_float_query_sent_as_int(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator, raw: str, sent: str
) -> None:
    result = cli("run", "search-pages", "--input", '{"query":{"limit":' + raw + "}}", "--json")
    assert result.code == 0, result.out + result.err
    assert sim.exchanges[-1].query == f"limit={sent}"


def test_finding1_integral_float_in_body_sent_as_int(port: Port, sim: Simulator) -> None:
    body = {"body": {"representation": "storage", "value": "<p>new</p>"}, "expected_version": 1.0}
    result = port.call("update-page", {"path": {"id": PAGE}, "body": body})
    assert result.outcome == "held" and result.ticket
    ticket = port.ticket(result.ticket)
    assert ticket is not None and ticket.body is not None
    sent = json.loads(ticket.body)
    assert sent["version"]["number"] == 2 and isinstance(sent["version"]["number"], int)
    assert b"2.0" not in ticket.body
    assert [e.method for e in sim.exchanges] == ["GET"]  # only the read; nothing written


def test_finding1_integral_floats_nested_and_only_where_integer() -> None:
    action = Action.model_validate(
        {
            "name": "nested-numbers",
            "description": "d",
            "method": "POST",
            "route": "/wiki/api/v2/things",
            "requestBodyMode": "json",
            "parameters": {
                "body": {
                    "type": "object",
                    "$defs": {"count": {"type": "integer"}},
                    "properties": {
                        "rows": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"n": {"type": "integer"}, "x": {"type": "number"}},
                            },
                        },
                        "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {}]},
                        "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "ref": {"$ref": "#/$defs/count"},
                        "tags": {
                            "type": "object",
                            "patternProperties": {"^n_": {"type": "integer"}},
                            "additionalProperties": {"type": "number"},
                        },
                    },
                }
            },
            "summary": {"fields": {"id": "id"}},
        }
    )
    data = {
        "body": {
            "rows": [{"n": 2.0, "x": 2.0}, {"n": 3}],
            "pair": [4.0, 5.0],
            "either": 6.0,
            "ref": 7.0,
            "tags": {"n_a": 8.0, "other": 9.0},
        }
    }
    original = json.dumps(data)
    clean = InputValidator(action).validate(data)
    body = clean["body"]
    assert json.dumps(body, sort_keys=True) == json.dumps(
        {
            "either": 6,
            "pair": [4, 5.0],
            "ref": 7,
            "rows": [{"n": 2, "x": 2.0}, {"n": 3}],
            "tags": {"n_a": 8, "other": 9.0},
        },
        sort_keys=True,
    )
    assert json.dumps(data) == original  # the caller's input is not modified


def test_finding1_non_integral_float_is_still_refused(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator
) -> None:
    result = cli("run", "search-pages", "--input", '{"query":{"limit":1.5}}', "--json")
    assert result.code == 2
    [violation] = result.json()["error"]["violations"]
    assert violation["field"] == "query.limit" and violation["rule"] == "type"
    assert sim.request_count == 0


# -- finding 2: deep nesting is refused with a clear error, never a RecursionError ----------


def test_finding2_deep_input_exits_2(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator
) -> None:
    result = cli("run", "search-pages", "--input", deep_json(DEEP), "--json")
    assert result.code == 2, result.out
    error = result.json()["error"]
    assert error["code"] == "invalid_input" and error["rule"] == "maxDepth"
    assert f"more than {MAX_INPUT_DEPTH} levels" in error["message"]
    assert "RecursionError" not in result.out + result.err
    text = cli("run", "search-pages", "--input", "-", stdin="[" * DEEP + "]" * DEEP)
    assert text.code == 2 and "[maxDepth]" in text.err and "--input" not in text.err
    assert sim.request_count == 0


def test_finding2_depth_limit_is_exact(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator
) -> None:
    # {"body": ...} with the whole input at the limit: refused by the schema, not the cap.
    at_limit = json.dumps({"body": nested(MAX_INPUT_DEPTH - 1)})
    over = json.dumps({"body": nested(MAX_INPUT_DEPTH)})
    ok = cli("run", "create-page", "--input", at_limit, "--json")
    assert ok.code == 2 and "maxDepth" not in {v["rule"] for v in ok.json()["error"]["violations"]}
    refused = cli("run", "create-page", "--input", over, "--json")
    assert refused.code == 2 and refused.json()["error"]["rule"] == "maxDepth"
    with pytest.raises(InputError) as info:  # the same limit for Python callers
        InputValidator(load_manifest(default_manifest_path()).action("create-page")).validate(
            {"body": nested(MAX_INPUT_DEPTH)}
        )
    assert [v.rule for v in info.value.violations] == ["maxDepth"]
    assert sim.request_count == 0


def test_finding2_deep_python_input_is_refused(port: Port, sim: Simulator) -> None:
    with pytest.raises(InputError) as info:
        port.call("create-page", {"body": nested(DEEP)})
    [violation] = info.value.violations
    assert violation.rule == "maxDepth" and violation.field.startswith("body.a.a")
    assert sim.request_count == 0


def test_finding2_deep_manifest_json_and_yaml(
    cli: Callable[..., CliResult], tmp_path: Path, home: Path
) -> None:
    as_json = tmp_path / "deep.json"
    as_json.write_text(deep_json(DEEP))
    result = cli("manifest", "validate", str(as_json), "--json")
    assert result.code == 2, result.out
    [problem] = result.json()["error"]["problems"]
    assert f"more than {MAX_DOCUMENT_DEPTH} levels" in problem
    as_yaml = tmp_path / "deep.yaml"
    as_yaml.write_text("a: " + "[" * DEEP + "]" * DEEP + "\n")
    result = cli("manifest", "validate", str(as_yaml), "--json")
    assert result.code == 2 and "levels deep" in result.json()["error"]["problems"][0]
    block = tmp_path / "block.yaml"  # block style, under libyaml's own cap
    block.write_text("".join("  " * i + "k:\n" for i in range(150)) + "  " * 150 + "v\n")
    result = cli("manifest", "validate", str(block), "--json")
    assert result.code == 2 and "nests 150 levels deep" in result.json()["error"]["problems"][0]


def test_finding2_yaml_aliases_count_toward_depth(tmp_path: Path) -> None:
    lines = ["a0: &a0 " + "[" * 10 + "1" + "]" * 10]
    lines += [f"a{i}: &a{i} " + "[" * 10 + f"*a{i - 1}" + "]" * 10 for i in range(1, 12)]
    doc = tmp_path / "aliases.yaml"
    doc.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match="aliases counted out"):
        load_manifest(doc)


def test_finding2_deep_policy(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator, tmp_path: Path
) -> None:
    policy = tmp_path / "deep.json"
    policy.write_text(deep_json(DEEP))
    result = cli("run", "search-pages", "--policy", str(policy), "--json")
    assert result.code == 2, result.out
    assert "levels deep" in result.json()["error"]["problems"][0]
    assert sim.request_count == 0


def test_finding2_deep_catalog_import(
    cli: Callable[..., CliResult], home: Path, tmp_path: Path
) -> None:
    doc = tmp_path / "hub.json"
    doc.write_text(deep_json(DEEP))
    result = cli("catalog", "import", str(doc), "--yes", "--json")
    assert result.code == 2, result.out
    assert "levels deep" in result.json()["error"]["problems"][0]
    assert not (home / "port").exists()


def test_finding2_loads_json_for_the_node() -> None:
    with pytest.raises(InputError) as info:
        loads_json(b'{"input":' + deep_json(DEEP).encode() + b"}", "request", field="body")
    [violation] = info.value.violations
    assert (violation.field, violation.rule) == ("body", "maxDepth")
    assert info.value.exit_code == 2
    with pytest.raises(InputError, match=r"body: is not valid JSON: .* \[json\]"):
        loads_json(b"{nope", "request", field="body")
    with pytest.raises(InputError, match="NaN is not a JSON number"):
        loads_json('{"limit": NaN}', "request")
    assert loads_json(b'{"a": ["[", "{"]}', "request") == {"a": ["[", "{"]}
    # brackets inside strings do not count toward the depth
    assert loads_json(json.dumps({"s": "[" * 1000}), "request", 2) == {"s": "[" * 1000}


def test_finding2_json_scan_is_linear_on_hostile_text() -> None:
    hostile = '"' + '\\"[' * 2_000_000  # one unterminated string full of escaped quotes
    start = time.monotonic()
    with pytest.raises(InputError):
        loads_json(hostile, "request")
    assert time.monotonic() - start < 5


def test_finding2_lone_surrogates_and_nan_are_refused(port: Port, sim: Simulator) -> None:
    with pytest.raises(InputError) as info:
        port.call("create-page", {"body": {"spaceId": "65538", "title": "bad \ud800 text"}})
    [violation] = info.value.violations
    assert (violation.field, violation.rule) == ("body.title", "encoding")
    with pytest.raises(InputError) as info:
        port.call("search-pages", {"query": {"limit": float("nan")}})
    assert [(v.field, v.rule) for v in info.value.violations] == [("query.limit", "type")]
    assert sim.request_count == 0


# -- finding 3: regular expressions run in linear time (RE2) ---------------------------------


def evil_policy(pattern: str) -> dict[str, Any]:
    return {
        "version": 1,
        "rules": [
            {
                "name": "titles-of-as",
                "actions": ["search-pages"],
                "when": {"properties": {"query": {"properties": {"title": {"pattern": pattern}}}}},
                "decision": "deny",
            },
            {"name": "reads-auto", "kind": "read", "decision": "auto"},
        ],
    }


@pytest.mark.timeout(60)
def test_finding3_policy_pattern_cannot_hang_the_decision(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(evil_policy("^(a+)+$")))
    start = time.monotonic()
    hostile = json.dumps({"query": {"title": "a" * 40 + "!", "limit": 1}})
    result = cli("run", "search-pages", "--input", hostile, "--policy", str(policy), "--json")
    assert time.monotonic() - start < 10
    assert result.code == 0, result.out  # no match: the next rule decides
    denied = json.dumps({"query": {"title": "a" * 40}})
    result = cli("run", "search-pages", "--input", denied, "--policy", str(policy), "--json")
    assert result.code == 3 and result.json()["error"]["rule"] == "titles-of-as"
    assert sim.request_count == 1


@pytest.mark.timeout(60)
def test_finding3_manifest_pattern_cannot_hang_validation(port: Port, sim: Simulator) -> None:
    data = manifest_data()
    search = next(a for a in data["actions"] if a["name"] == "search-pages")
    search["parameters"]["query"]["properties"]["title"]["pattern"] = "^(a+)+$"
    manifest = manifest_from_data(data, "evil.yaml")
    hostile = "a" * 40 + "!"
    with Port(manifest, port.policy, home=port.home, base_url=sim.url) as evil:
        start = time.monotonic()
        with pytest.raises(InputError) as info:
            evil.call("search-pages", {"query": {"title": hostile}})
        assert time.monotonic() - start < 10
    [violation] = info.value.violations
    assert (violation.field, violation.rule) == ("query.title", "pattern")
    # the message is exactly jsonschema's own for a pattern violation
    [expected] = jsonschema.Draft202012Validator({"pattern": "^a$"}).iter_errors("b")
    assert expected.message == "'b' does not match '^a$'"
    assert violation.message == f"{hostile!r} does not match '^(a+)+$'"
    assert sim.request_count == 0


@pytest.mark.parametrize(
    ("pattern", "why"),
    [("^(a)\\1$", "invalid escape sequence"), ("^(?=a)", "invalid perl operator")],
)
def test_finding3_policy_pattern_re2_cannot_run_is_refused(
    cli: Callable[..., CliResult],
    cli_env: dict[str, str],
    sim: Simulator,
    tmp_path: Path,
    pattern: str,
    why: str,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(evil_policy(pattern)))
    result = cli("run", "search-pages", "--policy", str(policy), "--json")
    assert result.code == 2, result.out
    [problem] = result.json()["error"]["problems"]
    assert problem.startswith("rule 'titles-of-as' field rules.0.when:")
    assert "properties.query.properties.title.pattern" in problem
    assert "RE2" in problem and why in problem
    assert sim.request_count == 0


def test_finding3_manifest_pattern_re2_cannot_run_is_refused(
    cli: Callable[..., CliResult], tmp_path: Path, home: Path
) -> None:
    data = manifest_data()
    get_page = next(a for a in data["actions"] if a["name"] == "get-page")
    get_page["parameters"]["path"]["properties"]["id"]["pattern"] = "^(?!0)[0-9]+$"
    path = tmp_path / "lookaround.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli("manifest", "validate", str(path), "--json")
    assert result.code == 2
    problems = result.json()["error"]["problems"]
    assert any(
        "action 'get-page'" in p and "field parameters.path" in p and "RE2" in p for p in problems
    ), problems


def test_finding3_pattern_properties_use_re2(home: Path) -> None:
    schema = {
        "properties": {"body": {"patternProperties": {"^(a|aa)+$": {"type": "integer"}}}},
    }
    policy = policy_from_data(
        {"rules": [{"name": "p", "when": schema, "decision": "deny"}]}, "policy.yaml"
    )
    action = load_manifest(default_manifest_path()).action("create-page")
    start = time.monotonic()
    decision = policy.decide(action, {"body": {"a" * 5000 + "!": "x", "aa": 1}})
    assert time.monotonic() - start < 5
    assert decision.rule == "p"  # "aa" matched and is an integer; the hostile key is not
    assert policy.decide(action, {"body": {"aa": "text"}}).rule == "default-deny"
    with pytest.raises(ManifestError, match="RE2"):
        policy_from_data(
            {"rules": [{"name": "q", "when": {"patternProperties": {"(?<=x)": {}}},
                        "decision": "deny"}]},
            "policy.yaml",
        )  # fmt: skip


def test_finding3_default_documents_still_load() -> None:
    manifest = load_manifest(default_manifest_path())
    assert load_policy(default_policy_path()).static_decision(manifest.action("get-page"))


# -- finding 7: the base URL is an origin, checked completely --------------------------------


@pytest.mark.parametrize(
    ("base", "rule"),
    [
        ("http://127.0.0.1:99999", "port"),
        ("http://127.0.0.1:0", "port"),
        ("http://127.0.0.1:", "port"),
        ("https://acme.atlassian.net:+443", "port"),
        (" https://acme.atlassian.net", "whitespace"),
        ("https://acme.atlassian.net\t", "whitespace"),
        ("https://acme.atlassian.net/\x00", "whitespace"),
        ("https://acme .atlassian.net", "whitespace"),
        ("http://127.0.0.1:19001/%2e%2e/x", "path"),
        ("https://acme.atlassian.net/x", "path"),
        ("https://acme.atlassian.net/wiki/../x", "path"),
        ("https://api.atlassian.com/ex/confluence/abc/../x", "path"),
        ("https://api.atlassian.com/ex/confluence/", "path"),
        ("https://acme.atlassian.net\\@evil.example", "userinfo"),
        ("https://user:pw@acme.atlassian.net", "userinfo"),
        ("https://acme.atlassian.net/?", "query"),
        ("https://acme.atlassian.net#x", "query"),
        ("ftp://acme.atlassian.net", "scheme"),
        ("acme.atlassian.net", "scheme"),
        ("http://acme.atlassian.net", "scheme"),
        ("https://", "host"),
        ("https://acme..atlassian.net", "host"),
        ("https://-acme.atlassian.net", "host"),
        ("https://acme_site.atlassian.net", "host"),
        ("https://127.1", "host"),
        ("https://999.0.0.1", "host"),
        ("http://[fe80::1%25eth0]:80", "host"),
        ("https://[::1", "host"),
        ("https://xn--caf-dma.example/ünïcode", "host"),
    ],
)
def test_finding7_base_url_rules(base: str, rule: str) -> None:
    with pytest.raises(URLRefused) as info:
        Target.parse(base)
    assert info.value.exit_code == 2 and info.value.code == "invalid_url"
    assert str(info.value).endswith(f"[{rule}]")
    assert "pw" not in str(info.value)  # user info is never echoed


@pytest.mark.parametrize(
    ("base", "origin", "prefix"),
    [
        ("https://acme.atlassian.net", "https://acme.atlassian.net", ""),
        ("HTTPS://ACME.atlassian.net/", "https://acme.atlassian.net", ""),
        ("https://acme.atlassian.net/wiki/", "https://acme.atlassian.net", ""),
        ("https://acme.atlassian.net:8443", "https://acme.atlassian.net:8443", ""),
        ("http://127.0.0.1:65535", "http://127.0.0.1:65535", ""),
        ("http://localhost:1", "http://localhost:1", ""),
        ("http://[::1]:9", "http://[::1]:9", ""),
        ("https://10.0.0.7", "https://10.0.0.7", ""),
        (
            "https://api.atlassian.com/ex/confluence/0a1b2c3d-aaaa-bbbb-cccc-123456789abc",
            "https://api.atlassian.com",
            "/ex/confluence/0a1b2c3d-aaaa-bbbb-cccc-123456789abc",
        ),
        (
            "http://127.0.0.1:8089/ex/confluence/abc123/wiki",
            "http://127.0.0.1:8089",
            "/ex/confluence/abc123",
        ),
    ],
)
def test_finding7_good_base_urls(base: str, origin: str, prefix: str) -> None:
    target = Target.parse(base)
    assert (target.origin, target.prefix) == (origin, prefix)


def test_finding7_config_set_refuses_and_stores_nothing(
    cli: Callable[..., CliResult], home: Path
) -> None:
    for value, rule in (("http://127.0.0.1:99999", "port"), (" http://127.0.0.1:8089", "space")):
        result = cli("config", "set", "base-url", value, "--json")
        assert result.code == 2, result.out
        error = result.json()["error"]
        assert error["code"] == "invalid_url" and "base-url" in error["message"]
        assert rule in error["message"]
    assert cli("config", "get", "base-url", "--json").json()["value"] is None
    assert cli("config", "set", "identity-url", "http://127.0.0.1:8089/x").code == 2


def test_finding7_encoded_dot_segments_never_sent(
    cli: Callable[..., CliResult],
    cli_env: dict[str, str],
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONFLUENCE_URL", sim.url + "/%2e%2e/x")
    result = cli("run", "get-page", "--input", json.dumps({"path": {"id": PAGE}}), "--json")
    assert result.code == 2, result.out
    message = result.json()["error"]["message"]
    assert message.startswith("CONFLUENCE_URL") and message.endswith("[path]")
    held = json.dumps({"body": {"spaceId": "65538", "title": "never held"}})
    assert cli("run", "create-page", "--input", held).code == 2  # not held either
    assert sim.request_count == 0


def test_finding7_port_argument_goes_through_the_same_check(sim: Simulator, home: Path) -> None:
    cred = Credential.basic(EMAIL, API_TOKEN, "t")
    bad = sim.url.replace(str(sim.port), "99999")
    with (
        Port.load(home=home, base_url=bad, credential=cred) as port,
        pytest.raises(URLRefused, match=r"^base_url .*\[port\]$"),
    ):
        port.call("search-pages", {"query": {"limit": 1}})
    assert sim.request_count == 0


# -- finding 8: no credential, nothing sent -----------------------------------------------------


def test_finding8_no_credential_stops_before_sending(
    cli: Callable[..., CliResult], home: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFLUENCE_URL", sim.url)
    result = cli("run", "search-pages", "--input", '{"query": {"limit": 1}}', "--json")
    assert result.code == 1, result.out
    error = result.json()["error"]
    assert error["code"] == "no_credential" and "harbor-confluence token set" in error["message"]
    text = cli("run", "get-page", "--input", json.dumps({"path": {"id": PAGE}}))
    assert text.code == 1 and "harbor-confluence token set" in text.err
    assert "HTTP 401" not in text.out + text.err
    assert sim.request_count == 0


def test_finding8_held_without_credential_runs_only_with_one(
    cli: Callable[..., CliResult], home: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFLUENCE_URL", sim.url)
    body = json.dumps({"body": {"spaceId": "65538", "title": "Held without a credential"}})
    held = cli("run", "create-page", "--input", body, "--json")
    assert held.code == 4, held.out  # holding sends nothing, so it needs no credential
    ticket = held.json()["ticket"]
    approved = cli("queue", "approve", ticket, "--as", "alice", "--json")
    assert approved.code == 1 and approved.json()["error"]["code"] == "no_credential"
    status = cli("queue", "status", ticket, "--json")
    # A runner that cannot send refuses before it records the approval.
    assert status.code == 4 and status.json()["state"] == "pending"
    assert status.json()["approvals"] == 0
    assert sim.request_count == 0
    monkeypatch.setenv("CONFLUENCE_EMAIL", EMAIL)
    monkeypatch.setenv("CONFLUENCE_API_TOKEN", API_TOKEN)
    ran = cli("queue", "approve", ticket, "--as", "alice", "--json")
    assert ran.code == 0 and ran.json()["state"] == "succeeded"
    assert [e.method for e in sim.exchanges] == ["POST"]


def test_finding8_python_api(sim: Simulator, home: Path) -> None:
    with Port.load(home=home, base_url=sim.url) as port:
        with pytest.raises(NoCredential):
            port.call("search-pages", {"query": {"limit": 1}})
        held = port.call("create-page", {"body": {"spaceId": "65538", "title": "t"}})
        assert held.outcome == "held" and held.ticket
        with pytest.raises(NoCredential):
            port.execute(held.ticket, operator="alice")  # refused before the claim
        ticket = port.ticket(held.ticket)
        assert ticket is not None and ticket.state == "pending"
    assert sim.request_count == 0


# -- finding 9: exit codes agree with the README -----------------------------------------------


def test_finding9_unknown_action_exits_2_with_suggestions(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator
) -> None:
    result = cli("run", "get-pgae", "--json")
    assert result.code == 2, result.out
    error = result.json()["error"]
    assert error["code"] == "unknown_action"
    assert error["message"].startswith("unknown action 'get-pgae'; did you mean: get-page")
    assert "get-page" in error["suggestions"] and len(error["suggestions"]) <= 3
    text = cli("describe", "get-pgae")
    assert text.code == 2
    assert text.err.startswith("error: unknown action 'get-pgae'; did you mean: get-page")
    assert "search-content" not in text.err  # not the whole list of actions
    none = cli("run", "zzzz")
    assert none.code == 2 and "harbor-confluence actions" in none.err
    assert sim.request_count == 0


def test_finding9_unknown_action_error_is_input_error(port: Port) -> None:
    with pytest.raises(UnknownAction) as info:
        port.call("serch-pages", {})
    assert isinstance(info.value, InputError)
    assert info.value.suggestions[0] == "search-pages"  # closest first


def test_finding9_queue_exit_codes_follow_the_table(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator
) -> None:
    def hold(title: str) -> str:
        body = json.dumps({"body": {"spaceId": "65538", "title": title}})
        held = cli("run", "create-page", "--input", body, "--json")
        assert held.code == 4
        ticket: str = held.json()["ticket"]
        return ticket

    lost = hold("outcome lost")
    sim.fail_next(1, 502)  # the answer is lost: the ticket is unknown
    approved = cli("queue", "approve", lost, "--as", "alice", "--json")
    assert approved.json()["state"] == "unknown"
    assert approved.code == 4  # waiting for an operator's `queue resolve`, as status says
    assert cli("queue", "status", lost).code == 4
    again = cli("queue", "approve", lost, "--as", "bob", "--json")
    assert again.code == 3 and again.json()["error"]["code"] == "not_pending"
    assert cli("queue", "run", lost, "--as", "alice").code == 3
    resolved = cli("queue", "resolve", lost, "--outcome", "failed", "--as", "alice")
    assert resolved.code == 0
    assert cli("queue", "status", lost).code == 5

    failed = hold("fails")
    sim.fail_next(1, 400)
    assert cli("queue", "approve", failed, "--as", "alice").code == 5
    done = hold("succeeds")
    assert cli("queue", "approve", done, "--as", "alice").code == 0
    rejected = hold("rejected")
    assert cli("queue", "reject", rejected, "--as", "alice", "--reason", "no").code == 0
    assert cli("queue", "approve", rejected, "--as", "alice").code == 3
    assert cli("queue", "status", rejected).code == 3


# -- finding 10: the simulator's credential and options are documented ------------------------


def test_finding10_sim_help_describes_every_option(
    cli: Callable[..., CliResult], capsys: pytest.CaptureFixture[str]
) -> None:
    from harbor_confluence.cli import build_parser

    sim_parser = build_parser()._subparsers._group_actions[0].choices["sim"]  # type: ignore[union-attr]
    for action in sim_parser._actions:
        assert action.help, f"sim option {action.option_strings} has no help"
    with pytest.raises(SystemExit):
        cli("sim", "--help")
    out = capsys.readouterr().out
    for fact in (DEFAULT_EMAIL, DEFAULT_API_TOKEN, DEFAULT_ACCESS_TOKEN, ENV_EMAIL,
                 ENV_API_TOKEN, ENV_ACCESS_TOKEN, "--host", "--port", "--extra-pages"):  # fmt: skip
        assert fact in out, fact


def test_finding10_readme_documents_the_simulator_credential() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    for fact in (DEFAULT_EMAIL, DEFAULT_API_TOKEN, DEFAULT_ACCESS_TOKEN, ENV_EMAIL,
                 ENV_API_TOKEN, ENV_ACCESS_TOKEN, "--port", "--host", "--extra-pages"):  # fmt: skip
        assert fact in setup, fact


def test_finding10_documented_credential_is_the_one_accepted(home: Path) -> None:
    import httpx

    with Simulator() as sim:  # the defaults the README documents
        ok = httpx.get(
            f"{sim.url}/wiki/api/v2/spaces?limit=1", auth=(DEFAULT_EMAIL, DEFAULT_API_TOKEN)
        )
        bearer = httpx.get(
            f"{sim.url}/wiki/api/v2/spaces?limit=1",
            headers={"Authorization": f"Bearer {DEFAULT_ACCESS_TOKEN}"},
        )
        wrong = httpx.get(f"{sim.url}/wiki/api/v2/spaces?limit=1", auth=(DEFAULT_EMAIL, "nope"))
    assert (ok.status_code, bearer.status_code, wrong.status_code) == (200, 200, 401)


# -- finding 12: the contract check cannot switch itself off under CI ------------------------------


def run_pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    tiny = tmp_path / "tests_tiny"
    tiny.mkdir(exist_ok=True)
    (tiny / "test_tiny.py").write_text("def test_nothing():\n    assert True\n")
    dropped = ("HARBOR_REQUIRE_CONTRACT", "CONFLUENCE_OPENAPI_DIR", "PYTEST_ADDOPTS")
    full_env = {k: v for k, v in os.environ.items() if k not in dropped}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "--rootdir", str(ROOT), str(tiny / "test_tiny.py")],
        cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_finding12_missing_contract_fails_the_session_under_ci(tmp_path: Path) -> None:
    empty = tmp_path / "no-documents"
    empty.mkdir()
    proc = run_pytest(tmp_path, CONFLUENCE_OPENAPI_DIR=str(empty), HARBOR_REQUIRE_CONTRACT="1")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "HARBOR_REQUIRE_CONTRACT=1 but the contract check cannot run" in output
    assert str(empty / "confluence-cloud-v2.openapi.json") in output
    assert "1 passed" not in output


def test_finding12_missing_contract_says_why_it_is_off(tmp_path: Path) -> None:
    empty = tmp_path / "no-documents"
    empty.mkdir()
    proc = run_pytest(tmp_path, CONFLUENCE_OPENAPI_DIR=str(empty))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "contract: OFF, exchanges are not checked" in output
    assert "1 passed" in output
