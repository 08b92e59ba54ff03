"""The emulator's synthetic org: object metadata (describe) and deterministic, streaming row generation.

Row ``i`` of an object is a pure function of (seed, object, i): nothing is held in memory, and the
same seed always gives the same org. SystemModstamp grows with ``i`` so that a time window is a
contiguous run of rows; every 50th row (by a hash) is soft-deleted and only ``queryAll`` sees it.

On top of that generated history, records can be changed *now* (``apply_changes``: insert, update,
soft-delete, undelete, hard-delete), as users and integrations change a real org: a changed record leaves
its place in the generated rows and lives in a small overlay with SystemModstamp = now. Formula fields
(``calculated``) take values that move with the org's formula clock (``formula_shift``), never with
SystemModstamp, as in Salesforce where a formula is evaluated when it is read.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

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

ID_PREFIX = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "Lead": "00Q",
    "Case": "500",
    "Task": "00T",
    "User": "005",
    "Invoice__c": "a0X",
}
CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_END = datetime(2026, 11, 1, tzinfo=UTC)


def record_number(record_id: str) -> int:
    """The ``n`` that ``salesforce_id`` encoded in an Id (its 7 base-62 digits)."""
    n = 0
    for ch in record_id[8:15]:
        n = n * 62 + BASE62.index(ch)
    return n


def salesforce_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce Id for record number ``n`` with a valid case-safe suffix."""
    body = ""
    for _ in range(7):
        n, r = divmod(n, 62)
        body = BASE62[r] + body
    id15 = prefix + "5g000" + body
    suffix = ""
    for start in range(0, 15, 5):
        bits = 0
        for k, ch in enumerate(id15[start : start + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << k
        suffix += CHECKSUM_CHARS[bits]
    return id15 + suffix


@dataclass(frozen=True)
class FieldMeta:
    """One field of a describe result (the subset of attributes the pipeline reads)."""

    name: str
    type: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    nillable: bool = True
    custom: bool = False
    compound_field_name: str | None = None
    reference_to: str | None = None
    picklist: tuple[str, ...] = ()
    label: str = ""
    calculated: bool = False  # a formula field: its values change without SystemModstamp moving

    def describe(self) -> dict:
        return {
            "name": self.name,
            "label": self.label or default_label(self.name),
            "type": self.type,
            "length": self.length,
            "precision": self.precision,
            "scale": self.scale,
            "digits": self.precision if self.type in ("int", "long") else 0,
            "nillable": self.nillable,
            "custom": self.custom,
            "compoundFieldName": self.compound_field_name,
            "referenceTo": [self.reference_to] if self.reference_to else [],
            "picklistValues": [{"value": v, "label": v, "active": True, "defaultValue": False} for v in self.picklist],
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
            "filterable": self.type not in ("textarea", "base64"),
            "updateable": self.name not in SYSTEM_FIELDS,
            "createable": self.name not in SYSTEM_FIELDS,
            "calculated": self.calculated,
            "unique": self.type == "id",
            "externalId": False,
        }

    @property
    def bulk_queryable(self) -> bool:
        return self.type not in ("address", "location", "base64")


SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "long": "xsd:long",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "time": "xsd:time",
    "base64": "xsd:base64Binary",
    "address": "urn:address",
    "location": "urn:location",
}
SYSTEM_FIELDS = {"Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"}


def default_label(name: str) -> str:
    """A field's label as Salesforce shows standard and custom ones: ``AnnualRevenue`` -> ``Annual Revenue``,
    ``OwnerId`` -> ``Owner ID``, ``Credit_Limit__c`` -> ``Credit Limit``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.removesuffix("__c")).replace("_", " ")
    return re.sub(r"\bId\b", "ID", words)


def _f(name: str, type_: str, **kw) -> FieldMeta:
    defaults = {
        "string": {"length": 255},
        "textarea": {"length": 32000},
        "picklist": {"length": 255},
        "multipicklist": {"length": 4099},
        "combobox": {"length": 255},
        "email": {"length": 80},
        "phone": {"length": 40},
        "url": {"length": 255},
        "id": {"length": 18, "nillable": False},
        "reference": {"length": 18},
        "encryptedstring": {"length": 175},
        "int": {"precision": 9},
        "long": {"precision": 18},
        "double": {"precision": 18, "scale": 2},
        "currency": {"precision": 18, "scale": 2},
        "percent": {"precision": 5, "scale": 2},
    }.get(type_, {})
    return FieldMeta(name, type_, custom=name.endswith("__c") or "__c_" in name, **{**defaults, **kw})


def _address(prefix: str) -> list[FieldMeta]:
    compound = f"{prefix}Address"
    return [
        _f(f"{prefix}Street", "textarea", length=255, compound_field_name=compound),
        _f(f"{prefix}City", "string", length=40, compound_field_name=compound),
        _f(f"{prefix}State", "string", length=80, compound_field_name=compound),
        _f(f"{prefix}PostalCode", "string", length=20, compound_field_name=compound),
        _f(f"{prefix}Country", "string", length=80, compound_field_name=compound),
        _f(f"{prefix}Latitude", "double", precision=18, scale=15, compound_field_name=compound),
        _f(f"{prefix}Longitude", "double", precision=18, scale=15, compound_field_name=compound),
        _f(compound, "address"),
    ]


def _system(deletable: bool = True) -> list[FieldMeta]:
    fields = [_f("Id", "id")]
    if deletable:
        fields.append(_f("IsDeleted", "boolean", nillable=False))
    fields += [
        _f("CreatedDate", "datetime", nillable=False),
        _f("LastModifiedDate", "datetime", nillable=False),
        _f("SystemModstamp", "datetime", nillable=False),
    ]
    return fields


INDUSTRIES = ("Agriculture", "Banking", "Chemicals", "Education", "Energy", "Healthcare", "Retail")
STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Proposal", "Closed Won", "Closed Lost")

OBJECT_FIELDS: dict[str, list[FieldMeta]] = {
    "Account": _system()
    + [
        _f("Name", "string", nillable=False),
        _f("OwnerId", "reference", reference_to="User", nillable=False),
        _f("ParentId", "reference", reference_to="Account"),
        _f("Type", "picklist", picklist=("Customer", "Partner", "Prospect", "Other")),
        _f("Industry", "picklist", picklist=INDUSTRIES),
        _f("Rating", "picklist", picklist=("Hot", "Warm", "Cold")),
        _f("AccountNumber", "string", length=40),
        _f("Site", "string", length=80),
        _f("Phone", "phone"),
        _f("Fax", "phone"),
        _f("Website", "url"),
        _f("AnnualRevenue", "currency", precision=18, scale=0),
        _f("NumberOfEmployees", "int", precision=8),
        _f("Description", "textarea"),
        *_address("Billing"),
        *_address("Shipping"),
        _f("Sic", "string", length=20),
        _f("TickerSymbol", "string", length=20),
        _f("Ownership", "picklist", picklist=("Public", "Private", "Subsidiary")),
        _f("LastActivityDate", "date"),
        _f("Customer_Since__c", "date"),
        _f("Credit_Limit__c", "currency", precision=16, scale=2),
        _f("Health_Score__c", "percent", precision=5, scale=2),
        _f("Is_Strategic__c", "boolean", nillable=False),
        _f("Segment__c", "multipicklist", picklist=("SMB", "MidMarket", "Enterprise", "Public Sector")),
        _f("Support_Hours_Start__c", "time"),
        _f("External_Key__c", "long", precision=18),
        _f("Notes__c", "textarea", length=131072),
    ],
    "Contact": _system()
    + [
        _f("AccountId", "reference", reference_to="Account"),
        _f("OwnerId", "reference", reference_to="User", nillable=False),
        _f("FirstName", "string", length=40),
        _f("LastName", "string", length=80, nillable=False),
        _f("Name", "string", length=121, nillable=False),
        _f("Email", "email"),
        _f("Phone", "phone"),
        _f("Title", "string", length=128),
        _f("Birthdate", "date"),
        _f("HasOptedOutOfEmail", "boolean", nillable=False),
        _f("LeadSource", "picklist", picklist=("Web", "Phone Inquiry", "Partner Referral", "Other")),
        *_address("Mailing"),
        _f("Description", "textarea"),
    ],
    "Opportunity": _system()
    + [
        _f("Name", "string", length=120, nillable=False),
        _f("AccountId", "reference", reference_to="Account"),
        _f("OwnerId", "reference", reference_to="User", nillable=False),
        _f("StageName", "picklist", picklist=STAGES, nillable=False),
        _f("Amount", "currency", precision=16, scale=2),
        _f("Probability", "percent", precision=3, scale=0),
        _f("CloseDate", "date", nillable=False),
        _f("IsClosed", "boolean", nillable=False),
        _f("IsWon", "boolean", nillable=False),
        _f("ForecastCategory", "picklist", picklist=("Pipeline", "BestCase", "Commit", "Closed")),
        _f("TotalOpportunityQuantity", "double", precision=16, scale=2),
        _f("NextStep", "string", length=255),
        _f("Description", "textarea"),
    ],
    "Lead": _system()
    + [
        _f("FirstName", "string", length=40),
        _f("LastName", "string", length=80, nillable=False),
        _f("Name", "string", length=121, nillable=False),
        _f("Company", "string", nillable=False),
        _f("Email", "email"),
        _f("Status", "picklist", picklist=("Open", "Working", "Qualified", "Unqualified"), nillable=False),
        _f("LeadSource", "picklist", picklist=("Web", "Phone Inquiry", "Trade Show", "Other")),
        _f("AnnualRevenue", "currency", precision=18, scale=0),
        _f("NumberOfEmployees", "int", precision=8),
        _f("IsConverted", "boolean", nillable=False),
        _f("ConvertedDate", "date"),
        *_address(""),
        _f("Rating", "picklist", picklist=("Hot", "Warm", "Cold")),
    ],
    "Case": _system()
    + [
        _f("CaseNumber", "string", length=30, nillable=False),
        _f("AccountId", "reference", reference_to="Account"),
        _f("ContactId", "reference", reference_to="Contact"),
        _f("OwnerId", "reference", reference_to="User", nillable=False),
        _f("Subject", "string"),
        _f("Description", "textarea"),
        _f("Status", "picklist", picklist=("New", "Working", "Escalated", "Closed"), nillable=False),
        _f("Priority", "picklist", picklist=("High", "Medium", "Low")),
        _f("Origin", "picklist", picklist=("Phone", "Email", "Web")),
        _f("IsClosed", "boolean", nillable=False),
        _f("ClosedDate", "datetime"),
        _f("IsEscalated", "boolean", nillable=False),
    ],
    "Task": _system()
    + [
        _f("WhoId", "reference", reference_to="Contact"),
        _f("WhatId", "reference", reference_to="Account"),
        _f("OwnerId", "reference", reference_to="User", nillable=False),
        _f("Subject", "combobox"),
        _f("ActivityDate", "date"),
        _f("Status", "picklist", picklist=("Not Started", "In Progress", "Completed"), nillable=False),
        _f("Priority", "picklist", picklist=("High", "Normal", "Low"), nillable=False),
        _f("IsClosed", "boolean", nillable=False),
        _f("Description", "textarea"),
        _f("CallDurationInSeconds", "int", precision=8),
        _f("ReminderDateTime", "datetime"),
    ],
    # Users cannot be deleted in Salesforce: the object has no IsDeleted field.
    "User": _system(deletable=False)
    + [
        _f("Username", "string", length=80, nillable=False),
        _f("Email", "email", nillable=False),
        _f("FirstName", "string", length=40),
        _f("LastName", "string", length=80, nillable=False),
        _f("Name", "string", length=121, nillable=False),
        _f("Alias", "string", length=8, nillable=False),
        _f("IsActive", "boolean", nillable=False),
        _f("Title", "string", length=80),
        _f("Department", "string", length=80),
        _f("TimeZoneSidKey", "picklist", picklist=("Europe/Paris", "America/New_York", "Asia/Tokyo")),
        _f("LastLoginDate", "datetime"),
        *_address(""),
    ],
    "Invoice__c": _system()
    + [
        _f("Name", "string", length=80, nillable=False),
        _f("OwnerId", "reference", reference_to="User", nillable=False),
        _f("Account__c", "reference", reference_to="Account"),
        _f("Amount__c", "currency", precision=18, scale=2),
        _f("Due_Date__c", "date"),
        _f("Paid__c", "boolean", nillable=False),
        _f("Status__c", "picklist", picklist=("Draft", "Sent", "Paid", "Void")),
        _f("Tags__c", "multipicklist", picklist=("urgent", "disputed", "recurring", "export")),
        _f("Notes__c", "textarea"),
        _f("Reminder_Time__c", "time"),
        _f("Tax_Rate__c", "percent", precision=5, scale=2),
        _f("Margin__c", "percent", precision=18, scale=2, calculated=True),
        # two distinct fields whose API names normalize to one identifier (ship_to__c), as admins make them
        _f("ShipTo__c", "string", label="Ship To (legacy)"),
        _f("Ship_To__c", "string", label="Ship To"),
        _f("Long_Notes__c", "textarea", length=131072, label="Long Notes"),
        _f("Line_Count__c", "double", precision=18, scale=0),
        _f("Contact_Email__c", "email"),
        _f("Portal_Url__c", "url"),
        _f("Access_Code__c", "encryptedstring"),
        _f("Signature__c", "base64"),
        _f("Site_Location__Latitude__s", "double", precision=9, scale=6, compound_field_name="Site_Location__c"),
        _f("Site_Location__Longitude__s", "double", precision=9, scale=6, compound_field_name="Site_Location__c"),
        _f("Site_Location__c", "location"),
    ],
}

DEFAULT_ROWS: dict[str, int] = {
    "Account": 600_000,
    "Contact": 120_000,
    "Opportunity": 60_000,
    "Lead": 40_000,
    "Case": 30_000,
    "Task": 80_000,
    "User": 1_500,
    "Invoice__c": 25_000,
}

OBJECT_LABELS = {"Invoice__c": "Invoice", "Opportunity": "Opportunity"}


def _iso_ms(ms: int) -> str:
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _quote(value: str | None, blank: str = "") -> str:
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


@dataclass
class ObjectModel:
    """One sObject of the synthetic org: its fields, its size, and how to make row ``i``."""

    name: str
    fields: list[FieldMeta]
    rows: int
    seed: int
    start: datetime = DEFAULT_START
    end: datetime = DEFAULT_END
    quoted_blanks: bool = False  # write nulls as "" instead of an empty field
    _pools: dict[str, list[str]] = field(default_factory=dict, repr=False)
    live: dict[int, LiveRecord] = field(default_factory=dict, repr=False)  # records changed or inserted now
    gone: set[int] = field(default_factory=set, repr=False)  # hard-deleted: in no query, not even queryAll
    formula_shift: int = 0  # the formula clock: each step changes every calculated field's values
    # how Salesforce treats the object (the long tail of an org: longtail.py)
    kind: str = "standard"
    prefix: str = ""
    queryable: bool = True  # describeGlobal's flag
    custom: bool = False
    bulk_refused: bool = False  # Bulk API 2.0 refuses the object at job creation (INVALIDENTITY)
    query_refused: bool = False  # no query of it is answered (INVALID_TYPE ... does not support query)
    filter_fields: tuple[str, ...] = ()  # a query must filter one of these with "=" (MALFORMED_QUERY otherwise)
    lazy_pools: bool = False  # build a field's values on first use (hundreds of objects start fast)

    def __post_init__(self) -> None:
        self._original_fields = list(self.fields)
        self._index_fields()
        self.prefix = self.prefix or ID_PREFIX.get(self.name, "a0Z")
        self.custom = self.custom or self.name.endswith("__c")
        self._start_ms = int(self.start.timestamp() * 1000)
        self._span_ms = int((self.end - self.start).total_seconds() * 1000)
        self.metadata_changed = time.time()  # describe's If-Modified-Since compares with this
        self._make_pools()

    def _make_pools(self) -> None:
        if self.lazy_pools:
            self._pools = _LazyPools(self)
            return
        rng = random.Random(f"{self.seed}:{self.name}")
        for f in self.fields:
            if f.bulk_queryable and f.name not in ROW_FIELDS:
                self._pools[f.name] = _pool(f, rng, self.blank)

    def _index_fields(self) -> None:
        self.by_name = {f.name.lower(): f for f in self.fields}
        self.deletable = "isdeleted" in self.by_name
        # date fields (lower case) that grow with the row number, so that a window on them is a run of rows:
        # the modstamps; CreatedDate where the object has neither (History rows are never changed)
        stamps = {"systemmodstamp", "lastmodifieddate"} & self.by_name.keys()
        self.monotone_fields = stamps or ({"createddate"} & self.by_name.keys())

    def change_schema(
        self, add: list[dict] = (), remove: list[str] = (), retype: dict[str, dict] | None = None
    ) -> None:
        """What an admin does between two runs: add fields, remove them (or hide them from the integration
        user), change their type. Deterministic: a changed field's values depend only on the seed, the
        object, the field's name and its new type."""
        gone = {name.lower() for name in remove}
        fields = [f for f in self.fields if f.name.lower() not in gone]
        for name, spec in (retype or {}).items():
            i = next((k for k, f in enumerate(fields) if f.name.lower() == name.lower()), None)
            if i is None:
                raise KeyError(f"{self.name} has no field {name}")
            fields[i] = replace(fields[i], **spec)
            self._pools[fields[i].name] = self._field_pool(fields[i])
        for spec in add:
            added = _f(
                spec["name"], spec.get("type", "string"), **{k: v for k, v in spec.items() if k not in ("name", "type")}
            )
            fields.append(added)
            self._pools[added.name] = self._field_pool(added)
        self.fields = fields
        self._index_fields()
        self.metadata_changed = time.time()

    def reset_schema(self) -> None:
        if self.fields != self._original_fields:
            self.metadata_changed = time.time()
        self.fields = list(self._original_fields)
        self._index_fields()
        self._make_pools()

    def _field_pool(self, f: FieldMeta) -> list[str]:
        return _pool(f, random.Random(f"{self.seed}:{self.name}:{f.name}:{f.type}:{f.precision}:{f.scale}"), self.blank)

    @property
    def schema_key(self) -> str:
        """Identifies the field list (names and types) and the formula clock, for the row cache."""
        key = f"-formulas{self.formula_shift}" if self.formula_shift else ""
        if self.fields == self._original_fields:
            return key
        text = ";".join(f"{f.name}:{f.type}:{f.precision}:{f.scale}" for f in self.fields)
        return "-schema" + hashlib.sha1(text.encode()).hexdigest()[:10] + key

    # -- changes made now -----------------------------------------------------------------------------
    @property
    def changed(self) -> set[int]:
        """Generated rows that no longer stand as generated (changed now, or hard-deleted)."""
        return {i for i in self.live if i < self.rows} | self.gone

    def row_of(self, record_id: str) -> int:
        i = record_number(record_id) - 1
        if not record_id.startswith(self.prefix) or i < 0 or i >= self.next_row or i in self.gone:
            raise KeyError(f"{self.name} has no record {record_id}")
        return i

    @property
    def next_row(self) -> int:
        """The row number the next inserted record gets (a hard-deleted record's number is never reused)."""
        return max(self.rows, max(self.live.keys() | self.gone, default=-1) + 1)

    def apply_changes(self, changes: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Insert, update, soft-delete, undelete and hard-delete records now (SystemModstamp = ``now_ms``).

        ``changes``: ``insert`` (list of {field: value}), ``update`` (list of {"Id": ..., field: value}),
        ``delete``, ``undelete`` and ``hard_delete`` (lists of Ids). Values are given as Salesforce prints them
        (text; null for blank). Returns the inserted records' Ids."""
        stamp = _iso_ms(now_ms)
        inserted = []
        for values in changes.get("insert", []):
            i = self.next_row
            record = {
                f.name: ROW_FIELDS[f.name](self, i) if f.name in ("Name", "CaseNumber", "Username") else None
                for f in self.fields
                if f.bulk_queryable
            }
            record.update(self._known(values))
            record.update(Id=salesforce_id(self.prefix, i + 1), CreatedDate=stamp)
            self.live[i] = LiveRecord(record, now_ms, deleted=False)
            inserted.append(record["Id"])
        for values in changes.get("update", []):
            i = self.row_of(values["Id"])
            current = self._current(i)
            if current.deleted:
                raise ValueError(f"{values['Id']} is in the recycle bin: undelete it first")
            self.live[i] = LiveRecord({**current.values, **self._known(values)}, now_ms, deleted=False)
        for key, deleted in (("delete", True), ("undelete", False)):
            for record_id in changes.get(key, []):
                i = self.row_of(record_id)
                if deleted and not self.deletable:
                    raise ValueError(f"{self.name} records cannot be deleted")
                self.live[i] = LiveRecord(self._current(i).values, now_ms, deleted=deleted)
        for record_id in changes.get("hard_delete", []):
            i = self.row_of(record_id)
            self.live.pop(i, None)
            self.gone.add(i)
        return {"inserted": inserted, "SystemModstamp": stamp}

    def _known(self, values: dict[str, Any]) -> dict[str, str | None]:
        out = {}
        for name, value in values.items():
            f = self.by_name.get(name.lower())
            if f is None:
                raise KeyError(f"{self.name} has no field {name}")
            if f.name != "Id":
                out[f.name] = None if value is None or value == "" else str(value)
        return out

    def _current(self, i: int) -> LiveRecord:
        if i in self.live:
            return self.live[i]
        values = {f.name: self.generated_value(f, i) for f in self.fields if f.bulk_queryable}
        return LiveRecord(values, self.modstamp_ms(i), deleted=self.is_deleted(i))

    @property
    def blank(self) -> str:
        return '""' if self.quoted_blanks else ""

    # -- time and deletion model ------------------------------------------------------------------
    def modstamp_ms(self, i: int) -> int:
        """SystemModstamp of row i in epoch milliseconds; non-decreasing in i."""
        return self._start_ms + (self._span_ms * i) // max(self.rows, 1)

    def is_deleted(self, i: int) -> bool:
        return self.deletable and (i * 2654435761 + self.seed) % 50 == 7

    def first_row_at_or_after(self, ms: int) -> int:
        """Smallest i with modstamp_ms(i) >= ms (binary search over the monotone modstamp)."""
        lo, hi = 0, self.rows
        while lo < hi:
            mid = (lo + hi) // 2
            if self.modstamp_ms(mid) < ms:
                lo = mid + 1
            else:
                hi = mid
        return lo

    # -- values ---------------------------------------------------------------------------------------
    def _pool_index(self, f: FieldMeta, i: int) -> int:
        shift = self.formula_shift * 7 if f.calculated else 0
        return (i * _mult(f.name) + self.seed + shift) % len(self._pools[f.name])

    def generated_value(self, f: FieldMeta, i: int) -> str | None:
        """The unquoted value of field ``f`` in generated row ``i`` (None for null)."""
        if f.name in ROW_FIELDS:
            return ROW_FIELDS[f.name](self, i)
        if f.type == "base64":  # REST answers a base64 field with the blob's URL, never its bytes
            return f"/services/data/v62.0/sobjects/{self.name}/{salesforce_id(self.prefix, i + 1)}/{f.name}"
        if not f.bulk_queryable:  # a compound field: REST sends an object, not modelled here
            return None
        quoted = self._pools[f.name][self._pool_index(f, i)]
        return None if quoted in ("", '""') else quoted[1:-1].replace('""', '"')

    def raw_value(self, f: FieldMeta, i: int) -> str | None:
        """The unquoted value of field ``f`` in row ``i`` as it stands now (None for null)."""
        record = self.live.get(i)
        if record is None:
            return self.generated_value(f, i)
        if f.calculated:
            return self.generated_value(f, i)
        if f.name in ("SystemModstamp", "LastModifiedDate"):
            return _iso_ms(record.modstamp_ms)
        if f.name == "IsDeleted":
            return "true" if record.deleted else "false"
        return record.values.get(f.name)

    def generated_row(self, fields: list[FieldMeta], i: int) -> list[str]:
        """Generated row ``i`` as Salesforce-quoted CSV values for ``fields`` (what the row cache holds)."""
        pools = self._pools
        out = []
        for f in fields:
            getter = ROW_FIELDS.get(f.name)
            if getter is not None:
                out.append(_quote(getter(self, i), self.blank))
            else:
                out.append(pools[f.name][self._pool_index(f, i)])
        return out

    def quoted_row(self, fields: list[FieldMeta], i: int) -> list[str]:
        """Row ``i`` as it stands now, as Salesforce-quoted CSV values for ``fields``."""
        if i not in self.live:
            return self.generated_row(fields, i)
        return [_quote(self.raw_value(f, i), self.blank) for f in fields]

    def row_deleted(self, i: int) -> bool:
        record = self.live.get(i)
        return record.deleted if record is not None else self.is_deleted(i)

    def global_entry(self) -> dict:
        """The object's entry in describeGlobal (``GET sobjects``)."""
        return {
            "name": self.name,
            "label": OBJECT_LABELS.get(self.name, default_label(self.name)),
            "custom": self.custom,
            "customSetting": False,
            "deprecatedAndHidden": False,
            "queryable": self.queryable,
            "retrieveable": self.queryable,
            "replicateable": self.queryable and self.kind not in ("external", "change_event"),
            "keyPrefix": self.prefix,
        }

    def describe(self) -> dict:
        return {**self.global_entry(), "fields": [f.describe() for f in self.fields]}


@dataclass
class LiveRecord:
    """A record as changed now: its values (raw text by field name), when, and whether it is in the bin."""

    values: dict[str, str | None]
    modstamp_ms: int
    deleted: bool


def _mult(name: str) -> int:
    # A per-field stride so that fields do not move in lock-step; odd, so it cycles the whole pool.
    h = 0
    for ch in name:
        h = (h * 131 + ord(ch)) & 0xFFFF
    return (h | 1) * 2 + 1


class _LazyPools(dict):
    """A field's pre-quoted values, made the first time the field is read."""

    def __init__(self, model: ObjectModel) -> None:
        super().__init__()
        self.model = model

    def __missing__(self, name: str) -> list[str]:
        self[name] = pool = self.model._field_pool(self.model.by_name[name.lower()])
        return pool


def _name(obj: ObjectModel, i: int) -> str:
    return f"{obj.name.replace('__c', '')} {i:08d}"


ROW_FIELDS = {
    "Id": lambda o, i: salesforce_id(o.prefix, i + 1),
    "IsDeleted": lambda o, i: "true" if o.is_deleted(i) else "false",
    "SystemModstamp": lambda o, i: _iso_ms(o.modstamp_ms(i)),
    "LastModifiedDate": lambda o, i: _iso_ms(o.modstamp_ms(i)),
    # Created up to 90 days before the last modification (but never after it); where the object has no
    # modstamp (History), CreatedDate is its one clock.
    "CreatedDate": lambda o, i: _iso_ms(
        o.modstamp_ms(i) - (i * 7919 % 90) * 86_400_000 * ("createddate" not in o.monotone_fields)
    ),
    "Name": _name,
    "CaseNumber": lambda o, i: f"{i + 1:08d}",
    "Username": lambda o, i: f"user{i}@example.com",
}


def _pool(f: FieldMeta, rng: random.Random, blank: str = "", size: int = 509) -> list[str]:
    """Pre-quoted candidate values for one field (509 is prime, so strides cycle through all)."""
    values: list[str | None] = []
    for k in range(size):
        if f.nillable and rng.random() < 0.08:
            values.append(None)
            continue
        values.append(_random_value(f, rng, k))
    return [_quote(v, blank) for v in values]


def _random_value(f: FieldMeta, rng: random.Random, k: int) -> str:
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
        return _iso_ms(ms)
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


@dataclass
class Org:
    """The whole synthetic org: a seed, row counts per object, and the models built from them."""

    seed: int = 42
    rows: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_ROWS))
    scale: float = 1.0
    quoted_blanks: bool = False
    objects_total: int = len(OBJECT_FIELDS)  # more than the 8 demo objects: the long tail fills the rest

    def __post_init__(self) -> None:
        from .longtail import long_tail

        self.objects: dict[str, ObjectModel] = {}
        for name, fields in OBJECT_FIELDS.items():
            n = max(1, int(self.rows.get(name, DEFAULT_ROWS[name]) * self.scale))
            self.objects[name] = ObjectModel(name, fields, n, self.seed, quoted_blanks=self.quoted_blanks)
        extra = long_tail(max(0, self.objects_total - len(OBJECT_FIELDS)), self.seed, set(self.objects))
        for k, spec in enumerate(extra):
            self.objects[spec.name] = ObjectModel(
                spec.name,
                spec.fields,
                int(self.rows.get(spec.name, spec.rows) * self.scale),
                self.seed,
                quoted_blanks=self.quoted_blanks,
                kind=spec.kind,
                prefix="x" + BASE62[k // 62 % 62] + BASE62[k % 62],
                queryable=spec.queryable,
                custom=spec.custom,
                bulk_refused=spec.bulk_refused,
                query_refused=spec.query_refused,
                filter_fields=spec.filter_fields,
                lazy_pools=True,
            )
        self._lower = {name.lower(): model for name, model in self.objects.items()}

    def get(self, name: str) -> ObjectModel | None:
        return self._lower.get(name.lower())

    def iter_rows(self, obj: ObjectModel, fields: list[FieldMeta], start: int, stop: int) -> Iterator[list[str]]:
        for i in range(start, stop):
            yield obj.quoted_row(fields, i)
