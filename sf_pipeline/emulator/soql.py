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


def parse(soql: str) -> Query:
    tokens = tokenize(soql)
    pos = 0

    def peek(offset: int = 0) -> tuple[str, str]:
        return tokens[pos + offset] if pos + offset < len(tokens) else ("eof", "")

    def take() -> tuple[str, str]:
        nonlocal pos
        tok = peek()
        pos += 1
        return tok

    def expect_kw(word: str) -> None:
        kind, value = take()
        if kind != "ident" or value.lower() != word:
            raise SoqlError("MALFORMED_QUERY", f"expected {word.upper()} but found {value or 'end of query'!r}")

    expect_kw("select")
    items: list[SelectItem] = []
    has_subquery = has_typeof = False
    while True:
        kind, value = take()
        if kind == "punct" and value == "(":
            has_subquery = True
            depth = 1
            while depth and pos < len(tokens):
                k, v = take()
                depth += (v == "(") - (v == ")")
        elif kind == "ident" and value.lower() == "typeof":
            has_typeof = True
            while peek()[1].lower() != "end" and pos < len(tokens):
                take()
            take()
        elif kind == "ident" and value.lower() in AGGREGATES and peek() == ("punct", "("):
            take()
            arg = None
            if peek() != ("punct", ")"):
                arg = take()[1]
            if take() != ("punct", ")"):
                raise SoqlError("MALFORMED_QUERY", f"unclosed {value}(")
            items.append(SelectItem(arg, value.lower()))
            if peek()[0] == "ident" and peek()[1].lower() not in KEYWORDS:
                take()  # alias
        elif kind == "ident":
            items.append(SelectItem(value))
        else:
            raise SoqlError("MALFORMED_QUERY", f"unexpected {value!r} in SELECT list")
        if peek() == ("punct", ","):
            take()
            continue
        break
    expect_kw("from")
    kind, sobject = take()
    if kind != "ident":
        raise SoqlError("MALFORMED_QUERY", "expected an sObject name after FROM")
    query = Query(items, sobject, has_subquery=has_subquery, has_typeof=has_typeof)

    while pos < len(tokens):
        kind, word = take()
        lw = word.lower()
        if lw == "where":
            query.conditions.append(_condition(take, peek))
            while peek()[1].lower() in ("and", "or"):
                conj = take()[1].lower()
                if conj == "or":
                    raise SoqlError("MALFORMED_QUERY", "the emulator supports only AND in WHERE clauses")
                query.conditions.append(_condition(take, peek))
        elif lw == "limit":
            query.limit = int(take()[1])
        elif lw == "offset":
            query.offset = int(take()[1])
        elif lw == "order":
            expect_kw("by")
            query.order_by = take()[1]
            while peek()[1].lower() in ("asc", "desc", "nulls", "first", "last"):
                take()
        else:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token {word!r}")
    return query


def _condition(take, peek) -> Condition:
    """One comparison; parentheses around it (or around a group of AND-ed ones) are accepted and dropped."""
    while peek() == ("punct", "("):
        take()
    condition = _comparison(take, peek)
    while peek() == ("punct", ")"):
        take()
    return condition


def _comparison(take, peek) -> Condition:
    kind, name = take()
    if kind != "ident":
        raise SoqlError("MALFORMED_QUERY", f"expected a field name in WHERE, found {name!r}")
    kind, op = take()
    if kind != "op":
        raise SoqlError("MALFORMED_QUERY", f"the emulator supports only comparisons in WHERE, found {op!r}")
    op = "!=" if op == "<>" else op
    kind, raw = take()
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
