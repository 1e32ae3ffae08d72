"""Safe reading of YAML/JSON documents: size caps, depth caps, alias-bomb guard, credential scan.

Manifests, policies and catalog documents all come from outside the process, so they
are read with the same guards before any model sees them.  JSON from outside (a CLI
``--input``, a node request body) is read with :func:`loads_json`: its nesting depth is
measured by a linear scan of the text *before* it is parsed, so a deeply nested value is
refused with a clear error instead of exhausting the parser's recursion.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from harbor_confluence.errors import InputError, ManifestError, Violation

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_DOCUMENT_DEPTH",
    "MAX_INPUT_DEPTH",
    "MAX_NODES",
    "MAX_REQUEST_DEPTH",
    "find_credentials",
    "json_too_deep",
    "load_document",
    "loads_json",
    "parse_document",
]

MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
# libyaml's safe loader when available: the same safe subset, several times faster.
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NODES = 200_000
# Nesting caps, counted in containers (objects and arrays; the outermost is level 1).
# Input is an action's {path, query, body}; documents (manifests, policies, catalogs)
# nest JSON Schemas a little deeper.
MAX_INPUT_DEPTH = 64
MAX_DOCUMENT_DEPTH = 100
# An HTTP request body that wraps an input (a node's ``{"input": {...}}``): the input
# itself is held to MAX_INPUT_DEPTH when it is validated.
MAX_REQUEST_DEPTH = MAX_INPUT_DEPTH + 2

# Keys whose *string* value would be a credential.  Metadata keys that merely name the
# header or prefix (``headerName: Authorization``) are allowed.
_SECRET_KEY = re.compile(
    r"(?i)^(x-)?(auth[_-]?token|access[_-]?token|refresh[_-]?token|api[_-]?token|token|"
    r"password|passwd|secret|client[_-]?secret|authorization|api[_-]?key|cookie|credentials?)$"
)
_METADATA_KEYS = frozenset({"headerName", "tokenPrefix", "mode"})
# Values that look like a credential wherever they appear.
_SECRET_VALUE = re.compile(
    r"(?i)^(basic|bearer)\s+[A-Za-z0-9._~+/=-]{8,}$"  # an Authorization header value
    r"|^ATATT[A-Za-z0-9_\-=]{20,}$"  # Atlassian API token
    r"|^eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*$"  # JWT / OAuth access token
)
# One JSON token that matters to nesting: a string (its closing quote optional, so an
# unterminated string ends the scan instead of being re-tried from every quote in it:
# the scan stays linear), or a bracket.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[{\]}]', re.DOTALL)


def json_too_deep(text: str, max_depth: int) -> int | None:
    """Where JSON ``text`` first nests deeper than ``max_depth`` (a character offset), or None.

    One linear pass over the raw text that skips string contents; nothing is parsed.
    Text that is not JSON is measured the same way (its parser reports the rest).
    """
    if text.count("[") + text.count("{") <= max_depth:
        return None  # cannot nest deeper than it has brackets
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        char = token.group()[0]
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return token.start()
        elif char in "]}":
            depth = max(depth - 1, 0)
    return None


def _too_deep_message(max_depth: int) -> str:
    return f"is nested more than {max_depth} levels deep (the limit is {max_depth})"


def loads_json(
    raw: bytes | str,
    source: str = "request",
    max_depth: int = MAX_INPUT_DEPTH,
    *,
    field: str = "body",
) -> Any:
    """Parse JSON from outside the process, refusing deep nesting before parsing it.

    Raises :class:`InputError` (exit 2) for ``source`` with one violation on ``field``:
    rule ``maxDepth`` when the text nests deeper than ``max_depth`` containers, rule
    ``json`` when it is not JSON (``NaN`` and ``Infinity`` included, which Python's parser
    would otherwise accept).  Bytes are decoded as :func:`json.loads` does (UTF-8/16/32).
    """
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode(json.detect_encoding(raw), "surrogatepass")
        except UnicodeDecodeError as exc:
            raise InputError(
                source, [Violation(field, "json", f"is not valid JSON: {exc}")]
            ) from None
    else:
        text = raw
    at = json_too_deep(text, max_depth)
    if at is not None:
        message = f"{_too_deep_message(max_depth)} (at character {at})"
        raise InputError(source, [Violation(field, "maxDepth", message)])
    try:
        return json.loads(text, parse_constant=_not_json)
    except (json.JSONDecodeError, ValueError) as exc:
        raise InputError(source, [Violation(field, "json", f"is not valid JSON: {exc}")]) from None
    except RecursionError:  # pragma: no cover - the scan above caps the depth first
        raise InputError(
            source, [Violation(field, "maxDepth", _too_deep_message(max_depth))]
        ) from None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_document(text: str, source: str, max_depth: int = MAX_DOCUMENT_DEPTH) -> Any:
    """Parse YAML (a superset of JSON) safely and refuse documents that expand too far
    or nest deeper than ``max_depth`` (aliases counted as if copied out)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise ManifestError(source, [f"document is larger than {MAX_DOCUMENT_BYTES} bytes"])
    try:
        data = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a SafeLoader, C or Python
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own cap (1000 levels)
            raise ManifestError(source, [f"document {_too_deep_message(max_depth)}"]) from None
        raise ManifestError(source, [f"not valid YAML/JSON: {exc}"]) from None
    except RecursionError:  # the pure-Python composer recurses per level
        raise ManifestError(source, [f"document {_too_deep_message(max_depth)}"]) from None
    expanded, depth = _measure(data)
    if expanded > MAX_NODES:  # counts are capped at MAX_NODES + 1
        raise ManifestError(
            source,
            [f"document expands to more than {MAX_NODES} nodes: YAML alias bomb?"],
        )
    if depth > max_depth:
        raise ManifestError(
            source,
            [f"document nests {depth} levels deep (limit {max_depth}, aliases counted out)"],
        )
    return data


def load_document(path: str | Path, max_depth: int = MAX_DOCUMENT_DEPTH) -> Any:
    """Read and parse a document file; ``.json`` files must be strict JSON."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ManifestError(str(p), [f"cannot read: {exc.strerror}"]) from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ManifestError(str(p), [f"document is larger than {MAX_DOCUMENT_BYTES} bytes"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(str(p), ["not UTF-8 text"]) from None
    if p.suffix.lower() == ".json":
        at = json_too_deep(text, max_depth)
        if at is not None:
            raise ManifestError(
                str(p), [f"document {_too_deep_message(max_depth)} (at character {at})"]
            )
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(str(p), [f"not valid JSON: {exc}"]) from None
        except RecursionError:  # pragma: no cover - the scan above caps the depth first
            raise ManifestError(str(p), [f"document {_too_deep_message(max_depth)}"]) from None
    return parse_document(text, str(p), max_depth)


def _children(node: dict[Any, Any] | list[Any]) -> list[Any]:
    if isinstance(node, dict):
        return [*node.keys(), *node.values()]
    return node


def _measure(root: Any) -> tuple[int, int]:
    """Node count and nesting depth as if every alias were copied out.

    Iterative (no recursion, whatever the depth) and memoised per object, so alias bombs
    cost O(distinct nodes).  A node that contains itself expands forever: its count is
    reported as over the limit.
    """
    if not isinstance(root, dict | list):
        return 1, 0
    memo: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            size, depth = 1, 1
            for child in _children(node):
                if isinstance(child, dict | list):
                    child_size, child_depth = memo[id(child)]
                    size += child_size
                    depth = max(depth, child_depth + 1)
                else:
                    size += 1
            memo[key] = (min(size, MAX_NODES + 1), depth)
            on_path.discard(key)
            continue
        if key in memo:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if isinstance(child, dict | list) and id(child) not in memo:
                if id(child) in on_path:
                    return MAX_NODES + 1, 0  # a node that contains itself
                stack.append((child, False))
    return memo[id(root)]


def find_credentials(node: Any, where: str = "") -> Iterator[str]:
    """Yield the locations of anything in a document that looks like a credential."""
    if isinstance(node, dict):
        for k, v in node.items():
            loc = f"{where}.{k}" if where else str(k)
            if (
                isinstance(k, str)
                and k not in _METADATA_KEYS
                and _SECRET_KEY.match(k)
                and isinstance(v, str)
                and v.strip()
            ):
                yield f"{loc}: key looks like a credential and carries a value"
                continue
            yield from find_credentials(v, loc)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from find_credentials(v, f"{where}[{i}]")
    elif isinstance(node, str) and _SECRET_VALUE.match(node.strip()):
        yield f"{where}: value looks like a credential"
