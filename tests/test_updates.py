"""Writes that cannot lose work: version = base + 1, review diffs, conflicts, page diffs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harbor_confluence.errors import InputError, PolicyDenied, ReadFailed
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.pipeline.policy import Policy, policy_from_data
from harbor_confluence.pipeline.updates import unified_diff
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL

PAGE = "98306"  # "Architecture Overview", several versions in the seed
ALL_AUTO: dict[str, Any] = {"rules": [{"name": "test-all-auto", "decision": "auto"}]}


def make_port(sim: Simulator, home: Path, policy: dict[str, Any] | None = None) -> Port:
    chosen: Policy | None = policy_from_data(policy, "test-policy") if policy else None
    return Port.load(
        policy=chosen,
        home=home,
        base_url=sim.url,
        credential=Credential.basic(EMAIL, API_TOKEN, "test"),
        requester="pytest",
    )


@pytest.fixture
def auto(sim: Simulator, home: Path) -> Iterator[Port]:
    with make_port(sim, home, ALL_AUTO) as p:
        yield p


def page(port: Port, page_id: str = PAGE) -> dict[str, Any]:
    got = port.call("get-page", {"path": {"id": page_id}, "query": {"body-format": "storage"}})
    assert got.ok, got.error
    summary: dict[str, Any] = got.summary
    return summary


def content(value: str) -> dict[str, Any]:
    return {"representation": "storage", "value": value}


def requests_of(sim: Simulator) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in sim.exchanges]


def sent_json(sim: Simulator, method: str) -> dict[str, Any]:
    (exchange,) = [e for e in sim.exchanges if e.method == method]
    body: dict[str, Any] = json.loads(exchange.request_body)
    return body


# -- version numbers -----------------------------------------------------------------------


def test_version_is_read_when_not_given(auto: Port, sim: Simulator) -> None:
    before = page(auto)
    sim.clear()
    result = auto.call("update-page", {"path": {"id": PAGE}, "body": {"body": content("<p>v</p>")}})
    assert result.ok, result.error
    assert requests_of(sim) == [
        ("GET", f"/wiki/api/v2/pages/{PAGE}"),
        ("PUT", f"/wiki/api/v2/pages/{PAGE}"),
    ]
    assert sent_json(sim, "PUT") == {
        "id": PAGE,
        "status": "current",
        "title": before["title"],  # kept from the read: the agent sent only content
        "spaceId": before["spaceId"],
        "body": content("<p>v</p>"),
        "version": {"number": before["version"] + 1},
    }
    assert result.summary["version"] == before["version"] + 1
    assert page(auto)["body"] == "<p>v</p>"


def test_expected_version_is_the_base(auto: Port, sim: Simulator) -> None:
    current = page(auto)["version"]
    result = auto.call(
        "update-page",
        {
            "path": {"id": PAGE},
            "body": {
                "title": "Architecture, revised",
                "body": content("<p>new</p>"),
                "expected_version": current,
                "version_message": "tidy up",
            },
        },
    )
    assert result.ok, result.error
    body = sent_json(sim, "PUT")
    assert body["version"] == {"number": current + 1, "message": "tidy up"}
    assert body["title"] == "Architecture, revised"
    assert "expected_version" not in body and "version_message" not in body


def test_stale_expected_version_is_a_conflict_and_overwrites_nothing(
    auto: Port, sim: Simulator
) -> None:
    before = page(auto)
    result = auto.call(
        "update-page",
        {"path": {"id": PAGE}, "body": {"body": content("<p>lost?</p>"), "expected_version": 1}},
    )
    assert not result.ok and result.status == 409
    error = result.error or {}
    assert error["type"] == "conflict"
    assert error["sent_version"] == 2 and error["based_on_version"] == 1
    assert error["current_version"] == before["version"]
    assert error["changed_by"] == before["versionAuthorId"]
    assert error["changed_at"] == before["versionCreatedAt"]
    assert f"expected_version={before['version']}" in error["message"]
    assert "nothing was overwritten" in error["message"]
    after = page(auto)
    assert (after["version"], after["body"]) == (before["version"], before["body"])


def test_retry_after_conflict_succeeds(auto: Port) -> None:
    failed = auto.call(
        "update-page",
        {"path": {"id": PAGE}, "body": {"body": content("<p>x</p>"), "expected_version": 1}},
    )
    current = (failed.error or {})["current_version"]
    retried = auto.call(
        "update-page",
        {"path": {"id": PAGE}, "body": {"body": content("<p>x</p>"), "expected_version": current}},
    )
    assert retried.ok and retried.summary["version"] == current + 1


def test_missing_resource_read_fails_and_nothing_is_written(auto: Port, sim: Simulator) -> None:
    with pytest.raises(ReadFailed) as info:
        auto.call("update-page", {"path": {"id": "999999999"}, "body": {"body": content("x")}})
    assert info.value.status == 404 and info.value.read == "get-page"
    assert info.value.to_dict()["code"] == "read_failed"
    assert requests_of(sim) == [("GET", "/wiki/api/v2/pages/999999999")]


# -- what the operator sees ----------------------------------------------------------------


def test_held_update_records_base_version_and_diff(port: Port, sim: Simulator) -> None:
    before = page(port)
    sim.clear()
    held = port.call(
        "update-page",
        {"path": {"id": PAGE}, "body": {"body": content(before["body"] + "\n<p>added</p>")}},
        requester="agent-a",
    )
    assert held.outcome == "held" and held.rule == "updates-review"
    assert requests_of(sim) == [("GET", f"/wiki/api/v2/pages/{PAGE}")]  # the read only
    ticket = port.ticket(held.ticket or "")
    assert ticket is not None
    review = ticket.review
    assert review["base_version"] == before["version"] and review["base_from"] == "read"
    assert review["new_version"] == before["version"] + 1
    assert review["stale"] is False
    assert review["diff"].startswith(f"--- current (v{before['version']})\n+++ proposed")
    assert "+<p>added</p>" in review["diff"]
    assert json.loads(ticket.body or b"")["version"] == {"number": before["version"] + 1}


def test_review_flags_a_stale_base(port: Port) -> None:
    prepared, decision = port.prepare(
        "update-page",
        {"path": {"id": PAGE}, "body": {"body": content("<p>x</p>"), "expected_version": 1}},
    )
    assert decision.outcome == "require_approval"
    assert prepared.review["stale"] is True and prepared.review["base_version"] == 1
    assert prepared.review["current_version"] > 1
    assert json.loads(prepared.body or b"")["version"]["number"] == 2


def test_property_update_diffs_json_and_keeps_the_key(auto: Port, sim: Simulator) -> None:
    created = auto.call(
        "create-page-property",
        {"path": {"page_id": PAGE}, "body": {"key": "review-state", "value": {"state": "draft"}}},
    )
    assert created.ok, created.error
    prop = created.summary["id"]
    prepared, _ = auto.prepare(
        "update-page-property",
        {"path": {"page_id": PAGE, "property_id": prop}, "body": {"value": {"state": "final"}}},
    )
    body = json.loads(prepared.body or b"")
    assert body == {"key": "review-state", "value": {"state": "final"}, "version": {"number": 2}}
    assert '-  "state": "draft"' in prepared.review["diff"]
    assert '+  "state": "final"' in prepared.review["diff"]
    sent = auto.call(
        "update-page-property",
        {"path": {"page_id": PAGE, "property_id": prop}, "body": {"value": {"state": "final"}}},
    )
    assert sent.ok and sent.summary["version"] == 2 and sent.summary["value"] == {"state": "final"}


def test_comment_update_sends_only_body_and_version(auto: Port, sim: Simulator) -> None:
    made = auto.call(
        "create-footer-comment", {"body": {"pageId": PAGE, "body": content("<p>first</p>")}}
    )
    assert made.ok, made.error
    sim.clear()
    updated = auto.call(
        "update-footer-comment",
        {"path": {"comment_id": made.summary["id"]}, "body": {"body": content("<p>second</p>")}},
    )
    assert updated.ok, updated.error
    assert sent_json(sim, "PUT") == {"body": content("<p>second</p>"), "version": {"number": 2}}


# -- policy around the read ----------------------------------------------------------------


def test_denied_update_makes_no_read(sim: Simulator, home: Path) -> None:
    policy = {"rules": [{"name": "no-updates", "actions": ["update-*"], "decision": "deny"}]}
    with make_port(sim, home, policy) as port:
        with pytest.raises(PolicyDenied) as info:
            port.call("update-page", {"path": {"id": PAGE}, "body": {"body": content("x")}})
        records = port.audit.records()
    assert info.value.rule == "no-updates"
    assert sim.request_count == 0
    assert [(r["event"], r["action"], r["rule"]) for r in records] == [
        ("denied", "update-page", "no-updates")
    ]


def test_the_read_needs_its_own_auto_decision(sim: Simulator, home: Path) -> None:
    policy = {
        "rules": [
            {"name": "updates-held", "actions": ["update-page"], "decision": "require_approval"},
            {"name": "reads-auto", "actions": ["search-pages"], "decision": "auto"},
        ]
    }
    with make_port(sim, home, policy) as port:
        with pytest.raises(PolicyDenied) as info:
            port.call("update-page", {"path": {"id": PAGE}, "body": {"body": content("x")}})
        assert info.value.action == "get-page" and info.value.rule == "default-deny"
        assert "'update-page' needs this read" in str(info.value)
        assert sim.request_count == 0
        # Naming the version removes the need for the read; the title must then be given.
        with pytest.raises(InputError) as missing:
            port.call(
                "update-page",
                {"path": {"id": PAGE}, "body": {"body": content("x"), "expected_version": 3}},
            )
        assert [(v.field, v.rule) for v in missing.value.violations] == [("body.title", "required")]
        held = port.call(
            "update-page",
            {
                "path": {"id": PAGE},
                "body": {"title": "T", "body": content("x"), "expected_version": 3},
            },
        )
        assert held.outcome == "held" and sim.request_count == 0
        ticket = port.ticket(held.ticket or "")
        assert ticket is not None and ticket.review["diff"] is None
        assert "not read" in ticket.review["note"]
        assert json.loads(ticket.body or b"")["version"] == {"number": 4}


def test_policy_sees_the_space_read_back_for_an_update(sim: Simulator, home: Path) -> None:
    """The space allow-list example works for updates: the sent body carries spaceId."""
    allow = {"properties": {"body": {"required": ["spaceId"],
                                     "properties": {"spaceId": {"enum": ["99999"]}}}},
             "required": ["body"]}  # fmt: skip
    policy = {
        "rules": [
            {"name": "reads", "kind": "read", "decision": "auto"},
            {"name": "outside", "kind": "write", "unless": allow, "decision": "deny"},
            {"name": "writes", "kind": "write", "decision": "auto"},
        ]
    }
    with make_port(sim, home, policy) as port, pytest.raises(PolicyDenied) as info:
        port.call("update-page", {"path": {"id": PAGE}, "body": {"body": content("x")}})
    assert info.value.rule == "outside"
    assert [e.method for e in sim.exchanges] == ["GET"]


# -- get-page-diff -------------------------------------------------------------------------


def test_page_diff_between_two_versions(auto: Port, sim: Simulator) -> None:
    base = page(auto)
    first = auto.call(
        "update-page", {"path": {"id": PAGE}, "body": {"body": content("<p>one</p>\n<p>two</p>")}}
    )
    second = auto.call(
        "update-page", {"path": {"id": PAGE}, "body": {"body": content("<p>one</p>\n<p>2</p>")}}
    )
    assert first.ok and second.ok
    v1, v2 = base["version"] + 1, base["version"] + 2
    sim.clear()
    diff = auto.call("get-page-diff", {"path": {"id": PAGE}, "query": {"from": v1, "to": v2}})
    assert diff.ok, diff.error
    assert diff.summary["fromVersion"] == v1 and diff.summary["toVersion"] == v2
    assert diff.summary["diff"] == (
        f"--- version {v1}\n+++ version {v2}\n@@ -1,2 +1,2 @@\n <p>one</p>\n-<p>two</p>\n+<p>2</p>"
    )
    assert diff.summary["changed"] is True and diff.summary["title"] == base["title"]
    queries = sorted(e.query for e in sim.exchanges)
    assert queries == [f"body-format=storage&version={v1}", f"body-format=storage&version={v2}"]
    current = auto.call("get-page-diff", {"path": {"id": PAGE}, "query": {"from": v2}})
    assert current.ok and current.summary["changed"] is False and current.summary["diff"] == ""


def test_page_diff_of_a_missing_version(auto: Port, sim: Simulator) -> None:
    with pytest.raises(ReadFailed) as info:
        auto.call("get-page-diff", {"path": {"id": PAGE}, "query": {"from": 999}})
    assert info.value.status == 404
    assert sim.request_count == 1


def test_page_diff_input_is_checked(auto: Port, sim: Simulator) -> None:
    with pytest.raises(InputError) as info:
        auto.call("get-page-diff", {"path": {"id": PAGE}, "query": {"to": 2}})
    assert ("query.from", "required") in [(v.field, v.rule) for v in info.value.violations]
    assert sim.request_count == 0


def test_unified_diff_is_capped() -> None:
    before = "\n".join(f"line {i}" for i in range(2000))
    text, truncated = unified_diff(before, "", "a", "b", limit=500)
    assert truncated and len(text) < 600 and text.endswith("more characters of diff]")
    assert unified_diff({"a": 1}, {"a": 1}, "a", "b") == ("", False)


def test_async_update_reads_and_reports_conflicts(sim: Simulator, home: Path) -> None:
    import asyncio

    async def main() -> tuple[Any, Any]:
        async with make_port(sim, home, ALL_AUTO) as port:
            good = await port.acall(
                "update-page", {"path": {"id": PAGE}, "body": {"body": content("<p>async</p>")}}
            )
            stale = await port.acall(
                "update-page",
                {
                    "path": {"id": PAGE},
                    "body": {"body": content("<p>x</p>"), "expected_version": 1},
                },
            )
            return good, stale

    good, stale = asyncio.run(main())
    assert good.ok, good.error
    assert [e.method for e in sim.exchanges][:2] == ["GET", "PUT"]
    assert stale.status == 409 and stale.error["type"] == "conflict"
    assert stale.error["current_version"] == good.summary["version"]
    assert stale.error["changed_by"]  # learned by reading the page again after the 409
    assert [e.method for e in sim.exchanges][-1] == "GET"


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"body": {"representation": "storage", "value": "x"}, "expected_version": 0},
         "body.expected_version", "minimum"),
        ({"body": {"representation": "storage", "value": "x"}, "expected_version": "3"},
         "body.expected_version", "type"),
        ({"body": {"representation": "storage", "value": "x"}, "version": {"number": 9}},
         "body.version", "additionalProperties"),
        ({"body": {"representation": "wiki", "value": "x"}}, "body.body.representation", "enum"),
        ({"title": "only a title"}, "body.body", "required"),
    ],
)  # fmt: skip
def test_bad_update_input_sends_nothing(
    auto: Port, sim: Simulator, body: dict[str, Any], field: str, rule: str
) -> None:
    with pytest.raises(InputError) as info:
        auto.call("update-page", {"path": {"id": PAGE}, "body": body})
    assert (field, rule) in [(v.field, v.rule) for v in info.value.violations]
    assert sim.request_count == 0  # not even the read


# -- found by the property suite (tests/test_properties.py) --------------------------------


def test_finding_update_of_an_unreadable_page_is_a_read_failure(sim: Simulator, home: Path) -> None:
    """expected_version makes the read optional; when it then fails upstream (404) and the
    title must come from it, that is the read's failure (exit 5), not invalid input."""
    with (
        Port.load(
            home=home, base_url=sim.url, credential=Credential.basic(EMAIL, API_TOKEN, "t")
        ) as port,
        pytest.raises(ReadFailed) as info,
    ):
        port.call(
            "update-page",
            {"path": {"id": "999999"}, "body": {"body": content("x"), "expected_version": 2}},
        )
    assert info.value.exit_code == 5 and "get-page" in str(info.value)
    assert requests_of(sim) == [("GET", "/wiki/api/v2/pages/999999")]


def test_finding_oversized_update_is_denied_before_its_read(sim: Simulator, home: Path) -> None:
    """The packaged policy caps comment bodies at 1 MB (pages at 4 MB): a body already over
    its cap makes no read."""
    with (
        Port.load(
            home=home, base_url=sim.url, credential=Credential.basic(EMAIL, API_TOKEN, "t")
        ) as port,
        pytest.raises(PolicyDenied) as info,
    ):
        port.call(
            "update-footer-comment",
            {"path": {"comment_id": "1"}, "body": {"body": content("x" * 1_100_000)}},
        )
    assert "cap" in info.value.rule or "body" in info.value.rule
    assert sim.request_count == 0


def test_finding_expected_version_leaves_room_for_plus_one(sim: Simulator, home: Path) -> None:
    """version.number = expected_version + 1 must stay an int32 (the v2 document's type)."""
    cases = (
        ("update-page", {"id": PAGE}, {"title": "T", "body": content("x")}),
        ("update-page-property", {"page_id": PAGE, "property_id": "1"}, {"value": 1}),
    )
    with make_port(sim, home) as port:
        for action, path, rest in cases:
            with pytest.raises(InputError) as info:
                port.call(action, {"path": path, "body": {**rest, "expected_version": 2**31 - 1}})
            assert [(v.field, v.rule) for v in info.value.violations] == [
                ("body.expected_version", "maximum")
            ]
    assert sim.request_count == 0
