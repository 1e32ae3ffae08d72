"""The edge where agents meet a port: the tools they are offered and the frameworks they use.

``tools.py`` builds the :class:`~harbor_confluence.adapters.tools.Toolkit` (the actions an
agent is offered, their definitions, tool calls and the replies' wording);
``mcp_server.py`` serves it over MCP, behind the stdlib-only ``mcp_front.py``.  The thin
framework adapters are built from the same tool definitions and call back through
``Toolkit.call``/``acall``, so policy, input mapping and result wording never differ
between frameworks.  Each lives in its own module and imports its framework only there:

- ``harbor_confluence.adapters.langchain.langchain_tools`` (extra ``[langchain]``)
- ``harbor_confluence.adapters.openai_agents.openai_agents_tools`` (extra ``[openai-agents]``)

Adapters depend on the core (``pipeline/``) and on ``catalog/`` (the draft tools); nothing
in ``pipeline/``, ``review/``, ``secrets/`` or ``catalog/`` imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harbor_confluence.adapters.tools import Toolkit
    from harbor_confluence.pipeline.executor import Port

__all__ = ["toolkit_for"]


def toolkit_for(source: Port | Toolkit, requester: str | None, **filters: Any) -> Toolkit:
    """A toolkit from a port and filters, or the given toolkit as it is."""
    from harbor_confluence.adapters.tools import Toolkit

    if isinstance(source, Toolkit):
        if filters:
            raise TypeError("pass filters when building the Toolkit, not with a Toolkit")
        return source
    return Toolkit(source, requester=requester, **filters)
