"""The LangChain and OpenAI Agents SDK adapters: built from the same tool definitions,
calling the simulator through the port, holding writes, and refusing bad input."""

from __future__ import annotations

import json

import anyio
import pytest

from harbor_confluence.adapters.tools import Toolkit
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.sim import Simulator


def test_langchain_tools(port: Port, sim: Simulator) -> None:
    pytest.importorskip("langchain_core", reason="the [langchain] extra is not installed")
    from langchain_core.messages import ToolMessage
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from harbor_confluence.adapters.langchain import langchain_tools

    built = {t.name: t for t in langchain_tools(port, include=["search-pages", "create-page"])}
    kit = Toolkit(port, include=["search-pages", "create-page"])
    assert set(built) == {s.name for s in kit.specs()}
    for spec in kit.specs():
        # the model sees the same definition as every other framework
        function = convert_to_openai_tool(built[spec.name])["function"]
        assert function["name"] == spec.name
        assert function["description"] == spec.description
        assert function["parameters"]["properties"] == spec.input_schema["properties"]

    call = {"name": "search-pages", "args": {"limit": 2}, "id": "c1", "type": "tool_call"}
    found = built["search-pages"].invoke(call)
    assert isinstance(found, ToolMessage)
    assert found.artifact["ok"] is True and found.artifact["count"] == 2
    assert str(found.content).startswith("search-pages: ok")

    write = {"spaceId": "65538", "title": "From LangChain"}
    held = anyio.run(built["create-page"].ainvoke, {**call, "name": "create-page", "args": write})
    assert held.artifact["outcome"] == "held"
    ticket = held.artifact["ticket"]
    assert port.status(ticket)["requester"] == "langchain"

    bad = built["search-pages"].invoke({**call, "args": {"limit": 0}})
    assert bad.status == "error"
    assert "limit" in str(bad.content) and "minimum" in str(bad.content)
    assert sim.request_count == 1  # the one read; nothing for the held write or bad input


def test_openai_agents_tools(port: Port, sim: Simulator) -> None:
    pytest.importorskip("agents", reason="the [openai-agents] extra is not installed")
    from agents import FunctionTool
    from agents.tool_context import ToolContext

    from harbor_confluence.adapters.openai_agents import openai_agents_tools

    built = {t.name: t for t in openai_agents_tools(port, toolsets=["pages"], kind="read")}
    kit = Toolkit(port, toolsets=["pages"], kind="read")
    assert set(built) == set(kit.actions)  # reads only: no approval tool
    for spec in kit.specs():
        tool = built[spec.name]
        assert isinstance(tool, FunctionTool)
        assert tool.params_json_schema == spec.input_schema
        assert tool.strict_json_schema is False

    def invoke(name: str, arguments: str) -> str:
        ctx = ToolContext(
            context=None, tool_name=name, tool_call_id="call-1", tool_arguments=arguments
        )
        return str(anyio.run(built[name].on_invoke_tool, ctx, arguments))

    found = invoke("search-pages", json.dumps({"limit": 1}))
    headline, body = found.split("\n", 1)
    assert headline.startswith("search-pages: ok")
    assert json.loads(body)["count"] == 1
    assert "pattern" in invoke("get-page", json.dumps({"id": "abc"}))
    assert "not valid JSON" in invoke("get-page", "{id:")
    assert sim.request_count == 1
