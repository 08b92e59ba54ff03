"""The long tail of a real org: generated objects of the kinds a production org holds beside the 8 rich
demo objects, so that ``--objects N`` serves an org whose describeGlobal lists N objects.

Each kind carries the behaviour Salesforce shows for it (sources: ``shared/docs/salesforce-org-scale.md``):

- ``custom``: ``X__c`` objects, SystemModstamp, Bulk-queryable.
- ``standard``: standard objects, some with a compound ``address``/``location`` field (Bulk refuses to
  select it: "Selecting compound data not supported in Bulk Query"), some with a ``base64`` field.
- ``history``: ``XHistory``, CreatedDate only (no SystemModstamp, no LastModifiedDate).
- ``share``: ``XShare``, LastModifiedDate only.
- ``feed``: ``XFeed``; AccountFeed and AssetFeed refuse Bulk API 2.0 (INVALIDENTITY).
- ``change_event``: ``XChangeEvent``; some listed ``queryable``, none answer a query.
- ``external``: ``X__x`` (Salesforce Connect): no date field at all.
- ``platform_event``: ``X__e``: not ``queryable``.
- ``rest_only``: objects Bulk API 2.0 refuses at job creation (``INVALIDENTITY ... is not supported by
  the Bulk API``): names from the peer deny-list (CaseStatus...) and tag objects (``XTag``, seen refused in
  public issue threads, on no deny-list: the pipeline finds out at run time).
- ``needs_filter``: Vote, IdeaComment, ContentDocumentLink...: MALFORMED_QUERY "Implementation
  restriction" unless the query filters one of their key fields with ``=``.

Names, sizes and field lists are a pure function of the seed: the same seed always gives the same org.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .schemas import INDUSTRIES, FieldMeta, _address, _f, _system
from .values import WORDS

# Sizes: most objects are small, a few are large, as real orgs are (rows before --scale).
SIZE_TIERS = ((0.72, 0, 1_000), (0.18, 1_000, 20_000), (0.07, 20_000, 100_000), (0.03, 100_000, 250_000))

STANDARD_NAMES = (
    "Asset", "Campaign", "CampaignMember", "Contract", "Order", "OrderItem", "Product2", "Pricebook2",
    "PricebookEntry", "Solution", "Idea", "Entitlement", "ServiceContract", "WorkOrder", "WorkOrderLineItem",
    "Quote", "QuoteLineItem", "OpportunityLineItem", "OpportunityContactRole", "AccountContactRelation",
    "Event", "EmailMessage", "Group", "GroupMember", "UserRole", "Profile", "PermissionSet", "RecordType",
    "BusinessHours", "Holiday", "Territory", "ServiceResource", "ServiceAppointment", "Location",
    "AssociatedLocation", "Individual", "ContactPointEmail", "ContactPointPhone", "Macro", "Report",
    "Dashboard", "ListView", "Folder", "Organization", "ApexClass", "ApexTrigger", "AsyncApexJob", "CronTrigger",
)  # fmt: skip
ADDRESS_NAMES = ("ServiceTerritory", "Location", "Organization", "Individual", "ServiceAppointment")
BASE64_NAMES = ("Document", "ContentVersion", "StaticResource", "EmailTemplate")
# On the peer connector's "not supported by the Bulk API" list: discovery routes them to REST up front.
REST_LISTED = (
    "CaseStatus", "ContractStatus", "OrderStatus", "PartnerRole", "SolutionStatus", "TaskPriority", "TaskStatus",
    "WorkOrderStatus", "WorkOrderLineItemStatus", "ServiceAppointmentStatus", "ShiftStatus", "CaseTeamRole",
    "CaseTeamTemplate", "CaseTeamMember", "AcceptedEventRelation", "DeclinedEventRelation", "EventWhoRelation",
    "TaskWhoRelation", "UndecidedEventRelation", "Attachment", "FieldSecurityClassification",
)  # fmt: skip
BULK_REFUSED_FEEDS = ("AccountFeed", "AssetFeed")
# Query-restricted objects and the fields a query must filter with "=" (Salesforce's implementation restriction).
NEEDS_FILTER = {
    "Vote": ("ParentId", "Id"),
    "IdeaComment": ("IdeaId", "Id"),
    "ContentDocumentLink": ("ContentDocumentId", "LinkedEntityId", "Id"),
    "UserFieldAccess": ("DurableId",),
    "DataStatistics": ("UserId",),
    "FlexQueueItem": ("JobType",),
    "OwnerChangeOptionInfo": ("EntityDefinitionId",),
    "PicklistValueInfo": ("EntityParticleId",),
}
KIND_ORDER = (
    "custom", "history", "share", "feed", "change_event", "external", "platform_event", "rest_only", "tag",
    "needs_filter", "base64", "address",
)  # fmt: skip  # one of each first, so that a small org (--objects 20) has every kind
KIND_WEIGHTS = {
    "custom": 30, "standard": 14, "history": 12, "share": 10, "feed": 6, "change_event": 8, "external": 3,
    "platform_event": 4, "rest_only": 4, "tag": 3, "needs_filter": 2, "base64": 2, "address": 2,
}  # fmt: skip


@dataclass(frozen=True)
class ObjectSpec:
    """One generated object: its describe fields, size and how Salesforce treats it."""

    name: str
    kind: str
    fields: list[FieldMeta]
    rows: int
    queryable: bool = True
    custom: bool = False
    bulk_refused: bool = False  # Bulk API 2.0 answers INVALIDENTITY at job creation
    query_refused: bool = False  # no query answers (INVALID_TYPE ... does not support query)
    filter_fields: tuple[str, ...] = ()  # a query must filter one of these with "="


def _rows(rng: random.Random) -> int:
    r = rng.random()
    for share, lo, hi in SIZE_TIERS:
        if r < share:
            return rng.randrange(lo, hi)
        r -= share
    return rng.randrange(SIZE_TIERS[-1][1], SIZE_TIERS[-1][2])


def _custom_fields(rng: random.Random, n: int) -> list[FieldMeta]:
    makers = (
        lambda w: _f(f"{w}__c", "string", length=rng.choice((40, 80, 255))),
        lambda w: _f(f"{w}_Amount__c", "currency", precision=16, scale=2),
        lambda w: _f(f"{w}_Count__c", "double", precision=18, scale=0),
        lambda w: _f(f"{w}_Date__c", "date"),
        lambda w: _f(f"Is_{w}__c", "boolean", nillable=False),
        lambda w: _f(f"{w}_Type__c", "picklist", picklist=INDUSTRIES),
        lambda w: _f(f"{w}_Notes__c", "textarea", length=4000),
        lambda w: _f(f"{w}_Account__c", "reference", reference_to="Account"),
    )
    words = rng.sample([w.title() for w in WORDS], n)
    return [rng.choice(makers)(w) for w in words]


def _owned() -> list[FieldMeta]:
    return [
        *_system(),
        _f("Name", "string", length=80, nillable=False),
        _f("OwnerId", "reference", reference_to="User"),
    ]


def _history_fields(name: str) -> list[FieldMeta]:
    parent = name.removesuffix("History")
    return [
        _f("Id", "id"),
        _f("IsDeleted", "boolean", nillable=False),
        _f("ParentId" if parent.endswith("__") else f"{parent}Id", "reference"),
        _f("CreatedById", "reference", reference_to="User"),
        _f("CreatedDate", "datetime", nillable=False),
        _f("Field", "picklist", picklist=("Name", "Owner", "Status", "Amount", "created")),
        _f("DataType", "string", length=40),
        _f("OldValue", "string"),
        _f("NewValue", "string"),
    ]


SHARE_FIELDS = [
    _f("Id", "id"),
    _f("ParentId", "reference"),
    _f("UserOrGroupId", "reference", reference_to="User"),
    _f("AccessLevel", "picklist", picklist=("Read", "Edit", "All")),
    _f("RowCause", "picklist", picklist=("Owner", "Manual", "Rule", "ImplicitChild")),
    _f("LastModifiedDate", "datetime", nillable=False),
    _f("LastModifiedById", "reference", reference_to="User"),
    _f("IsDeleted", "boolean", nillable=False),
]
FEED_FIELDS = [
    *_system(),
    _f("ParentId", "reference"),
    _f("Type", "picklist", picklist=("TextPost", "LinkPost", "TrackedChange")),
    _f("Title", "string"),
    _f("Body", "textarea", length=10000),
    _f("CommentCount", "int"),
    _f("LikeCount", "int"),
]
STATUS_FIELDS = [*_system(), _f("MasterLabel", "string"), _f("SortOrder", "int"), _f("IsDefault", "boolean")]
TAG_FIELDS = [*_system(), _f("ItemId", "reference"), _f("Name", "string"), _f("Type", "string")]
BASE64_FIELDS = [_f("ContentType", "string", length=120), _f("Body", "base64"), _f("BodyLength", "int")]

# kind -> (name, rng, rows) -> spec; rng is drawn from in the same order whatever the kind (rows first)
_BUILDERS = {
    "custom": lambda n, rng, rows: ObjectSpec(
        n, "custom", [*_owned(), *_custom_fields(rng, rng.randrange(3, 12))], rows, custom=True
    ),
    "standard": lambda n, rng, rows: ObjectSpec(
        n, "standard", [*_owned(), *_custom_fields(rng, rng.randrange(2, 8))], rows
    ),
    "address": lambda n, rng, rows: ObjectSpec(
        n, "standard", [*_owned(), *_address("Billing"), _f("Description", "textarea")], rows
    ),
    "base64": lambda n, rng, rows: ObjectSpec(n, "standard", [*_owned(), *BASE64_FIELDS], min(rows, 5_000)),
    "history": lambda n, rng, rows: ObjectSpec(n, "history", _history_fields(n), rows * 3),
    "share": lambda n, rng, rows: ObjectSpec(n, "share", SHARE_FIELDS, rows),
    "feed": lambda n, rng, rows: ObjectSpec(n, "feed", FEED_FIELDS, rows, bulk_refused=n in BULK_REFUSED_FEEDS),
    "change_event": lambda n, rng, rows: ObjectSpec(
        n,
        "change_event",
        [_f("Id", "id"), _f("ReplayId", "string"), _f("ChangeEventHeader", "string"), *_owned()[1:]],
        0,
        queryable=rng.random() < 0.5,
        query_refused=True,
    ),
    "external": lambda n, rng, rows: ObjectSpec(
        n,
        "external",
        [
            _f("Id", "id"),
            _f("ExternalId", "string"),
            _f("DisplayUrl", "url"),
            *_custom_fields(rng, rng.randrange(2, 6)),
        ],
        min(rows, 2_000),
        custom=True,
    ),
    "platform_event": lambda n, rng, rows: ObjectSpec(
        n,
        "platform_event",
        [_f("ReplayId", "string"), _f("CreatedDate", "datetime"), *_custom_fields(rng, 2)],
        0,
        queryable=False,
        custom=True,
        query_refused=True,
    ),
    "rest_only": lambda n, rng, rows: ObjectSpec(n, "standard", STATUS_FIELDS, min(rows, 3_000), bulk_refused=True),
    "tag": lambda n, rng, rows: ObjectSpec(n, "tag", TAG_FIELDS, min(rows, 3_000), bulk_refused=True),
    "needs_filter": lambda n, rng, rows: ObjectSpec(
        n,
        "standard",
        [*_system(), *(_f(k, "string", length=18) for k in NEEDS_FILTER[n] if k != "Id"), _f("Type", "string")],
        min(rows, 2_000),
        filter_fields=NEEDS_FILTER[n],
    ),
}


def _spec(kind: str, name: str, rng: random.Random) -> ObjectSpec:
    return _BUILDERS[kind](name, rng, _rows(rng))


class _Names:
    """Unique object names per kind, drawn from real standard names first, then made up."""

    def __init__(self, rng: random.Random, taken: set[str]) -> None:
        self.rng, self.taken = rng, {t.lower() for t in taken}
        self.pools = {
            "standard": list(STANDARD_NAMES),
            "address": list(ADDRESS_NAMES),
            "base64": list(BASE64_NAMES),
            "rest_only": list(REST_LISTED),
            "needs_filter": list(NEEDS_FILTER),
            "feed": list(BULK_REFUSED_FEEDS),  # the feeds Bulk refuses come first
        }
        self.parents = ["Account", "Contact", "Opportunity", "Lead", "Case", "Asset", "Campaign", "Contract"]
        self.counter = 0

    def _word(self) -> str:
        self.counter += 1
        return f"{self.rng.choice(WORDS).title()}{self.rng.choice(WORDS).title()}{self.counter}"

    def _free(self, name: str) -> str | None:
        if name.lower() in self.taken:
            return None
        self.taken.add(name.lower())
        return name

    def next(self, kind: str) -> str | None:
        """A new name of ``kind``, or None when the kind's real names are used up."""
        pool = self.pools.get(kind, [])
        while pool:
            if name := self._free(pool.pop(0)):
                return name
        if kind in ("address", "base64", "rest_only", "needs_filter"):
            return None
        if kind == "standard":
            return self._free(self._word())
        if kind == "custom":
            name = self._free(f"{self._word()}__c")
            self.parents.append(f"{name.removesuffix('__c')}__")
            return name
        if kind in ("external", "platform_event"):
            return self._free(f"{self._word()}__{'x' if kind == 'external' else 'e'}")
        suffix = {"history": "History", "share": "Share", "feed": "Feed", "change_event": "ChangeEvent", "tag": "Tag"}
        for parent in self.rng.sample(self.parents, len(self.parents)):
            if name := self._free(parent + suffix[kind]):
                return name
        return self._free(f"{self._word()}__{suffix[kind]}")


def long_tail(count: int, seed: int, taken: set[str]) -> list[ObjectSpec]:
    """``count`` generated objects of every kind, deterministic in ``seed``; names never clash with ``taken``."""
    rng = random.Random(f"{seed}:long-tail")
    names = _Names(rng, taken)
    kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())
    specs: list[ObjectSpec] = []
    while len(specs) < count:
        kind = KIND_ORDER[len(specs)] if len(specs) < len(KIND_ORDER) else rng.choices(kinds, weights)[0]
        name = names.next(kind)
        if name is None:
            continue
        specs.append(_spec(kind, name, random.Random(f"{seed}:{name}")))
    return specs
