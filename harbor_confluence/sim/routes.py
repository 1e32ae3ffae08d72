"""A small route table: (method, path regex) -> handler.

Adding an endpoint (blog posts, comments, v1 search, ...) is one decorated function in a
module that `server.build_router` registers; nothing else changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .store import Store
from .wire import SimRequest, SimResponse

__all__ = ["Context", "Handler", "Route", "RouteMatch", "Router"]


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler may use besides the request: the data and how to link back to us."""

    store: Store
    base_url: str  # e.g. "http://127.0.0.1:8089/wiki", Confluence's ``_links.base``
    account_id: str  # the authenticated caller, used as author of created content


Handler = Callable[[SimRequest, Context], SimResponse]


@dataclass(frozen=True, slots=True)
class Route:
    """One operation; ``name`` is the spec's operationId, to make logs and errors greppable."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    params: dict[str, str]


class Router:
    """Ordered routes; the first full match wins, so literal paths go before templated ones."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def route(self, method: str, pattern: str, name: str) -> Callable[[Handler], Handler]:
        """Decorator: ``pattern`` uses named groups for path parameters, e.g. ``(?P<id>[^/]+)``."""

        def register(handler: Handler) -> Handler:
            self.add(method, pattern, name, handler)
            return handler

        return register

    def add(self, method: str, pattern: str, name: str, handler: Handler) -> None:
        self._routes.append(Route(method.upper(), re.compile(pattern), handler, name))

    def match(self, method: str, path: str) -> RouteMatch | list[str] | None:
        """The matching route, else the methods allowed on that path (405), else None (404)."""
        allowed: list[str] = []
        for route in self._routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if route.method == method.upper():
                return RouteMatch(route, found.groupdict())
            allowed.append(route.method)
        return allowed or None

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)
