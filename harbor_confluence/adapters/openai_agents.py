"""OpenAI Agents SDK function tools for a port's actions.

    from agents import Agent
    from harbor_confluence import Port
    from harbor_confluence.adapters.openai_agents import openai_agents_tools

    agent = Agent(name="wiki", tools=openai_agents_tools(Port.load(), kind="read"))

Schemas are passed as they are (``strict_json_schema=False``): strict mode would make
every optional parameter required.  The tool returns the short text (headline plus the
json_summary as JSON); refusals come back as that text too, so the model can correct its
input or tell the user that a write waits for approval.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agents import FunctionTool
from agents.tool_context import ToolContext

from . import toolkit_for

if TYPE_CHECKING:
    from harbor_confluence.adapters.tools import Toolkit
    from harbor_confluence.pipeline.executor import Port

__all__ = ["openai_agents_tools"]


class _Invoke:
    def __init__(self, kit: Toolkit, name: str) -> None:
        self.kit = kit
        self.name = name

    async def __call__(self, ctx: ToolContext[Any], raw: str) -> str:
        try:
            arguments = json.loads(raw) if raw else {}
        except json.JSONDecodeError as exc:
            return f"{self.name}: arguments are not valid JSON ({exc.msg}); send a JSON object"
        if not isinstance(arguments, dict):
            return f"{self.name}: arguments must be a JSON object"
        return (await self.kit.acall(self.name, arguments)).text


def openai_agents_tools(
    source: Port | Toolkit, *, requester: str | None = "openai-agents", **filters: Any
) -> list[FunctionTool]:
    """One ``FunctionTool`` per tool definition (filters as for :class:`Toolkit`)."""
    kit = toolkit_for(source, requester, **filters)
    return [
        FunctionTool(
            name=spec.name,
            description=spec.description,
            params_json_schema=spec.input_schema,
            on_invoke_tool=_Invoke(kit, spec.name),
            strict_json_schema=False,
        )
        for spec in kit.specs()
    ]
