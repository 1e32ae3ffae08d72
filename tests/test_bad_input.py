"""The bad-input table: each gets a clear error naming the field, exit 2, and no request."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from harbor_confluence.sim import Simulator
from tests.conftest import CliResult

CASES: list[tuple[str, str, Any, str]] = [
    # (id, action, input, field named in the error)
    ("dotdot", "get-page", {"path": {"id": ".."}}, "path.id"),
    ("dot", "get-page", {"path": {"id": "."}}, "path.id"),
    ("traversal", "get-page", {"path": {"id": "../../admin"}}, "path.id"),
    ("slash", "get-page", {"path": {"id": "1/2"}}, "path.id"),
    ("encoded-dotdot", "get-page", {"path": {"id": "%2e%2e"}}, "path.id"),
    ("query-in-id", "get-page", {"path": {"id": "12?x=1"}}, "path.id"),
    ("crlf", "get-page", {"path": {"id": "12\r\nX-Injected: 1"}}, "path.id"),
    ("empty-id", "get-page", {"path": {"id": ""}}, "path.id"),
    ("unknown-query", "search-pages", {"query": {"expand": "body"}}, "query.expand"),
    ("limit-0", "search-pages", {"query": {"limit": 0}}, "query.limit"),
    ("limit-neg", "search-pages", {"query": {"limit": -1}}, "query.limit"),
    ("limit-251", "search-pages", {"query": {"limit": 251}}, "query.limit"),
    ("limit-abc", "search-pages", {"query": {"limit": "abc"}}, "query.limit"),
    ("limit-bool", "search-pages", {"query": {"limit": True}}, "query.limit"),
    ("status-enum", "search-pages", {"query": {"status": ["gone"]}}, "query.status.0"),
    ("body-type", "create-page", {"body": {"spaceId": 65538, "title": "t"}}, "body.spaceId"),
    ("body-missing", "create-page", {"body": {"title": "t"}}, "body.spaceId"),
    ("body-nested", "create-page",
     {"body": {"spaceId": "1", "title": "t", "body": {"representation": "wiki", "value": "x"}}},
     "body.body.representation"),
    ("title-10mb", "create-page", {"body": {"spaceId": "1", "title": "x" * (10 * 1024 * 1024)}},
     "body.title"),
    ("not-object", "search-pages", ["limit", 5], "input"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("action", "data", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_exits_2_and_sends_nothing(
    cli: Callable[..., CliResult],
    cli_env: dict[str, str],
    sim: Simulator,
    action: str,
    data: Any,
    field: str,
) -> None:
    result = cli("run", action, "--input", "-", "--json", stdin=json.dumps(data))
    assert result.code == 2, result.out
    error = result.json()["error"]
    assert error["code"] == "invalid_input"
    fields = [v["field"] for v in error["violations"]]
    assert field in fields
    assert all(v["rule"] and v["message"] for v in error["violations"])
    assert len(result.out) < 5000  # a 10 MB value is never echoed back
    assert sim.request_count == 0


def test_text_mode_error_names_field_and_rule(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator
) -> None:
    result = cli("run", "search-pages", "--input", '{"query": {"limit": 251}}')
    assert result.code == 2
    assert "query.limit" in result.err and "[maximum]" in result.err
    assert result.out == ""
    assert sim.request_count == 0


def test_malformed_json_input(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator
) -> None:
    result = cli("run", "search-pages", "--input", "{not json")
    assert result.code == 2 and "not valid JSON" in result.err
    assert sim.request_count == 0


def test_input_from_file(
    cli: Callable[..., CliResult], cli_env: dict[str, str], sim: Simulator, tmp_path: Any
) -> None:
    f = tmp_path / "in.json"
    f.write_text(json.dumps({"query": {"limit": 2}}))
    result = cli("run", "search-pages", "--input", f"@{f}", "--json")
    assert result.code == 0 and result.json()["count"] == 2
    missing = cli("run", "search-pages", "--input", f"@{tmp_path / 'nope.json'}")
    assert missing.code == 2 and "cannot read" in missing.err
