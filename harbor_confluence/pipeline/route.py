"""One compiled form of an action's route, shared by everything that reads a route.

Like Starlette's ``compile_path``, a route string is parsed once (at manifest load, see
``Action.compiled_route``) into what its consumers need: the variable names in order,
the *shape* (every ``{var}`` as ``{}``: what the admin deny-list and the OpenAPI lookup
compare), a matching regex and a fast expansion.  Request building expands and
re-checks with it, review vetting matches a stored URL against it, and the spec checks
read its variables and shape, so the six hand-rolled parsers it replaces cannot drift.

Expansion is RFC 6570: a route whose expressions are all simple ``{name}`` (every route
the manifest loader accepts, see :func:`check_route`) is expanded here; any other
template falls back to the ``uritemplate`` library, which gives the same bytes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from uritemplate import URITemplate

__all__ = ["Route", "check_route", "compile_route", "names_of", "percent_encode", "shape_of"]

# Any ``{...}`` expression, as the deny-list and the OpenAPI lookup have always read them.
_EXPRESSION = re.compile(r"\{[^}]*\}")
_EXPRESSION_NAME = re.compile(r"\{([^}]*)\}")
_SPLIT = re.compile(r"(\{[^}]*\})")
_SIMPLE_EXPRESSION = re.compile(r"\{([A-Za-z0-9_]+)\}")
# quote()'s always-safe set: a value made only of these is its own encoding.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
_DOT_SEGMENTS = frozenset({"", ".", ".."})

# What the manifest loader accepts (check_route).
_SEGMENT_VAR = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*\}$")
_LITERAL_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def percent_encode(text: str) -> str:
    """``quote(text, safe="")``, skipping the library call when nothing needs encoding.

    Every character outside the unreserved set is percent-encoded (UTF-8), ``/`` included,
    so a value can never add a path segment, a query or a fragment.
    """
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")


@functools.lru_cache(maxsize=4096)
def shape_of(template: str) -> str:
    """The template with every ``{...}`` replaced by ``{}``: routes that differ only in
    variable names (``{page_id}`` and the spec's ``{page-id}``) have the same shape."""
    return _EXPRESSION.sub("{}", template)


def names_of(template: str) -> list[str]:
    """The text of every ``{...}`` expression, in order (an OpenAPI template's names)."""
    return _EXPRESSION_NAME.findall(template)


class _SimpleTemplate:
    """A route whose expressions are all simple ``{name}`` (RFC 6570 level 1), expanded
    as uritemplate does it — every character outside the unreserved set percent-encoded,
    an undefined variable empty — without its general parser (about 10x faster)."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[tuple[bool, str]]) -> None:
        self.parts = parts  # (is_variable, literal text or variable name)

    def expand(self, values: Mapping[str, str]) -> str:
        return "".join(
            percent_encode(values.get(text) or "") if is_var else text
            for is_var, text in self.parts
        )


def _template(route: str) -> _SimpleTemplate | URITemplate:
    """The fast expander for a simple route, else uritemplate's (operators, lists, modifiers)."""
    parts: list[tuple[bool, str]] = []
    for piece in _SPLIT.split(route):
        if not piece:
            continue
        if piece.startswith("{"):
            simple = _SIMPLE_EXPRESSION.fullmatch(piece)
            if simple is None:
                return URITemplate(route)
            parts.append((True, simple.group(1)))
        elif "{" in piece or "}" in piece:
            return URITemplate(route)
        else:
            parts.append((False, piece))
    return _SimpleTemplate(parts)


@dataclass(frozen=True, slots=True)
class Route:
    """An action's route, compiled once; compares equal by its template text alone.

    ``variables``: the variable names in order (RFC 6570's reading of the template).
    ``shape``: the template with each ``{...}`` as ``{}``.
    ``segments``: each ``/``-separated piece with the variable it names when the whole
    segment is one ``{...}`` (else None).
    """

    template: str
    variables: tuple[str, ...] = field(compare=False)
    shape: str = field(compare=False)
    segments: tuple[tuple[str, str | None], ...] = field(compare=False, repr=False)
    pattern: re.Pattern[str] = field(compare=False, repr=False)
    # One regex group per expression, named as the expression reads (the variable for
    # a simple route): what :meth:`match` returns.
    _groups: tuple[str, ...] = field(compare=False, repr=False)
    _expander: _SimpleTemplate | URITemplate = field(compare=False, repr=False)
    # The simple template's pieces when every variable is a whole segment: expansion
    # cannot then move a segment boundary, so :meth:`expand_checked` needs no regex.
    # Empty for any other route (the regex re-check runs).
    _segmented: tuple[tuple[bool, str], ...] = field(compare=False, repr=False)

    @classmethod
    def compile(cls, template: str) -> Route:
        """Parse ``template`` (any string: it never raises); prefer :func:`compile_route`."""
        expander = _template(template)
        if isinstance(expander, _SimpleTemplate):
            variables = tuple(_SIMPLE_EXPRESSION.findall(template))
        else:
            variables = tuple(
                name for var in URITemplate(template).variables for name in var.variable_names
            )
        pieces = [p for p in re.split(r"(\{[^}]+\})", template) if p]
        regex = "".join("([^/]+)" if p.startswith("{") else re.escape(p) for p in pieces)
        segments = tuple(
            (s, s[1:-1] if s.startswith("{") and s.endswith("}") else None)
            for s in template.split("/")
        )
        whole = sum(1 for _, name in segments if name is not None)
        return cls(
            template=template,
            variables=variables,
            shape=shape_of(template),
            segments=segments,
            pattern=re.compile(rf"\A{regex}\Z"),
            _groups=tuple(re.findall(r"\{([^}]+)\}", template)),
            _expander=expander,
            _segmented=tuple(expander.parts)
            if isinstance(expander, _SimpleTemplate)
            and whole == len(variables)
            and all(name is None or _VAR_NAME.fullmatch(name) for _, name in segments)
            else (),
        )

    @property
    def is_simple(self) -> bool:
        """Every expression is a plain ``{name}`` (no RFC 6570 operator or modifier)."""
        return isinstance(self._expander, _SimpleTemplate)

    def expand(self, values: Mapping[str, Any]) -> str:
        """The path for ``values`` (strings), each percent-encoded; a missing one is empty."""
        if isinstance(self._expander, _SimpleTemplate):
            return self._expander.expand(values)
        return str(self._expander.expand(dict(values)))

    def expand_checked(self, values: Mapping[str, str]) -> str | None:
        """The path for ``values``, or None when it does not fit the route segment for
        segment: a variable missing or empty, a ``.``/``..`` segment, or a value that would
        not come back unchanged from :meth:`match`."""
        if self._segmented:
            out: list[str] = []
            for is_var, text in self._segmented:
                if is_var:
                    text = percent_encode(values.get(text) or "")
                    if text in _DOT_SEGMENTS:
                        return None
                out.append(text)
            return "".join(out)
        path = self.expand(values)
        match = self.pattern.match(path)
        if match is None:
            return None
        groups = match.groups()
        if any(g in _DOT_SEGMENTS for g in groups):
            return None
        if [unquote(g) for g in groups] != [values.get(name) for name in self._groups]:
            return None
        return path

    def match(self, path: str) -> dict[str, str] | None:
        """The (unquoted) values ``path`` was expanded from, or None if it does not fit."""
        match = self.pattern.match(path)
        if match is None:
            return None
        return dict(zip(self._groups, map(unquote, match.groups()), strict=True))

    def fits(self, path: str) -> bool:
        """Whether ``path`` has this route's form (literal segments, one segment per variable)."""
        return self.pattern.match(path) is not None


@functools.lru_cache(maxsize=1024)
def compile_route(template: str) -> Route:
    """The one :class:`Route` for ``template`` (cached: the loader validates, then builds)."""
    return Route.compile(template)


def check_route(route: str) -> None:
    """Refuse any route that is not a fixed path under /wiki/ with whole-segment {vars}."""
    if "://" in route or route.startswith("//"):
        raise ValueError("absolute URLs are refused: routes are paths on the configured tenant")
    if not route.startswith("/wiki/"):
        raise ValueError("routes must stay under /wiki/")
    for expr in names_of(route):
        if not _VAR_NAME.fullmatch(expr):
            raise ValueError(
                f"only simple {{var}} expansion is allowed, not {{{expr}}} "
                "(reserved, fragment, explode and prefix forms can reach other paths)"
            )
    if any(c in route for c in "?#\\%") or any(ord(c) < 0x21 or ord(c) > 0x7E for c in route):
        raise ValueError("routes may not contain a query, fragment, escapes or spaces")
    for segment in route.split("/")[1:]:
        if segment in ("", ".", ".."):
            raise ValueError("routes may not contain empty, '.' or '..' segments")
        if "{" in segment or "}" in segment:
            if not _SEGMENT_VAR.match(segment):
                raise ValueError(f"a route variable must be a whole path segment: {segment!r}")
        elif not _LITERAL_SEGMENT.match(segment):
            raise ValueError(f"unexpected characters in route segment {segment!r}")
