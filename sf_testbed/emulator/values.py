"""Generated values: each field's pool of Salesforce-printed values (the CSV edge cases real data holds
included) and the fields whose value follows from the row number (Id, SystemModstamp, Name...)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from .schemas import ID_PREFIX, FieldMeta, salesforce_id

if TYPE_CHECKING:
    from .org import ObjectModel


# Values every generated text pool mixes in: the CSV edge cases Salesforce data really holds.
TRICKY_TEXT = [
    "Acme, Inc.",
    'He said "hello", then left',
    "Line one\nLine two",
    "Windows line\r\nbreak, and a comma",
    'Quote at end"',
    '"Quoted start',
    "Zürich – Straße 北京 🚀",
    "Ünïcödé; semi;colons|pipes^carets`backquotes\ttab",
    "   leading and trailing spaces   ",
    "Three\n\nnewlines\n",
    "a NUL\x00byte inside",
    "a lone\rcarriage return",
    "every plane: \u00e9 \u4e2d \U0001d11e \U00020000 \U000e0041 \U0010fffd",
]


WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
]


def iso_ms(ms: int) -> str:
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def quote(value: str | None, blank: str = "") -> str:
    """Salesforce's CSV encoding of one value: always quoted, quotes doubled, null as ``blank`` (an empty
    field, or ``""`` as some orgs' exports write it)."""
    if value is None:
        return blank
    return '"' + value.replace('"', '""') + '"'


def java_double(value: float) -> str:
    """A number as Salesforce prints double, currency and percent values: Java's ``Double.toString``,
    plain between 10^-3 and 10^7 (always with a fraction digit: ``100.0``), else scientific (``9.9213206E7``)."""
    if value == 0:
        return "0.0"
    if 1e-3 <= abs(value) < 1e7:
        text = repr(float(value))
        return text if "e" not in text else format(value, "f")
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    digits_text = "".join(map(str, digits))
    mantissa = digits_text[0] + "." + (digits_text[1:] or "0")
    return ("-" if sign else "") + f"{mantissa}E{exponent + len(digits) - 1}"


def stride(name: str) -> int:
    # A per-field stride so that fields do not move in lock-step; odd, so it cycles the whole pool.
    h = 0
    for ch in name:
        h = (h * 131 + ord(ch)) & 0xFFFF
    return (h | 1) * 2 + 1


class LazyPools(dict):
    """A field's pre-quoted values, made the first time the field is read."""

    def __init__(self, model: ObjectModel) -> None:
        super().__init__()
        self.model = model

    def __missing__(self, name: str) -> list[str]:
        self[name] = pool = self.model._field_pool(self.model.by_name[name.lower()])
        return pool


def record_name(obj: ObjectModel, i: int) -> str:
    return f"{obj.name.replace('__c', '')} {i:08d}"


ROW_FIELDS = {
    "Id": lambda o, i: salesforce_id(o.prefix, i + 1),
    "IsDeleted": lambda o, i: "true" if o.is_deleted(i) else "false",
    "SystemModstamp": lambda o, i: iso_ms(o.modstamp_ms(i)),
    "LastModifiedDate": lambda o, i: iso_ms(o.modstamp_ms(i)),
    "CreatedDate": lambda o, i: iso_ms(o.created_ms(i)),
    "Name": record_name,
    "CaseNumber": lambda o, i: f"{i + 1:08d}",
    "Username": lambda o, i: f"user{i}@example.com",
}


def value_pool(f: FieldMeta, rng: random.Random, blank: str = "", size: int = 509) -> list[str]:
    """Pre-quoted candidate values for one field (509 is prime, so strides cycle through all)."""
    values: list[str | None] = []
    for k in range(size):
        if f.nillable and rng.random() < 0.08:
            values.append(None)
            continue
        values.append(random_value(f, rng, k))
    return [quote(v, blank) for v in values]


def random_value(f: FieldMeta, rng: random.Random, k: int) -> str:
    t = f.type
    if t in ("reference", "id"):
        return salesforce_id(ID_PREFIX.get(f.reference_to or "", "a0Z"), rng.randrange(1, 1000))
    if t == "boolean":
        return "true" if rng.random() < 0.5 else "false"
    if t in ("int", "long"):
        hi = 10 ** min(f.precision or 9, 12)
        return str(rng.randrange(-hi // 100, hi))
    if t in ("double", "currency", "percent"):
        scale = f.scale
        hi = 10 ** min(max((f.precision or 18) - scale, 1), 12)
        value = rng.uniform(-hi / 100, hi - 1) if t != "percent" else rng.uniform(0, 100)
        if f.calculated:  # a formula computes more fraction digits than describe's scale says
            return java_double(round(value, scale + 4))
        return java_double(round(value, scale))
    if t == "date":
        return (date(2020, 1, 1) + timedelta(days=rng.randrange(0, 2500))).isoformat()
    if t == "datetime":
        ms = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp() * 1000) + rng.randrange(0, 10**11)
        return iso_ms(ms)
    if t == "time":
        return f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.000Z"
    if t == "picklist":
        return rng.choice(f.picklist)
    if t == "multipicklist":
        return ";".join(sorted(rng.sample(f.picklist, rng.randrange(1, len(f.picklist) + 1))))
    if t == "email":
        return f"{rng.choice(WORDS)}.{rng.choice(WORDS)}{k}@example.com"
    if t == "phone":
        return f"+1 ({rng.randrange(200, 999)}) 555-{rng.randrange(10000):04d}"
    if t == "url":
        return f"https://www.{rng.choice(WORDS)}{k}.example.com/path?q=1&r=2"
    if t == "encryptedstring":
        return "****" + str(rng.randrange(1000, 9999))
    if t == "textarea" and f.length >= 131072 and k == 0:
        # a Long Text Area filled to its limit, CRLF line breaks and a quote included: one value of the pool
        # (about 1 row in 509), so that big objects do not grow several-fold
        line = '"Full" long text, with a comma\r\n'
        return (line * (f.length // len(line) + 1))[: f.length]
    if t == "textarea" and f.length > 255:
        parts = [" ".join(rng.choices(WORDS, k=rng.randrange(3, 25))) for _ in range(rng.randrange(1, 4))]
        if rng.random() < 0.4:
            parts.append(rng.choice(TRICKY_TEXT))
        return "\n".join(parts)[: f.length]
    # string, combobox, short textarea
    if rng.random() < 0.15:
        return rng.choice(TRICKY_TEXT)[: f.length]
    return " ".join(rng.choices(WORDS, k=rng.randrange(1, 4))).title()[: f.length]
