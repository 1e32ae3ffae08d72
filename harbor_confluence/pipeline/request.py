"""Request building: expand the fixed route, encode values, pin the tenant origin.

The agent supplies values, never URLs.  Values are percent-encoded by the RFC 6570
expansion of the action's compiled route (route.py), and the result is checked again:
the raw path must still match the route segment for segment, and the URL must sit on
the configured origin.  Everything that does not depend on the input (the route, the
fixed headers, the query's encoded names, the JSON encoder) is prepared once per
action, since building runs on every call.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from harbor_confluence.errors import EXIT_INVALID, ConfigError, InputError, Violation

from .manifest import PLACEHOLDER_BASE_URL, Action
from .multipart import Part, encode_form, file_from_input
from .route import _SimpleTemplate as _SimpleTemplate  # re-exported: tests/test_fast_paths.py
from .route import _template as _template  # re-exported: tests/test_fast_paths.py
from .route import percent_encode

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


# json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False), without
# building a new encoder on every call (json.dumps does when given options).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def canonical_json(value: Any) -> bytes:
    """One byte form per JSON value, so fingerprints are stable.

    The form is ``json``'s (sorted keys, no spaces, UTF-8).  orjson writes the same bytes
    for strings, 64-bit integers, booleans, null, lists and objects with string keys, ten
    times faster, so it does whenever the value holds nothing else (a float's exponent is
    written differently); ``tests/test_fast_paths.py`` checks the two agree.
    """
    if _orjson_exact(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # an integer past 64 bits, a key that is not a string
            pass
    return _CANONICAL.encode(value).encode()


def json_line(value: Any) -> bytes:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` as UTF-8 (keys in
    insertion order), by orjson where its bytes are the same (see :func:`canonical_json`)."""
    if _orjson_exact(value):
        try:
            return orjson.dumps(value)
        except TypeError:
            pass
    return _LINE.encode(value).encode()


def _orjson_exact(value: Any) -> bool:
    """Whether orjson's bytes for ``value`` are ``json``'s: no floats, no other types."""
    kind = type(value)
    if kind is dict:
        values: Any = value.values()
    elif kind is list or kind is tuple:
        values = value
    else:
        return kind is str or kind is int or kind is bool or value is None
    for item in values:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if not _orjson_exact(item):
            return False
    return True


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
    """Request building for one action: what does not depend on the input is ready."""

    __slots__ = ("_action", "_body_mode", "_headers", "_name", "_query_names", "_route")

    def __init__(self, action: Action) -> None:
        self._action = action
        self._name = action.name
        self._route = action.compiled_route
        self._body_mode = action.request_body_mode
        self._headers: dict[str, str] = {str(k): v for k, v in action.headers.items()}
        declared = (action.parameters.query or {}).get("properties", {})
        self._query_names: dict[str, str] = {k: percent_encode(k) for k in declared}

    def build(self, target: Target, data: dict[str, Any]) -> PreparedRequest:
        path_values = {k: _scalar(v) for k, v in data.get("path", {}).items()}
        path = self._route.expand_checked(path_values)
        if path is None:
            raise InputError(
                self._name,
                [Violation("path", "route", f"values do not fit the route {self._route.template}")],
            )
        url = target.origin + target.prefix + path
        query = data.get("query")
        if query:
            encoded = _encode_query(query, self._query_names)
            if encoded:
                url += "?" + encoded
        # A path that starts with "/" cannot change the URL's origin: the check is then
        # the same for every path and made once per tenant.
        if not (
            _owns_rooted(target.origin, target.prefix) if path[:1] == "/" else target.owns(url)
        ):  # pragma: no cover - guarded by construction
            raise InputError(self._name, [Violation("path", "origin", "left the tenant origin")])
        body = None
        content_type = None
        review: dict[str, Any] = {}
        mode = self._body_mode
        if mode == "json":
            body = canonical_json(data.get("body", {}))
            content_type = "application/json"
        elif mode == "multipart":
            body, content_type, review = self._multipart(data.get("body") or {})
        action = self._action
        return PreparedRequest(
            action.name,
            action.method,
            url,
            body,
            content_type,
            dict(self._headers) if self._headers else {},
            review,
        )

    def path_values(self, url: str, target: Target) -> dict[str, str] | None:
        """The path values a URL built by :meth:`build` was made from (None if it was not)."""
        prefix = target.origin + target.prefix
        if not url.startswith(prefix):
            return None
        return self._route.match(url[len(prefix) :].partition("?")[0])

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


@functools.lru_cache(maxsize=64)
def _owns_rooted(origin: str, prefix: str) -> bool:
    """Whether every URL ``origin + prefix + "/..."`` is on ``origin`` (Target.owns)."""
    return origin_of(origin + prefix + "/") == origin


def _scalar(value: Any) -> str:
    if type(value) is str:  # the common case, first
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _encode_query(query: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """Sorted ``key=value`` pairs; arrays repeat the key (OpenAPI form, explode).

    Names and values are percent-encoded outside the unreserved set; ``names`` holds the
    encoded form of the names the action declares.
    """
    pairs: list[str] = []
    known = names or {}
    for key in sorted(query):
        value = query[key]
        k = known.get(key) or percent_encode(key)
        if isinstance(value, list):
            pairs.extend(f"{k}={percent_encode(_scalar(v))}" for v in value)
        else:
            pairs.append(f"{k}={percent_encode(_scalar(value))}")
    return "&".join(pairs)
