"""A small SOQL parser for the emulator: SELECT list, FROM, WHERE with AND-ed comparisons, LIMIT.

It also knows what Bulk API 2.0 rejects (aggregates, OFFSET, TYPEOF, subqueries, compound and base64
fields), so the emulator fails a job the way Salesforce does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:\\.|[^'\\])*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
AGGREGATES = {"count", "max", "min", "sum", "avg", "count_distinct"}
KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "limit",
    "offset",
    "order",
    "by",
    "group",
    "having",
    "asc",
    "desc",
    "nulls",
    "first",
    "last",
    "typeof",
    "in",
    "like",
    "includes",
    "excludes",
    "true",
    "false",
    "null",
    "with",
    "for",
}


class SoqlError(ValueError):
    """A query Salesforce would refuse; ``code`` is Salesforce's errorCode."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Condition:
    field: str
    op: str
    value: object  # str | int | float | bool | None | datetime (epoch ms as int for datetimes)
    kind: str  # 'string' | 'datetime' | 'date' | 'number' | 'bool' | 'null'


@dataclass
class SelectItem:
    field: str | None  # None for COUNT()
    aggregate: str | None = None


@dataclass
class Query:
    items: list[SelectItem]
    sobject: str
    conditions: list[Condition] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    order_by: str | None = None
    has_subquery: bool = False
    has_typeof: bool = False

    @property
    def is_aggregate(self) -> bool:
        return any(i.aggregate for i in self.items)


def tokenize(soql: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = soql.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token at position {pos}: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


def _parse_datetime(text: str) -> int:
    t = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", t):
        t = t[:-2] + ":" + t[-2:]
    return int(datetime.fromisoformat(t).timestamp() * 1000)


class _Tokens:
    """The tokens of one query, read front to back."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.pos = tokens, 0

    def __bool__(self) -> bool:
        return self.pos < len(self.tokens)

    def peek(self, offset: int = 0) -> tuple[str, str]:
        at = self.pos + offset
        return self.tokens[at] if at < len(self.tokens) else ("eof", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.pos += 1
        return tok

    def expect_kw(self, word: str) -> None:
        kind, value = self.take()
        if kind != "ident" or value.lower() != word:
            raise SoqlError("MALFORMED_QUERY", f"expected {word.upper()} but found {value or 'end of query'!r}")

    def skip_group(self) -> None:
        """Past the ``)`` closing a ``(`` just taken."""
        depth = 1
        while depth and self:
            value = self.take()[1]
            depth += (value == "(") - (value == ")")


def parse(soql: str) -> Query:
    tokens = _Tokens(tokenize(soql))
    tokens.expect_kw("select")
    query = _select_list(tokens)
    while tokens:
        _clause(tokens, query)
    return query


def _select_list(tokens: _Tokens) -> Query:
    """``field, COUNT(), ... FROM sObject``: the fields and aggregates; subqueries and TYPEOF are noted, not
    parsed (Bulk API 2.0 refuses both)."""
    items: list[SelectItem] = []
    has_subquery = has_typeof = False
    while True:
        kind, value = tokens.take()
        if kind == "punct" and value == "(":
            has_subquery = True
            tokens.skip_group()
        elif kind == "ident" and value.lower() == "typeof":
            has_typeof = True
            while tokens.peek()[1].lower() != "end" and tokens:
                tokens.take()
            tokens.take()
        elif kind == "ident" and value.lower() in AGGREGATES and tokens.peek() == ("punct", "("):
            items.append(_aggregate(tokens, value))
        elif kind == "ident":
            items.append(SelectItem(value))
        else:
            raise SoqlError("MALFORMED_QUERY", f"unexpected {value!r} in SELECT list")
        if tokens.peek() != ("punct", ","):
            break
        tokens.take()
    tokens.expect_kw("from")
    kind, sobject = tokens.take()
    if kind != "ident":
        raise SoqlError("MALFORMED_QUERY", "expected an sObject name after FROM")
    return Query(items, sobject, has_subquery=has_subquery, has_typeof=has_typeof)


def _aggregate(tokens: _Tokens, function: str) -> SelectItem:
    tokens.take()  # (
    arg = None if tokens.peek() == ("punct", ")") else tokens.take()[1]
    if tokens.take() != ("punct", ")"):
        raise SoqlError("MALFORMED_QUERY", f"unclosed {function}(")
    if tokens.peek()[0] == "ident" and tokens.peek()[1].lower() not in KEYWORDS:
        tokens.take()  # alias
    return SelectItem(arg, function.lower())


def _clause(tokens: _Tokens, query: Query) -> None:
    """One of WHERE (comparisons joined by AND), LIMIT, OFFSET, ORDER BY."""
    word = tokens.take()[1]
    lw = word.lower()
    if lw == "where":
        query.conditions.append(_condition(tokens))
        while tokens.peek()[1].lower() in ("and", "or"):
            if tokens.take()[1].lower() == "or":
                raise SoqlError("MALFORMED_QUERY", "the emulator supports only AND in WHERE clauses")
            query.conditions.append(_condition(tokens))
    elif lw == "limit":
        query.limit = int(tokens.take()[1])
    elif lw == "offset":
        query.offset = int(tokens.take()[1])
    elif lw == "order":
        tokens.expect_kw("by")
        query.order_by = tokens.take()[1]
        while tokens.peek()[1].lower() in ("asc", "desc", "nulls", "first", "last"):
            tokens.take()
    else:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token {word!r}")


def _condition(tokens: _Tokens) -> Condition:
    """One comparison; parentheses around it (or around a group of AND-ed ones) are accepted and dropped."""
    while tokens.peek() == ("punct", "("):
        tokens.take()
    condition = _comparison(tokens)
    while tokens.peek() == ("punct", ")"):
        tokens.take()
    return condition


def _comparison(tokens: _Tokens) -> Condition:
    kind, name = tokens.take()
    if kind != "ident":
        raise SoqlError("MALFORMED_QUERY", f"expected a field name in WHERE, found {name!r}")
    kind, op = tokens.take()
    if kind != "op":
        raise SoqlError("MALFORMED_QUERY", f"the emulator supports only comparisons in WHERE, found {op!r}")
    op = "!=" if op == "<>" else op
    kind, raw = tokens.take()
    if kind == "string":
        return Condition(name, op, raw[1:-1].replace("\\'", "'").replace("\\\\", "\\"), "string")
    if kind == "datetime":
        return Condition(name, op, _parse_datetime(raw), "datetime")
    if kind == "date":
        return Condition(name, op, date.fromisoformat(raw).isoformat(), "date")
    if kind == "number":
        return Condition(name, op, float(raw), "number")
    if kind == "ident" and raw.lower() in ("true", "false"):
        return Condition(name, op, raw.lower() == "true", "bool")
    if kind == "ident" and raw.lower() == "null":
        return Condition(name, op, None, "null")
    raise SoqlError("MALFORMED_QUERY", f"unsupported literal {raw!r} for {name}")


def compare(a: object, op: str, b: object) -> bool:
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    if a is None or b is None:
        return False
    if op == "<":
        return a < b  # type: ignore[operator]
    if op == "<=":
        return a <= b  # type: ignore[operator]
    if op == ">":
        return a > b  # type: ignore[operator]
    if op == ">=":
        return a >= b  # type: ignore[operator]
    raise SoqlError("MALFORMED_QUERY", f"unknown operator {op}")


def epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).timestamp() * 1000)
