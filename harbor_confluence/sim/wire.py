"""Request/response values and Atlassian-shaped errors shared by every simulated route.

Handlers never touch sockets: they take a `SimRequest` and return a `SimResponse` (or raise
`ApiError`), so a new route is a plain function that can be read next to the spec.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "JSON_CONTENT_TYPE",
    "ApiError",
    "Query",
    "SimRequest",
    "SimResponse",
    "bad_request",
    "error_body_v1",
    "error_body_v2",
    "not_found",
    "parse_id",
]

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"

# Confluence v2 error codes seen in Atlassian's responses, keyed by status.
_V2_CODES: Mapping[int, tuple[str, str]] = {
    400: ("INVALID_REQUEST_PARAMETER", "Bad Request"),
    401: ("UNAUTHORIZED", "Unauthorized"),
    403: ("FORBIDDEN", "Forbidden"),
    404: ("NOT_FOUND", "Not Found"),
    405: ("METHOD_NOT_ALLOWED", "Method Not Allowed"),
    409: ("CONFLICT", "Conflict"),
    413: ("REQUEST_ENTITY_TOO_LARGE", "Request Entity Too Large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported Media Type"),
    429: ("TOO_MANY_REQUESTS", "Too Many Requests"),
    500: ("INTERNAL_SERVER_ERROR", "Internal Server Error"),
    502: ("BAD_GATEWAY", "Bad Gateway"),
    503: ("SERVICE_UNAVAILABLE", "Service Unavailable"),
    504: ("GATEWAY_TIMEOUT", "Gateway Timeout"),
}


def error_body_v2(status: int, title: str | None = None, detail: str | None = None) -> bytes:
    """The v2 error envelope: ``{"errors": [{status, code, title, detail}]}``.

    The v2 document declares no error schema (its 4xx responses have empty ``content``), so
    this follows what Confluence Cloud actually sends.
    """
    code, default_title = _V2_CODES.get(status, ("ERROR", "Error"))
    item = {"status": status, "code": code, "title": title or default_title, "detail": detail}
    return json.dumps({"errors": [item]}, separators=(",", ":")).encode()


def error_body_v1(status: int, message: str) -> bytes:
    """The v1 error envelope, as documented in the v1 document's "Status codes" narrative."""
    payload = {
        "statusCode": status,
        "data": {
            "authorized": status not in (401, 403),
            "valid": False,
            "errors": [{"message": {"translation": message, "args": []}}],
            "successful": False,
        },
        "message": message,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class SimResponse:
    """What a handler answers; the server adds Date, Content-Length and trace headers."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()
    ) -> SimResponse:
        """Serialise compactly, the way Atlassian does, with the JSON content type."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(status, body, (("Content-Type", JSON_CONTENT_TYPE), *headers))


class ApiError(Exception):
    """Raised by handlers to answer with an Atlassian-shaped error instead of a result."""

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(title or str(status))
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = tuple(headers)

    def to_response(self, path: str) -> SimResponse:
        """v1 paths get the v1 envelope, everything else the v2 one."""
        if path.startswith("/wiki/rest/"):
            body = error_body_v1(self.status, self.title or _V2_CODES.get(self.status, ("", ""))[1])
        else:
            body = error_body_v2(self.status, self.title, self.detail)
        return SimResponse(self.status, body, (("Content-Type", JSON_CONTENT_TYPE), *self.headers))


def bad_request(title: str, detail: str | None = None) -> ApiError:
    """A 400 naming the offending parameter, so a client bug is obvious from the body."""
    return ApiError(400, title, detail)


def not_found(title: str = "Not Found", detail: str | None = None) -> ApiError:
    """A 404, also what Confluence answers when the caller may not see the entity."""
    return ApiError(404, title, detail)


class Query:
    """Query-string access with Confluence's parsing rules and 400s on bad input.

    Arrays are accepted both as repeated keys (``space-id=1&space-id=2``, the OpenAPI
    default ``form``/``explode`` style) and comma-separated (what the descriptions say).
    """

    def __init__(self, raw: str) -> None:
        self.raw = raw
        try:
            self.pairs: list[tuple[str, str]] = parse_qsl(
                raw, keep_blank_values=True, strict_parsing=False
            )
        except ValueError as exc:
            raise bad_request(f"Malformed query string: {exc}") from exc
        self._multi: dict[str, list[str]] = {}
        for key, value in self.pairs:
            self._multi.setdefault(key, []).append(value)

    def __contains__(self, name: str) -> bool:
        return name in self._multi

    def one(self, name: str) -> str | None:
        """A scalar parameter; given twice is ambiguous and rejected."""
        values = self._multi.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise bad_request(f"Query parameter '{name}' must be given at most once")
        return values[0]

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        raw = self.one(name)
        if raw is None:
            return default
        value = _parse_int(name, raw)
        if not minimum <= value <= maximum:
            raise bad_request(
                f"Provided value {{{raw}}} for '{name}' is out of range: "
                f"must be between {minimum} and {maximum}"
            )
        return value

    def optional_integer(self, name: str) -> int | None:
        raw = self.one(name)
        return None if raw is None else _parse_int(name, raw)

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.one(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered not in ("true", "false"):
            raise bad_request(
                f"Provided value {{{raw}}} for '{name}' is not the correct type. "
                "Expected type is boolean"
            )
        return lowered == "true"

    def enum(self, name: str, allowed: Sequence[str]) -> str | None:
        raw = self.one(name)
        if raw is None:
            return None
        if raw not in allowed:
            raise bad_request(
                f"Provided value {{{raw}}} for '{name}' is not valid. "
                f"Valid values are: {', '.join(allowed)}"
            )
        return raw

    def string(self, name: str) -> str | None:
        return self.one(name)

    def array(self, name: str, max_items: int | None = None) -> list[str] | None:
        """All values of an array parameter, repeated and comma-separated forms merged."""
        values = self._multi.get(name)
        if values is None:
            return None
        items = [part.strip() for value in values for part in value.split(",")]
        if any(not item for item in items):
            raise bad_request(f"Query parameter '{name}' contains an empty item")
        if max_items is not None and len(items) > max_items:
            raise bad_request(
                f"Query parameter '{name}' accepts at most {max_items} items, got {len(items)}"
            )
        return items

    def int_array(self, name: str, max_items: int | None = None) -> list[int] | None:
        items = self.array(name, max_items)
        return None if items is None else [_parse_int(name, item) for item in items]

    def enum_array(self, name: str, allowed: Sequence[str]) -> list[str] | None:
        items = self.array(name)
        if items is None:
            return None
        for item in items:
            if item not in allowed:
                raise bad_request(
                    f"Provided value {{{item}}} for '{name}' is not valid. "
                    f"Valid values are: {', '.join(allowed)}"
                )
        return items


_INT64_MAX = 2**63 - 1


def _parse_int(name: str, raw: str) -> int:
    """Digits only (int64), so ``1e3`` or ``0x10`` are refused like Confluence refuses them."""
    text = raw.strip()
    body = text[1:] if text[:1] == "-" else text
    if not body.isascii() or not body.isdigit() or abs(int(text)) > _INT64_MAX:
        raise bad_request(
            f"Provided value {{{raw}}} for '{name}' is not the correct type. Expected type is int"
        )
    return int(text)


def parse_id(name: str, raw: str) -> int:
    """Path ids are int64 in the spec; anything else is a 400, not a 404."""
    value = _parse_int(name, raw)
    if value < 0:
        raise bad_request(f"Provided value {{{raw}}} for '{name}' must not be negative")
    return value


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One parsed request as a handler sees it (the raw bytes are kept in the Exchange)."""

    method: str
    path: str
    query: Query
    headers: Mapping[str, str]
    body: bytes
    params: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup (the mapping is keyed by lower-case names)."""
        return self.headers.get(name.lower())
