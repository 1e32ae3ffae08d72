"""Following listings across pages (v2 cursors, v1 cursors and start), within hard caps."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harbor_confluence.errors import ConfigError
from harbor_confluence.pipeline.executor import Port, default_manifest_path
from harbor_confluence.pipeline.manifest import manifest_from_data
from harbor_confluence.pipeline.pagination import HARD_MAX_ITEMS, HARD_MAX_REQUESTS, paging_mode
from harbor_confluence.pipeline.policy import policy_from_data
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL, CliResult

# A v1 listing that pages by start/limit; not in the packaged catalog, so added here.
V1_CONTENT = {
    "name": "list-content-v1",
    "description": "v1 content listing (start/limit paging).",
    "method": "GET",
    "route": "/wiki/rest/api/content",
    "scopes": ["read:confluence-content.summary"],
    "defaultPolicy": "auto",
    "parameters": {
        "query": {
            "type": "object",
            "properties": {
                "spaceKey": {"type": "string", "pattern": "^[A-Za-z0-9~_]{1,255}$"},
                "start": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100},
            },
        }
    },
    "summary": {"items": "results", "fields": {"id": "id", "title": "title"}},
}


def all_search_ids(port: Port) -> list[str]:
    """Every page id, walked by hand one cursor at a time (the reference)."""
    ids: list[str] = []
    query: dict[str, Any] = {"limit": 100}
    for _ in range(50):
        result = port.call("search-pages", {"query": query})
        assert result.ok
        ids.extend(item["id"] for item in result.summary)
        if not result.next_cursor:
            return ids
        query["cursor"] = result.next_cursor
    raise AssertionError("listing did not end")


def test_walks_every_page_once(port: Port, sim: Simulator) -> None:
    expected = all_search_ids(port)
    sim.clear()
    walk = port.paginate("search-pages", {"query": {"limit": 7}})
    ids = [item["id"] for item in walk]
    assert ids == expected and len(ids) > 20
    report = walk.report
    assert report.complete and report.stopped_at is None and report.ok
    assert report.requests == sim.request_count == -(-len(ids) // 7)
    assert report.items == len(ids)
    assert report.message().startswith("complete:")


def test_stops_at_max_items(port: Port, sim: Simulator) -> None:
    walk = port.paginate("search-pages", {"query": {"limit": 5}}, max_items=12)
    items = walk.items()
    assert len(items) == 12
    assert walk.report.stopped_at == "max_items" and not walk.report.complete
    assert walk.report.requests == 3 == sim.request_count
    # 3 items of the third page were dropped: no cursor resumes exactly there
    assert walk.report.next_cursor is None
    assert "stopped at the cap (max_items)" in walk.report.message()


def test_exact_fit_is_still_reported_as_capped_when_more_remain(port: Port) -> None:
    walk = port.paginate("search-pages", {"query": {"limit": 5}}, max_items=10)
    assert len(walk.items()) == 10
    assert walk.report.stopped_at == "max_items"
    assert walk.report.next_cursor  # page boundary: the cursor continues exactly


def test_stops_at_max_requests_and_resumes(port: Port, sim: Simulator) -> None:
    walk = port.paginate("search-pages", {"query": {"limit": 4}}, max_requests=2)
    first = [item["id"] for item in walk]
    assert len(first) == 8 and sim.request_count == 2
    report = walk.report
    assert report.stopped_at == "max_requests" and report.next_cursor
    rest = port.paginate("search-pages", {"query": {"limit": 4, "cursor": report.next_cursor}})
    following = [item["id"] for item in rest]
    assert following and not set(first) & set(following)
    assert first + following == all_search_ids(port)


def test_v1_search_follows_its_cursor(port: Port, sim: Simulator) -> None:
    query = {"spaces": ["ENG"], "type": "page", "limit": 3}
    whole = port.call("search-content", {"query": {**query, "limit": 100}})
    assert whole.ok and (whole.count or 0) > 3
    walk = port.paginate("search-content", {"query": query})
    assert [i["id"] for i in walk] == [i["id"] for i in whole.summary]
    assert walk.report.complete and walk.report.requests == -(-(whole.count or 0) // 3)


@pytest.fixture
def v1_port(sim: Simulator, home: Path) -> Iterator[Port]:
    raw = yaml.safe_load(default_manifest_path().read_text())
    raw["actions"].append(V1_CONTENT)
    manifest = manifest_from_data(raw, "test-manifest")
    policy = policy_from_data(
        {"rules": [{"name": "reads", "kind": "read", "decision": "auto"}]}, "p"
    )
    with Port.load(
        manifest, policy, home=home, base_url=sim.url,
        credential=Credential.basic(EMAIL, API_TOKEN, "t"),
    ) as p:  # fmt: skip
        yield p


def test_v1_start_paging(v1_port: Port, sim: Simulator) -> None:
    assert paging_mode(v1_port.action("list-content-v1")) == "start"
    whole = v1_port.call("list-content-v1", {"query": {"spaceKey": "ENG", "limit": 100}})
    assert whole.ok and (whole.count or 0) > 4
    sim.clear()
    walk = v1_port.paginate("list-content-v1", {"query": {"spaceKey": "ENG", "limit": 4}})
    assert [i["id"] for i in walk] == [i["id"] for i in whole.summary]
    assert walk.report.complete
    starts = [e.query for e in sim.exchanges]
    assert starts[0] == "limit=4&spaceKey=ENG"
    assert starts[1] == "limit=4&spaceKey=ENG&start=4"


def test_v1_start_paging_cap_reports_next_start(v1_port: Port) -> None:
    walk = v1_port.paginate(
        "list-content-v1", {"query": {"spaceKey": "ENG", "limit": 2}}, max_requests=1
    )
    assert len(walk.items()) == 2
    assert walk.report.stopped_at == "max_requests" and walk.report.next_start == 2


def test_an_error_ends_the_walk_and_is_reported(port: Port, sim: Simulator) -> None:
    walk = port.paginate("search-pages", {"query": {"limit": 5}})
    got = [next(walk) for _ in range(5)]
    assert len(got) == 5
    sim.fail_next(1, status=500)
    rest = list(walk)
    assert rest == []
    report = walk.report
    assert not report.ok and report.status == 500 and not report.complete
    assert report.error and report.error["type"] == "upstream"


def test_a_held_page_ends_the_walk(sim: Simulator, home: Path) -> None:
    policy = policy_from_data(
        {"rules": [{"name": "hold", "actions": ["search-pages"], "decision": "require_approval"}]},
        "p",
    )
    with Port.load(policy=policy, home=home, base_url=sim.url) as port:
        walk = port.paginate("search-pages", {"query": {"limit": 5}})
        assert walk.items() == []
    assert walk.report.error and walk.report.error["type"] == "held"
    assert sim.request_count == 0


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("get-page", {}, "not a paged listing"),
        ("create-page", {}, "not a paged listing"),
        ("search-pages", {"max_items": HARD_MAX_ITEMS + 1}, "max_items must be"),
        ("search-pages", {"max_items": 0}, "max_items must be"),
        ("search-pages", {"max_requests": HARD_MAX_REQUESTS + 1}, "max_requests must be"),
    ],
)
def test_refusals(port: Port, sim: Simulator, name: str, kwargs: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        port.paginate(name, {}, **kwargs)
    assert sim.request_count == 0


def test_every_catalog_listing_pages(port: Port) -> None:
    """Every action with a cursor is a read; the walk mode is read off the manifest."""
    modes = {a.name: paging_mode(a) for a in port.manifest.actions}
    assert modes["search-content"] == "cursor" and modes["list-spaces"] == "cursor"
    assert modes["get-page"] is None and modes["update-page"] is None
    assert sum(1 for m in modes.values() if m) >= 30
    for tree in ("list-page-descendants", "list-folder-direct-children", "list-folder-descendants",
                 "list-whiteboard-direct-children", "list-database-direct-children"):  # fmt: skip
        assert modes[tree] == "cursor", tree
    assert modes["list-templates"] == "start"  # v1: start/limit
    assert modes["get-page-by-title"] is None and modes["get-users"] is None


# -- the CLI -------------------------------------------------------------------------------


def test_cli_run_all_complete(cli: Callable[..., CliResult], cli_env: dict[str, str]) -> None:
    result = cli(
        "run", "list-spaces", "--all", "--json", "--input", json.dumps({"query": {"limit": 1}})
    )
    assert result.code == 0, result.err
    payload = result.json()
    assert payload["complete"] is True and payload["ok"] is True
    assert payload["count"] == len(payload["items"]) == payload["requests"] > 1
    assert "stopped_at" not in payload and result.err == ""


def test_cli_run_all_reports_the_cap(
    cli: Callable[..., CliResult], cli_env: dict[str, str]
) -> None:
    result = cli(
        "run", "search-pages", "--all", "--max-requests", "2", "--input",
        json.dumps({"query": {"limit": 3}}),
    )  # fmt: skip
    assert result.code == 0
    payload = json.loads(result.out)
    assert payload["stopped_at"] == "max_requests" and payload["complete"] is False
    assert len(payload["items"]) == 6 and payload["next_cursor"]
    assert "stopped at the cap (max_requests)" in result.err


@pytest.mark.parametrize(
    "flag", [["--max-items", "0"], ["--max-requests", "201"], ["--max-items", "lots"]]
)
def test_cli_hard_caps(
    cli_env: dict[str, str], sim: Simulator, capsys: pytest.CaptureFixture[str], flag: list[str]
) -> None:
    from harbor_confluence.cli import main

    with pytest.raises(SystemExit) as info:  # argparse refuses before anything runs
        main(["run", "search-pages", "--all", *flag])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag[0]}" in err and ("hard cap" in err or "whole number" in err)
    assert sim.request_count == 0
