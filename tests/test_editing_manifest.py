"""How a manifest declares runner-side body handling (bodyView, markdownBody, page-edit),
and how the OpenAPI check treats what the runner reads itself or converts."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from harbor_confluence.adapters.tools import _result_reply
from harbor_confluence.catalog.speccheck import check_action
from harbor_confluence.errors import ManifestError
from harbor_confluence.pipeline.executor import default_manifest_path
from harbor_confluence.pipeline.manifest import (
    Action,
    load_manifest,
    manifest_from_data,
    runner_query,
)
from harbor_confluence.pipeline.summary import Result
from tests.contract import require_spec

MANIFEST = load_manifest(default_manifest_path())


def _raw(name: str) -> dict[str, Any]:
    return copy.deepcopy(MANIFEST.action(name).model_dump(by_alias=True, exclude_none=True))


def _load(*actions: dict[str, Any]) -> None:
    data = MANIFEST.model_dump(by_alias=True, exclude_none=True)
    data["actions"] = list(actions)
    manifest_from_data(data, "test")


def test_packaged_actions_declare_their_body_handling() -> None:
    for name in ("get-page", "get-blogpost"):
        action = MANIFEST.action(name)
        assert action.body_view is not None and action.body_view.page_chars == 20_000
        assert runner_query(action) == {"body-offset", "body-limit"}
    for name in ("create-page", "create-blogpost", "create-footer-comment", "update-page",
                 "update-blogpost", "update-footer-comment"):  # fmt: skip
        assert MANIFEST.action(name).markdown_body == "body", name
    edit = MANIFEST.action("edit-page")
    assert edit.transform == "page-edit" and edit.update is not None
    assert edit.update.diff == "blocks" and MANIFEST.manifest_version == "1.3.0"
    assert runner_query(MANIFEST.action("search-pages")) == frozenset()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a["parameters"]["query"]["properties"].pop("body-limit"),
         "integer query parameter body-limit"),
        (lambda a: a["parameters"]["query"]["properties"]["body-format"].update(enum=["view"]),
         "enum to hold storage"),
        (lambda a: a["bodyView"].update(field="nobody"), "not a summary field"),
    ],
)  # fmt: skip
def test_body_view_is_checked(change: Any, message: str) -> None:
    action = _raw("get-page")
    change(action)
    with pytest.raises(ManifestError, match=message):
        _load(action)


def test_markdown_body_and_page_edit_are_checked() -> None:
    create = _raw("create-page")
    create["parameters"]["body"]["properties"]["body"]["properties"]["representation"]["enum"] = [
        "storage"
    ]
    with pytest.raises(ManifestError, match="markdownBody 'body' needs"):
        _load(create)
    edit = _raw("edit-page")
    edit.pop("update")
    with pytest.raises(ManifestError, match="page-edit needs an update"):
        _load(_raw("get-page"), edit)
    post = _raw("create-page")
    post["bodyView"] = {}
    with pytest.raises(ManifestError, match="bodyView is for GET actions"):
        _load(post)


def test_openapi_check_skips_runner_parameters_only_where_declared() -> None:
    specs = require_spec("v2"), require_spec("v1")
    assert check_action(MANIFEST.action("get-page"), *specs) == []
    assert check_action(MANIFEST.action("update-page"), *specs) == []
    # the same parameters on an action that does not declare bodyView would be sent
    raw = _raw("get-page")
    raw.pop("bodyView")
    problems = check_action(Action.model_validate(raw), *specs)
    assert any(p.startswith("query.body-offset: not a query parameter") for p in problems)
    assert any("query.body-format: values ['markdown']" in p for p in problems)
    raw = _raw("create-page")
    raw.pop("markdownBody")
    raw.pop("transform")  # space-key: a runner-built input is not compared with the spec
    problems = check_action(Action.model_validate(raw), *specs)
    assert any("values ['markdown'] are not allowed" in p for p in problems), problems


def test_held_write_that_removes_content_says_so_to_the_agent() -> None:
    held = Result(
        ok=False, action="update-page", outcome="held", ticket="t_1", rule="updates-review",
        extra={"losses": ["macro 'toc': 1 -> 0"]},
    )  # fmt: skip
    assert "REMOVES content: macro 'toc': 1 -> 0" in _result_reply(held).headline
