"""Thin adapters from a :class:`~harbor_confluence.tools.Toolkit` to agent frameworks.

Each adapter is built from the same tool definitions and calls back through
``Toolkit.call``/``acall``, so policy, input mapping and result wording never differ
between frameworks.  Each lives in its own module and imports its framework only there:

- ``harbor_confluence.adapters.langchain.langchain_tools`` (extra ``[langchain]``)
- ``harbor_confluence.adapters.openai_agents.openai_agents_tools`` (extra ``[openai-agents]``)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harbor_confluence.executor import Port
    from harbor_confluence.tools import Toolkit

__all__ = ["toolkit_for"]


def toolkit_for(source: Port | Toolkit, requester: str | None, **filters: Any) -> Toolkit:
    """A toolkit from a port and filters, or the given toolkit as it is."""
    from harbor_confluence.tools import Toolkit

    if isinstance(source, Toolkit):
        if filters:
            raise TypeError("pass filters when building the Toolkit, not with a Toolkit")
        return source
    return Toolkit(source, requester=requester, **filters)
