"""The record of one request/response pair, kept so tests can assert on the wire."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Exchange"]


@dataclass(frozen=True, slots=True, repr=False)
class Exchange:
    """Exactly what crossed the wire: raw path and query, header pairs and body bytes.

    ``repr`` shows only the request line and status so a failing assertion never prints
    an Authorization header.
    """

    method: str
    path: str  # raw request path, without the query string
    query: str  # raw query string, without "?"
    request_headers: tuple[tuple[str, str], ...]
    request_body: bytes
    status: int
    response_headers: tuple[tuple[str, str], ...]
    response_body: bytes
    received_at: float  # time.monotonic() when the request arrived
    duration: float  # seconds until the response was ready (includes injected delays)

    @property
    def target(self) -> str:
        """The request target as sent: ``/wiki/api/v2/pages?limit=5``."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def request_header(self, name: str) -> str | None:
        return _find(self.request_headers, name)

    def response_header(self, name: str) -> str | None:
        return _find(self.response_headers, name)

    def json(self) -> Any:
        """The response body parsed as JSON."""
        return json.loads(self.response_body)

    def request_json(self) -> Any:
        return json.loads(self.request_body)

    def __repr__(self) -> str:
        return f"Exchange({self.method} {self.target} -> {self.status})"


def _find(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), None)
