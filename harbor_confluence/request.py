"""Request building: expand the fixed route, encode values, pin the tenant origin.

The agent supplies values, never URLs.  Values are percent-encoded by the RFC 6570
expansion, and the result is checked again: the raw path must still match the
action's route segment for segment, and the URL must sit on the configured origin.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from uritemplate import URITemplate

from .errors import EXIT_INVALID, ConfigError, InputError, Violation
from .manifest import PLACEHOLDER_BASE_URL, Action
from .multipart import Part, encode_form, file_from_input

__all__ = [
    "PreparedRequest",
    "RequestBuilder",
    "Target",
    "URLRefused",
    "canonical_json",
    "origin_of",
]


def origin_of(url: str) -> str:
    """``scheme://host[:port]``, host lower-cased: what "the same origin" compares."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


def canonical_json(value: Any) -> bytes:
    """One byte form per JSON value, so fingerprints are stable."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class URLRefused(ConfigError):
    """A configured URL (base URL, identity-url, auth-url) broke a rule: exit 2, nothing sent."""

    code = "invalid_url"
    exit_code = EXIT_INVALID


# ``/ex/confluence/{cloudId}``: Atlassian's gateway (Bearer/OAuth, scoped API tokens).
_GATEWAY_PATH = re.compile(r"/ex/confluence/[A-Za-z0-9](?:[A-Za-z0-9-]{0,126}[A-Za-z0-9])?")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, slots=True)
class Target:
    """The one tenant origin every request goes to (plus an optional gateway prefix)."""

    base_url: str
    origin: str
    prefix: str

    @classmethod
    def parse(cls, base_url: str, *, what: str = "base URL", gateway: bool = True) -> Target:
        """Check a configured URL completely; every way a base URL is set comes here.

        It must be an origin: ``https://HOST[:PORT]`` (``http`` only for a loopback host),
        a valid host name or IP address, port 1-65535, no user info, query, fragment,
        whitespace or control characters, and no path, except a trailing ``/wiki`` (as
        users paste a site URL) and, with ``gateway``, Atlassian's gateway form
        ``/ex/confluence/<cloudId>``.  Raises :class:`URLRefused` (exit 2) naming the rule.
        """
        if base_url.rstrip("/") == PLACEHOLDER_BASE_URL.rstrip("/"):
            raise ConfigError(
                "the tenant base URL is still the catalog placeholder "
                f"{PLACEHOLDER_BASE_URL}; set yours with: "
                "harbor-confluence config set base-url https://YOUR-SITE.atlassian.net"
            )
        scheme, host, port, path = _split_origin(base_url, what)
        prefix = path.rstrip("/")
        if prefix.endswith("/wiki"):
            prefix = prefix[: -len("/wiki")]  # routes already start with /wiki/
        if prefix and not (gateway and _GATEWAY_PATH.fullmatch(prefix)):
            allowed = (
                "a trailing /wiki, or Atlassian's gateway form /ex/confluence/<cloudId>"
                if gateway
                else "none"
            )
            raise _refused(
                base_url,
                what,
                "path",
                f"an origin may not carry a path ({_shown(path)}); paths allowed: {allowed}",
            )
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        return cls(base_url=base_url, origin=f"{scheme}://{netloc.lower()}", prefix=prefix)

    def owns(self, url: str) -> bool:
        return origin_of(url) == self.origin


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _refused(url: str | None, what: str, rule: str, message: str) -> URLRefused:
    shown = f" {_shown(url)}" if url is not None else ""
    return URLRefused(f"{what}{shown}: {message} [{rule}]")


def _split_origin(url: str, what: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path) of an origin URL, or URLRefused naming the broken rule."""
    if not isinstance(url, str) or not url:
        raise _refused(None, what, "scheme", "it is empty; use https://YOUR-SITE.atlassian.net")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _refused(url, what, "whitespace", "may not contain whitespace or control characters")
    if not url.isascii():
        raise _refused(
            url, what, "host", "must be ASCII (write an international domain name as xn--...)"
        )
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("https", "http"):
        raise _refused(
            url, what, "scheme", "must be an http(s) origin such as https://acme.atlassian.net"
        )
    authority, slash, tail = rest.partition("/")
    path = slash + tail
    if "@" in authority:
        # Never echo it: user info is a credential.
        raise _refused(
            None,
            what,
            "userinfo",
            "may not carry user info (store credentials with: harbor-confluence token set)",
        )
    if "?" in url or "#" in url:
        raise _refused(url, what, "query", "may not carry a query or fragment")
    if "\\" in url:
        raise _refused(url, what, "path", "may not contain a backslash")
    host, port_text = _host_and_port(authority)
    port: int | None = None
    if port_text is not None:
        if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            message = f"port {port_text!r} must be a number from 1 to 65535"
            raise _refused(url, what, "port", message)
        port = int(port_text)
    if not _valid_host(host):
        raise _refused(url, what, "host", f"host {host!r} is not a valid host name or IP address")
    if scheme == "http" and not _is_loopback(host):
        raise _refused(
            url,
            what,
            "scheme",
            "plain http is only allowed for a loopback host (such as the simulator); "
            f"use https for {host}",
        )
    return scheme, host, port, path


def _host_and_port(authority: str) -> tuple[str, str | None]:
    if authority.startswith("["):
        inner, bracket, after = authority[1:].partition("]")
        if not bracket:
            return authority, None
        if not after:
            return inner, None
        if not after.startswith(":"):
            return authority, None
        return inner, after[1:]
    host, colon, port = authority.partition(":")
    return host, port if colon else None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _valid_host(host: str) -> bool:
    """A DNS name (LDH labels, not all-numeric at the top) or an IPv4/IPv6 literal."""
    if not host or len(host) > 253 or "%" in host:  # no zone ids, no escapes
        return False
    if ":" in host:  # from brackets: an IPv6 literal (no zone: "%" is refused)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    labels = host.split(".")
    if labels[-1].isdigit():  # digits at the top: only a dotted-quad IPv4 address
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return all(_LABEL.fullmatch(label) for label in labels)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """The exact request that would be sent, minus the credential."""

    action: str
    method: str
    url: str
    body: bytes | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Operator-facing context for a held request (base version, diff, file digest).
    # Not sent, and not part of the fingerprint: the request bytes are.
    review: dict[str, Any] = field(default_factory=dict)
    # Runner-side context from prepare to the summary (get-page-diff's first read).
    # Never sent, stored or fingerprinted.
    local: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def fingerprint(self) -> str:
        """SHA-256 over method, full URL and body: what an approval is bound to."""
        h = hashlib.sha256()
        h.update(self.method.encode())
        h.update(b"\n")
        h.update(self.url.encode())
        h.update(b"\n")
        h.update(self.body or b"")
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "method": self.method, "url": self.url}
        if self.body is not None:
            if (self.content_type or "").startswith("application/json"):
                out["body"] = json.loads(self.body)
            else:
                out["body_bytes"] = len(self.body)
                out["body_sha256"] = hashlib.sha256(self.body).hexdigest()
        if self.headers:
            out["headers"] = dict(self.headers)
        out["fingerprint"] = self.fingerprint
        if self.review:
            out["review"] = self.review
        return out


class RequestBuilder:
    """Compiled route for one action."""

    __slots__ = ("_action", "_pattern", "_template")

    def __init__(self, action: Action) -> None:
        self._action = action
        self._template = _template(action.route)
        regex = "".join(
            "([^/]+)" if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", action.route)
            if part
        )
        self._pattern = re.compile(rf"\A{regex}\Z")

    def build(self, target: Target, data: dict[str, Any]) -> PreparedRequest:
        action = self._action
        path_values = {k: _scalar(v) for k, v in data.get("path", {}).items()}
        path = str(self._template.expand(dict(path_values)))
        match = self._pattern.match(path)
        if (
            match is None
            or any(g in ("", ".", "..") for g in match.groups())
            or [unquote(g) for g in match.groups()]
            != [path_values[v] for v in _route_vars(action.route)]
        ):
            raise InputError(
                action.name,
                [Violation("path", "route", f"values do not fit the route {action.route}")],
            )
        url = target.origin + target.prefix + path
        query = _encode_query(data.get("query") or {})
        if query:
            url += "?" + query
        if not target.owns(url):  # pragma: no cover - guarded by construction
            raise InputError(action.name, [Violation("path", "origin", "left the tenant origin")])
        body = None
        content_type = None
        review: dict[str, Any] = {}
        if action.request_body_mode == "json":
            body = canonical_json(data.get("body", {}))
            content_type = "application/json"
        elif action.request_body_mode == "multipart":
            body, content_type, review = self._multipart(data.get("body") or {})
        return PreparedRequest(
            action.name,
            action.method,
            url,
            body,
            content_type,
            {str(k): v for k, v in action.headers.items()},
            review,
        )

    def path_values(self, url: str, target: Target) -> dict[str, str] | None:
        """The path values a URL built by :meth:`build` was made from (None if it was not)."""
        prefix = target.origin + target.prefix
        if not url.startswith(prefix):
            return None
        match = self._pattern.match(url[len(prefix) :].partition("?")[0])
        if match is None:
            return None
        return dict(zip(_route_vars(self._action.route), map(unquote, match.groups()), strict=True))

    def _multipart(self, values: dict[str, Any]) -> tuple[bytes, str, dict[str, Any]]:
        """``file`` first, then the other fields sorted, with schema defaults filled in."""
        try:
            upload = file_from_input(values.get("file") or {})
        except ValueError as exc:
            raise InputError(
                self._action.name, [Violation("body.file", "contentEncoding", str(exc))]
            ) from None
        parts = [Part("file", upload.content, upload.filename, upload.media_type)]
        schema = self._action.parameters.body or {}
        fields = {
            k: p["default"]
            for k, p in schema.get("properties", {}).items()
            if isinstance(p, dict) and "default" in p
        }
        fields.update({k: v for k, v in values.items() if k != "file"})
        fields.pop("file", None)
        parts.extend(Part(k, _scalar(fields[k]).encode()) for k in sorted(fields))
        body, content_type = encode_form(parts)
        return body, content_type, {"file": upload.review()}


class _SimpleTemplate:
    """A route whose expressions are all simple ``{name}`` (RFC 6570 level 1), expanded
    as uritemplate does it — every character outside the unreserved set percent-encoded,
    an undefined variable empty — without its general parser (about 10x faster)."""

    __slots__ = ("_parts",)

    def __init__(self, parts: list[tuple[bool, str]]) -> None:
        self._parts = parts  # (is_variable, literal text or variable name)

    def expand(self, values: dict[str, str]) -> str:
        return "".join(
            quote(values.get(text) or "", safe="") if is_var else text
            for is_var, text in self._parts
        )


_SIMPLE_EXPRESSION = re.compile(r"\{([A-Za-z0-9_]+)\}")


def _template(route: str) -> _SimpleTemplate | URITemplate:
    pieces = re.split(r"(\{[^}]*\})", route)
    parts: list[tuple[bool, str]] = []
    for piece in pieces:
        if not piece:
            continue
        if piece.startswith("{"):
            simple = _SIMPLE_EXPRESSION.fullmatch(piece)
            if simple is None:
                return URITemplate(route)  # operators, lists, modifiers: the full library
            parts.append((True, simple.group(1)))
        elif "{" in piece or "}" in piece:
            return URITemplate(route)
        else:
            parts.append((False, piece))
    return _SimpleTemplate(parts)


_VAR_NAMES: dict[str, list[str]] = {}


def _route_vars(route: str) -> list[str]:
    names = _VAR_NAMES.get(route)
    if names is None:
        names = _VAR_NAMES[route] = re.findall(r"\{([^}]+)\}", route)
    return names


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _encode_query(query: dict[str, Any]) -> str:
    """Sorted ``key=value`` pairs; arrays repeat the key (OpenAPI form, explode)."""
    pairs: list[str] = []
    for key in sorted(query):
        value = query[key]
        values = value if isinstance(value, list) else [value]
        k = quote(key, safe="-_.~")
        pairs.extend(f"{k}={quote(_scalar(v), safe='-_.~')}" for v in values)
    return "&".join(pairs)
