"""LangChain tools (``langchain-core`` ``StructuredTool``) for a port's actions.

    from harbor_confluence import Port
    from harbor_confluence.adapters.langchain import langchain_tools

    tools = langchain_tools(Port.load(), toolsets=["pages"], exclude=["delete-*"])

Each tool takes the same flat arguments as the MCP and function-calling definitions.  It
returns the short text as content and the json_summary as the artifact; a refusal
(invalid input, denial, upstream error) raises ``ToolException``, which LangChain hands
back to the model as an error message, so the agent can correct itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.tools import StructuredTool, ToolException

from . import toolkit_for

if TYPE_CHECKING:
    from harbor_confluence.adapters.tools import Toolkit, ToolReply
    from harbor_confluence.pipeline.executor import Port

__all__ = ["langchain_tools"]


def _unwrap(reply: ToolReply) -> tuple[str, dict[str, Any]]:
    if reply.is_error:
        raise ToolException(reply.text)
    return reply.text, reply.payload


class _Run:
    """The sync and async bodies of one tool (an object, not a closure, to stay typed)."""

    def __init__(self, kit: Toolkit, name: str) -> None:
        self.kit = kit
        self.name = name

    def __call__(self, **arguments: Any) -> tuple[str, dict[str, Any]]:
        return _unwrap(self.kit.call(self.name, arguments))

    async def run_async(self, **arguments: Any) -> tuple[str, dict[str, Any]]:
        return _unwrap(await self.kit.acall(self.name, arguments))


def langchain_tools(
    source: Port | Toolkit, *, requester: str | None = "langchain", **filters: Any
) -> list[StructuredTool]:
    """One ``StructuredTool`` per tool definition (filters as for :class:`Toolkit`)."""
    kit = toolkit_for(source, requester, **filters)
    out: list[StructuredTool] = []
    for spec in kit.specs():
        run = _Run(kit, spec.name)
        out.append(
            StructuredTool(
                name=spec.name,
                description=spec.description,
                args_schema=spec.input_schema,
                func=run,
                coroutine=run.run_async,
                response_format="content_and_artifact",
                handle_tool_error=True,
            )
        )
    return out
