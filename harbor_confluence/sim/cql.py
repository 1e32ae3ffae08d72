"""A small CQL (Confluence Query Language) subset: tokenizer, parser and AST.

Grammar (keywords are case-insensitive)::

    query   := expr [ORDER BY field [ASC|DESC] {"," field [ASC|DESC]}]
    expr    := and {OR and}
    and     := unary {AND unary}
    unary   := NOT unary | "(" expr ")" | clause
    clause  := field op value | field [NOT] IN "(" value {"," value} ")"
    value   := "string" | 'string' | word | function "(" ")"

Strings take ``\\"`` (or ``\\'``) and ``\\\\`` escapes; any other backslash sequence, an
unterminated string, an unknown field, an operator a field does not take, or anything left
over is a :class:`CqlError` (the search route answers 400). The AST is plain frozen
dataclasses, so tests can check where every piece of a hostile input ended up.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "FIELDS",
    "USER_FIELDS",
    "And",
    "Clause",
    "CqlError",
    "Not",
    "Or",
    "OrderBy",
    "Query",
    "Token",
    "Value",
    "parse",
    "parse_date",
    "parse_user_query",
    "tokenize",
]


class CqlError(ValueError):
    """The query cannot be parsed; ``position`` is the 0-based character offset."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"{reason} at character {position}")
        self.reason = reason
        self.position = position


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "string", "word", "op", "(", ")", ",", "end"
    text: str  # a string token holds the unescaped value
    position: int


@dataclass(frozen=True, slots=True)
class Value:
    """A literal: ``string`` (quoted), ``word`` (bare) or ``function`` (e.g. currentUser)."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Clause:
    field: str  # lower-case
    op: str  # "=", "!=", "~", "!~", ">", ">=", "<", "<=", "in", "not in"
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Clause | And | Or | Not


@dataclass(frozen=True, slots=True)
class OrderBy:
    field: str
    descending: bool


@dataclass(frozen=True, slots=True)
class Query:
    where: Node
    order_by: tuple[OrderBy, ...] = ()

    def clauses(self) -> Iterator[Clause]:
        """Every clause, left to right."""
        stack: list[Node] = [self.where]
        found: list[Clause] = []
        while stack:
            node = stack.pop()
            if isinstance(node, Clause):
                found.append(node)
            elif isinstance(node, Not):
                stack.append(node.item)
            else:
                stack.extend(reversed(node.items))
        return iter(found)

    def literals(self) -> list[str]:
        """The text of every quoted string, in order."""
        return [v.text for c in self.clauses() for v in c.values if v.kind == "string"]


_EQUALITY = ("=", "!=", "in", "not in")
_RANGE = ("=", "!=", ">", ">=", "<", "<=")
FIELDS: dict[str, tuple[str, ...]] = {
    "type": _EQUALITY,
    "space": _EQUALITY,
    "label": _EQUALITY,
    "text": ("~", "!~"),
    "title": ("~", "!~", *_EQUALITY),
    "contributor": _EQUALITY,
    "creator": _EQUALITY,
    "created": _RANGE,
    "lastmodified": _RANGE,
    "ancestor": _EQUALITY,
    "id": _EQUALITY,
}
ALIASES = {"space.key": "space"}
ORDER_FIELDS = ("created", "lastmodified", "title", "id")
TYPES = ("page", "blogpost", "comment", "attachment")
FUNCTIONS = ("currentuser",)
_KEYWORDS = {"and", "or", "not", "in", "order", "by", "asc", "desc"}
_OPS = ("!=", ">=", "<=", "!~", "=", "~", ">", "<")
_WORD = re.compile(r"[\w.:*\-]+")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\"}
_DATE = re.compile(r"(\d{4})[-/](\d\d)[-/](\d\d)(?: (\d\d):(\d\d))?")


def tokenize(cql: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(cql)
    while i < n:
        char = cql[i]
        if char.isspace():
            i += 1
            continue
        if char in "(),":
            tokens.append(Token(char, char, i))
            i += 1
            continue
        if char in "\"'":
            start, i = i, i + 1
            out: list[str] = []
            while True:
                if i >= n:
                    raise CqlError("Unterminated string literal", start)
                c = cql[i]
                if c == "\\":
                    if i + 1 >= n or cql[i + 1] not in _ESCAPES:
                        raise CqlError("Illegal escape sequence in string literal", i)
                    out.append(_ESCAPES[cql[i + 1]])
                    i += 2
                elif c == char:
                    i += 1
                    break
                else:
                    out.append(c)
                    i += 1
            tokens.append(Token("string", "".join(out), start))
            continue
        op = next((o for o in _OPS if cql.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("op", op, i))
            i += len(op)
            continue
        match = _WORD.match(cql, i)
        if match is None:
            raise CqlError(f"Unexpected character {char!r}", i)
        tokens.append(Token("word", match.group(0), i))
        i = match.end()
    tokens.append(Token("end", "", n))
    return tokens


class _Parser:
    def __init__(
        self,
        tokens: list[Token],
        fields: dict[str, tuple[str, ...]] | None = None,
        types: tuple[str, ...] = TYPES,
    ) -> None:
        self.tokens = tokens
        self.at = 0
        self.fields = FIELDS if fields is None else fields
        self.types = types

    @property
    def token(self) -> Token:
        return self.tokens[self.at]

    def keyword(self, *words: str) -> bool:
        token = self.token
        return token.kind == "word" and token.text.lower() in words

    def take(self) -> Token:
        token = self.token
        self.at += 1
        return token

    def expect(self, kind: str, what: str) -> Token:
        if self.token.kind != kind:
            raise self.error(f"Expected {what}")
        return self.take()

    def error(self, reason: str) -> CqlError:
        token = self.token
        found = "end of query" if token.kind == "end" else repr(token.text)
        return CqlError(f"{reason}, found {found}", token.position)

    def query(self) -> Query:
        if self.token.kind == "end":
            raise self.error("Expected a clause")
        where = self.expr()
        order: list[OrderBy] = []
        if self.keyword("order"):
            self.take()
            if not self.keyword("by"):
                raise self.error("Expected BY after ORDER")
            self.take()
            while True:
                field = self.expect("word", "a field to order by")
                name = field.text.lower()
                if name not in ORDER_FIELDS:
                    raise CqlError(f"Cannot order by field '{field.text}'", field.position)
                descending = False
                if self.keyword("asc", "desc"):
                    descending = self.take().text.lower() == "desc"
                order.append(OrderBy(name, descending))
                if self.token.kind != ",":
                    break
                self.take()
        if self.token.kind != "end":
            raise self.error("Expected AND, OR or the end of the query")
        return Query(where, tuple(order))

    def expr(self) -> Node:
        items = [self.conjunction()]
        while self.keyword("or"):
            self.take()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Node:
        items = [self.unary()]
        while self.keyword("and"):
            self.take()
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        if self.keyword("not"):
            self.take()
            return Not(self.unary())
        if self.token.kind == "(":
            self.take()
            node = self.expr()
            self.expect(")", "')'")
            return node
        return self.clause()

    def clause(self) -> Clause:
        token = self.token
        if token.kind != "word" or token.text.lower() in _KEYWORDS:
            raise self.error("Expected a field name")
        self.take()
        field = ALIASES.get(token.text.lower(), token.text.lower())
        if field not in self.fields:
            raise CqlError(f"No field exists with the name '{token.text}'", token.position)
        op_token = self.token
        if self.keyword("in"):
            self.take()
            op = "in"
        elif self.keyword("not"):
            self.take()
            if not self.keyword("in"):
                raise self.error("Expected IN after NOT")
            self.take()
            op = "not in"
        elif op_token.kind == "op":
            op = self.take().text
        else:
            raise self.error(f"Expected an operator after '{token.text}'")
        if op not in self.fields[field]:
            raise CqlError(
                f"The operator '{op}' is not supported by field '{field}'", op_token.position
            )
        if op in ("in", "not in"):
            self.expect("(", "'(' after IN")
            values = [self.value(field)]
            while self.token.kind == ",":
                self.take()
                values.append(self.value(field))
            self.expect(")", "')' to close the list")
            return Clause(field, op, tuple(values))
        return Clause(field, op, (self.value(field),))

    def value(self, field: str) -> Value:
        token = self.token
        if token.kind == "string":
            self.take()
            value = Value("string", token.text)
        elif token.kind == "word" and token.text.lower() not in _KEYWORDS:
            self.take()
            if self.token.kind == "(":
                name = token.text.lower()
                if name not in FUNCTIONS:
                    raise CqlError(f"Unknown function '{token.text}'", token.position)
                self.take()
                self.expect(")", "')': functions take no arguments here")
                value = Value("function", name)
            else:
                value = Value("word", token.text)
        else:
            raise self.error(f"Expected a value for field '{field}'")
        _check_value(field, value, token.position, self.types)
        return value


def _check_value(field: str, value: Value, position: int, types: tuple[str, ...] = TYPES) -> None:
    """Field-specific literal checks, so nonsense is a 400 rather than an empty result."""
    if value.kind == "function":
        if field not in ("contributor", "creator"):
            raise CqlError(f"Function {value.text}() cannot be used with '{field}'", position)
        return
    text = value.text
    if field == "type" and text not in types:
        raise CqlError(f"Unsupported type '{text}' (supported: {', '.join(types)})", position)
    if field == "ancestor" and not (text.isascii() and text.isdigit()):
        raise CqlError(f"'ancestor' takes a content id, got '{text}'", position)
    if field == "id":
        bare = text[3:] if text.startswith("att") else text
        if not (bare.isascii() and bare.isdigit()):
            raise CqlError(f"'id' takes a content id, got '{text}'", position)
    if field in ("created", "lastmodified"):
        parse_date(text, position)


def parse_date(text: str, position: int = 0) -> tuple[str, bool]:
    """A CQL date literal as (Confluence timestamp, has_time). Times are UTC."""
    match = _DATE.fullmatch(text)
    if match is None:
        raise CqlError(
            f"Invalid date '{text}': use yyyy-MM-dd, yyyy/MM/dd or either with ' HH:mm'",
            position,
        )
    year, month, day, hour, minute = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), tzinfo=UTC
        )
    except ValueError:
        raise CqlError(f"Invalid date '{text}'", position) from None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"), hour is not None


def parse(cql: str) -> Query:
    """Parse a CQL string or raise :class:`CqlError`."""
    return _Parser(tokenize(cql)).query()


# The fields of user search (GET /wiki/rest/api/search/user), where ``type`` is ``user``.
USER_FIELDS: dict[str, tuple[str, ...]] = {
    "type": _EQUALITY,
    "user": _EQUALITY,
    "user.accountid": _EQUALITY,
    "user.fullname": ("~", "!~"),
}


def parse_user_query(cql: str) -> Query:
    """Parse a user-search CQL string (USER_FIELDS only) or raise :class:`CqlError`."""
    return _Parser(tokenize(cql), USER_FIELDS, ("user",)).query()
