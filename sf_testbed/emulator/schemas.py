"""The emulator org's metadata: Salesforce Ids, field descriptions (describe's shape) and the demo objects' schemas
and row counts."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
