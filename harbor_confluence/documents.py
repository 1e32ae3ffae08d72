"""Safe reading of YAML/JSON documents: size caps, alias-bomb guard, credential scan.

Manifests, policies and catalog documents all come from outside the process, so they
are read with the same three guards before any model sees them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import ManifestError

__all__ = ["MAX_DOCUMENT_BYTES", "MAX_NODES", "find_credentials", "load_document", "parse_document"]

MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
# libyaml's safe loader when available: the same safe subset, several times faster.
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NODES = 200_000

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


def parse_document(text: str, source: str) -> Any:
    """Parse YAML (a superset of JSON) safely and refuse documents that expand too far."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise ManifestError(source, [f"document is larger than {MAX_DOCUMENT_BYTES} bytes"])
    try:
        data = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a SafeLoader, C or Python
    except yaml.YAMLError as exc:
        raise ManifestError(source, [f"not valid YAML/JSON: {exc}"]) from None
    expanded = _expanded_size(data, {})
    if expanded > MAX_NODES:
        raise ManifestError(
            source,
            [f"document expands to {expanded} nodes (limit {MAX_NODES}): YAML alias bomb?"],
        )
    return data


def load_document(path: str | Path) -> Any:
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
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(str(p), [f"not valid JSON: {exc}"]) from None
    return parse_document(text, str(p))


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """Node count as if every alias were copied out, memoised so bombs cost O(nodes)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_NODES + 1  # a node that contains itself expands forever
    if isinstance(node, dict):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.items())
    elif isinstance(node, list):
        size = 1 + sum(_expanded_size(v, memo) for v in node)
    else:
        size = 1
    memo[key] = size
    return size


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
