"""The policy gate: first matching rule decides, deny by default, every decision named."""

from __future__ import annotations

from typing import Any

import pytest

from harbor_confluence.errors import ManifestError
from harbor_confluence.pipeline.executor import default_manifest_path, default_policy_path
from harbor_confluence.pipeline.manifest import Manifest, load_manifest
from harbor_confluence.pipeline.policy import load_policy, policy_from_data


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest(default_manifest_path())


def test_default_policy_matches_manifest_defaults(manifest: Manifest) -> None:
    policy = load_policy(default_policy_path())
    for action in manifest.actions:
        decision, _ = policy.static_decision(action)
        assert decision.outcome == action.default_policy, action.name


def test_unnamed_action_is_denied_by_default(manifest: Manifest) -> None:
    policy = policy_from_data(
        {"rules": [{"name": "r", "actions": ["get-page"], "decision": "auto"}]}, "p"
    )
    d = policy.decide(manifest.action("search-pages"), {"query": {}})
    assert (d.outcome, d.rule) == ("deny", "default-deny")


def test_limit_cap_names_its_rule(manifest: Manifest) -> None:
    policy = load_policy(default_policy_path())
    action = manifest.action("search-pages")
    assert policy.decide(action, {"query": {"limit": 100}}).outcome == "auto"
    d = policy.decide(action, {"query": {"limit": 101}})
    assert (d.outcome, d.rule) == ("deny", "search-limit-cap")
    assert "next_cursor" in (d.reason or "")


def space_allowlist() -> dict[str, Any]:
    return {
        "rules": [
            {
                "name": "writes-outside-allowed-spaces",
                "kind": "write",
                "unless": {
                    "properties": {"body": {"properties": {"spaceId": {"enum": ["65538"]}}}}
                },
                "decision": "deny",
            },
            {"name": "writes-review", "kind": "write", "decision": "require_approval"},
        ]
    }


def test_space_allowlist_with_unless(manifest: Manifest) -> None:
    policy = policy_from_data(space_allowlist(), "p")
    create = manifest.action("create-page")
    inside = policy.decide(create, {"body": {"spaceId": "65538", "title": "t"}})
    outside = policy.decide(create, {"body": {"spaceId": "99999", "title": "t"}})
    assert (inside.outcome, inside.rule) == ("require_approval", "writes-review")
    assert (outside.outcome, outside.rule) == ("deny", "writes-outside-allowed-spaces")


def test_body_size_rule(manifest: Manifest) -> None:
    policy = policy_from_data(
        {"rules": [
            {"name": "big", "actions": ["create-*"], "bodyBytesOver": 100, "decision": "deny"},
            {"name": "ok", "actions": ["create-*"], "decision": "require_approval"},
        ]},
        "p",
    )  # fmt: skip
    create = manifest.action("create-page")
    assert policy.decide(create, {"body": {"title": "x"}}, b"x" * 100).rule == "ok"
    assert policy.decide(create, {"body": {"title": "x"}}, b"x" * 101).rule == "big"


def test_static_decision_lists_conditional_rules(manifest: Manifest) -> None:
    policy = load_policy(default_policy_path())
    decision, conditional = policy.static_decision(manifest.action("search-pages"))
    assert decision.rule == "reads-auto"
    assert conditional == ["search-limit-cap"]


@pytest.mark.parametrize(
    ("data", "expect"),
    [
        ({"rules": [{"name": "r", "decision": "maybe"}]}, "rules.0.decision"),
        ({"rules": [{"name": "r", "decision": "auto", "colour": 1}]}, "unknown key"),
        ({"rules": [{"name": "r", "decision": "auto", "when": {"type": 5}}]}, "valid JSON Schema"),
        ({"rules": [], "secret": "hunter2hunter2"}, "credential refused"),
    ],
)
def test_bad_policies_are_refused(data: dict[str, Any], expect: str) -> None:
    with pytest.raises(ManifestError) as info:
        policy_from_data(data, "policy.yaml")
    assert expect in str(info.value)
    assert "hunter2" not in str(info.value)
