"""Discovery: which objects of an org load, by which route and cursor, and which are skipped and why.

One describeGlobal, then one describe per object that may load (in parallel), classified by pure rules
(``classify``): ``queryable``, the known deny-lists (``salesforce/denylists.py``), and each describe's fields.
The result is written as a YAML file in the catalog's own format (``objects:`` and ``skipped:``), which the
hand-written catalog overrides (``catalog.py``). A second discovery sends ``If-Modified-Since``: when nothing
changed it costs one request, and only changed objects are described again.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import yaml

from ..errors import CatalogError
from . import SalesforceClient, SalesforceError
from .denylists import NEEDS_FILTER, NO_CURSOR_FILTER, NOT_BULK, name_reason

log = logging.getLogger(__name__)

CURSOR_FIELDS = ("SystemModstamp", "LastModifiedDate", "CreatedDate")  # the first one an object has
ROUTES = ("bulk", "rest")
FILTER_REASON = "needs a filter on a key field: give the object a `filter:` in the catalog to load it"


def object_kind(name: str, custom: bool = False) -> str:
    """The UI group of an object: standard, custom, history, share, feed, external, event, metadata."""
    for suffix, kind in (
        ("History", "history"),
        ("Share", "share"),
        ("Feed", "feed"),
        ("ChangeEvent", "event"),
        ("__x", "external"),
        ("__e", "event"),
        ("__mdt", "metadata"),
    ):
        if name.endswith(suffix):
            return kind
    return "custom" if custom or name.endswith("__c") else "standard"


@dataclass
class DiscoveredObject:
    """One object as discovery found it. ``reason`` is None for an object that loads."""

    name: str
    kind: str
    route: str = "bulk"
    cursor_field: str | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)  # fields left out, and why
    described: bool = False  # a describe was read (an If-Modified-Since of the next discovery may reuse it)

    def to_yaml(self) -> dict:
        if not self.described:  # skipped from describeGlobal alone: no route or cursor was ever known
            return {"name": self.name, "kind": self.kind, "reason": self.reason}
        out = {"name": self.name, "kind": self.kind, "route": self.route, "cursor_field": self.cursor_field}
        return out | ({"reason": self.reason} if self.reason else {}) | ({"notes": self.notes} if self.notes else {})


def cursor_of(field_names: set[str]) -> str | None:
    return next((c for c in CURSOR_FIELDS if c in field_names), None)


def classify_global(entry: dict) -> DiscoveredObject | None:
    """Skip an object from its describeGlobal entry alone; None when it needs a describe."""
    name = entry["name"]
    kind = object_kind(name, bool(entry.get("custom")))
    if not entry.get("queryable", False):
        return DiscoveredObject(name, kind, reason="not queryable (describeGlobal), for this user at least")
    if reason := name_reason(name):
        return DiscoveredObject(name, kind, reason=reason)
    return None


def classify(entry: dict, describe: dict) -> DiscoveredObject:
    """An object's route, cursor and left-out fields from its describeGlobal entry and its describe."""
    name = entry["name"]
    fields = describe.get("fields", [])
    names = {f["name"] for f in fields}
    found = DiscoveredObject(name, object_kind(name, bool(entry.get("custom"))), described=True)
    found.route = "rest" if name in NOT_BULK else "bulk"
    found.cursor_field = None if name in NO_CURSOR_FILTER else cursor_of(names)
    if name in NO_CURSOR_FILTER:
        found.notes.append("a cursor filter is refused: reloaded in full")
    elif found.cursor_field is None:
        found.notes.append("no SystemModstamp, LastModifiedDate or CreatedDate: reloaded in full")
    elif found.cursor_field == "CreatedDate":
        found.notes.append("CreatedDate is the only cursor: new records are seen, later edits are not")
    for f in fields:
        if f["type"] in ("address", "location"):
            found.notes.append(f"{f['name']} left out: a compound {f['type']} field (its component fields load)")
        elif f["type"] == "base64":
            found.notes.append(
                f"{f['name']} left out: a base64 field (Bulk cannot select it; REST returns only a link to "
                "each blob, which the Id gives too)"
            )
    if name in NEEDS_FILTER:
        found.reason = FILTER_REASON
    return found


@dataclass
class Discovery:
    """A discovered catalog: what loads, what is skipped, and when (for the next If-Modified-Since)."""

    objects: list[DiscoveredObject]
    discovered_at: str  # an HTTP date
    instance_url: str = ""
    api_version: str = ""

    @property
    def loadable(self) -> list[DiscoveredObject]:
        return [o for o in self.objects if o.reason is None]

    @property
    def skipped(self) -> list[DiscoveredObject]:
        return [o for o in self.objects if o.reason is not None]

    def get(self, name: str) -> DiscoveredObject | None:
        return next((o for o in self.objects if o.name.lower() == name.lower()), None)


@dataclass
class DiscoveryStats:
    requests: int
    described: int  # describes answered with a body
    unchanged: int  # describes (or the whole org) answered 304
    seconds: float


def discover(
    client: SalesforceClient, previous: Discovery | None = None, workers: int = 8
) -> tuple[Discovery, DiscoveryStats]:
    """Discover the org. With ``previous``, ask only for what changed since it (If-Modified-Since)."""
    started, calls = time.time(), client.api_calls
    # one second back: HTTP dates have whole seconds, and a change in this second must be seen next time
    stamp = formatdate(math.floor(started) - 1, usegmt=True)
    since = {"If-Modified-Since": previous.discovered_at} if previous else {}
    body = client.json("GET", client.data_path("sobjects"), headers=since)
    if body is None and previous is not None:
        log.info("describeGlobal unchanged since %s: the discovered catalog stands", previous.discovered_at)
        stats = DiscoveryStats(client.api_calls - calls, 0, len(previous.objects), time.time() - started)
        return previous, stats
    entries = body["sobjects"]
    results: dict[str, DiscoveredObject] = {}
    to_describe = []
    for entry in entries:
        skipped = classify_global(entry)
        if skipped is not None:
            results[entry["name"]] = skipped
        else:
            to_describe.append(entry)

    def describe(entry: dict) -> tuple[DiscoveredObject, bool]:
        """The object's classification, and whether it came from ``previous`` (a 304)."""
        name = entry["name"]
        before = previous.get(name) if previous else None
        headers = {"If-Modified-Since": previous.discovered_at} if before and before.described else {}
        try:
            answer = client.json("GET", client.data_path(f"sobjects/{name}/describe"), sobject=name, headers=headers)
        except SalesforceError as exc:
            log.warning("[%s] describe failed: %s", name, exc)
            kind = object_kind(name, bool(entry.get("custom")))
            return DiscoveredObject(name, kind, reason=f"describe failed: {exc}"), False
        if answer is None and before is not None:
            return before, True
        return classify(entry, answer), False

    unchanged = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="describe") as pool:
        for found, reused in pool.map(describe, to_describe):
            results[found.name] = found
            unchanged += reused
    discovery = Discovery(
        [results[e["name"]] for e in entries], stamp, client.instance_url.rstrip("/"), client.api_version
    )
    stats = DiscoveryStats(client.api_calls - calls, len(to_describe) - unchanged, unchanged, time.time() - started)
    log.info(
        "discovered %d objects: %d load (%d by REST), %d skipped; %d describe(s) read, %d unchanged, %d request(s)",
        len(discovery.objects),
        len(discovery.loadable),
        sum(o.route == "rest" for o in discovery.loadable),
        len(discovery.skipped),
        stats.described,
        stats.unchanged,
        stats.requests,
    )
    return discovery, stats


def refresh(client: SalesforceClient, path: Path, full: bool = False) -> tuple[Discovery, DiscoveryStats]:
    """Discover into ``path``, asking only for what changed since the discovery already there (unless
    ``full``); the file is rewritten only when something changed."""
    path = Path(path)
    previous = read_discovery(path) if path.exists() and not full else None
    discovery, stats = discover(client, previous)
    if discovery is not previous:
        write_discovery(discovery, path)
    return discovery, stats


HEADER = """\
# The org's objects as `sf-pipeline discover` found them ({count} objects, {loadable} load, {skipped} skipped).
# Written by discovery: do not edit. Pin, exclude or tune objects in the hand-written catalog (catalog.yaml),
# which overrides this file. `skipped:` says why each object is not loaded.
"""


def write_discovery(discovery: Discovery, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "discovered_at": discovery.discovered_at,
        "instance_url": discovery.instance_url,
        "api_version": discovery.api_version,
        "objects": [o.to_yaml() for o in discovery.loadable],
        "skipped": [o.to_yaml() for o in discovery.skipped],
    }
    text = HEADER.format(
        count=len(discovery.objects), loadable=len(discovery.loadable), skipped=len(discovery.skipped)
    ) + yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=120, allow_unicode=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # a code location reading it never sees half a file


def read_discovery(path: Path) -> Discovery:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        parsedate_to_datetime(raw["discovered_at"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"cannot read the discovered catalog {path}: {exc}") from exc
    objects = []
    for section in ("objects", "skipped"):
        for item in raw.get(section) or []:
            described = "route" in item
            route = item.get("route", "bulk")
            if route not in ROUTES:
                raise CatalogError(f"{path}: object {item.get('name')!r}: route must be one of {ROUTES}")
            objects.append(
                DiscoveredObject(
                    name=item["name"],
                    kind=item.get("kind") or object_kind(item["name"]),
                    route=route,
                    cursor_field=item.get("cursor_field"),
                    reason=item.get("reason"),
                    notes=list(item.get("notes") or []),
                    described=described,
                )
            )
    return Discovery(objects, raw["discovered_at"], raw.get("instance_url", ""), str(raw.get("api_version", "")))
