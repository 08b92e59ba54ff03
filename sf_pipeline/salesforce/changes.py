"""Which objects changed in a window: the change sensor's question to the org, for hundreds of objects in a
bounded number of API calls.

Objects are asked inside Composite requests (up to 25 subrequests, at most 5 of them queries, one API call
each). An object whose cursor is ``SystemModstamp``/``LastModifiedDate`` and whose window starts within the
last 14 days is asked with the replication resources ``sobjects/<name>/updated/`` and ``.../deleted/``
(not queries, so 12 objects fit in one call); the answer covers whole minutes up to ``latestDateCovered``,
which becomes the object's next cursor: a change is seen once its minute is over, so a tick that falls
shortly before a minute's end waits for it (``minute_close_wait``) rather than leave the change to the next
tick, an interval later. Any other object (a ``CreatedDate`` cursor, a filter, an older
window, an object that is not replicateable) is asked with a ``COUNT()`` over ``queryAll``, up to ``settle``
before now, as ``latestDateCovered`` trails now: a record committed late, stamped before that, is counted by
the next tick rather than passed over."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from .client import SalesforceClient, refusal
from .errors import QueryError
from .soql import count_query

log = logging.getLogger(__name__)

MAX_SUBREQUESTS = 25
MAX_QUERIES = 5
REPLICATION_FIELDS = ("SystemModstamp", "LastModifiedDate")  # what updated/ compares
REPLICATION_DAYS = 14  # deleted/ answers for the last 15 days (the recycle bin), updated/ for 30
# A tick waits at most this long for the minute to end (well inside Dagster's 60 s sensor timeout), and asks
# this long after it: Salesforce's clock may trail ours by a moment.
MINUTE_WAIT_MAX = timedelta(seconds=20)
MINUTE_WAIT_MARGIN = timedelta(seconds=2)


@dataclass(frozen=True)
class ChangeAsk:
    sobject: str
    cursor_field: str
    since: datetime
    until: datetime
    where: str | None = None
    include_deleted: bool = True


@dataclass(frozen=True)
class Changed:
    rows: int  # records created, edited or deleted in [ask.since, covered)
    covered: datetime  # where the answer ends (<= ask.until): the next cursor


@dataclass(frozen=True)
class _Sub:
    ask: ChangeAsk
    kind: str  # "updated", "deleted" or "count"
    url: str

    @property
    def is_query(self) -> bool:
        return self.kind == "count"


def _minute(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(second=0, microsecond=0)


def minute_close_wait(now: datetime, next_tick_in: timedelta) -> timedelta:
    """How long a tick at ``now`` waits before asking: until just after the current minute ends when that comes
    before both the next tick and ``MINUTE_WAIT_MAX``, else not at all. The replication resources cover whole
    minutes, so this minute's changes are otherwise seen by the first tick after its end, up to an interval
    late."""
    wait = _minute(now) + timedelta(minutes=1) + MINUTE_WAIT_MARGIN - now
    return wait if wait < min(next_tick_in, MINUTE_WAIT_MAX) else timedelta(0)


def replicable(ask: ChangeAsk, now: datetime) -> bool:
    return (
        ask.cursor_field in REPLICATION_FIELDS and not ask.where and ask.since >= now - timedelta(days=REPLICATION_DAYS)
    )


def subrequests(client: SalesforceClient, ask: ChangeAsk, *, by_count: bool) -> list[_Sub]:
    if by_count:
        soql = count_query(ask.sobject, ask.cursor_field, ask.since, ask.until, ask.where)
        endpoint = "queryAll" if ask.include_deleted else "query"
        return [_Sub(ask, "count", client.data_path(endpoint) + "?" + urlencode({"q": soql}))]
    window = urlencode({"start": _minute(ask.since).isoformat(), "end": _minute(ask.until).isoformat()})
    kinds = ("updated", "deleted") if ask.include_deleted else ("updated",)
    return [_Sub(ask, kind, client.data_path(f"sobjects/{ask.sobject}/{kind}/") + "?" + window) for kind in kinds]


def pack(groups: Sequence[list[_Sub]]) -> list[list[_Sub]]:
    """First fit: each object's subrequests together, at most 25 a request and 5 queries among them."""
    requests: list[list[_Sub]] = []
    for group in groups:
        queries = sum(s.is_query for s in group)
        for request in requests:
            if (
                len(request) + len(group) <= MAX_SUBREQUESTS
                and sum(s.is_query for s in request) + queries <= MAX_QUERIES
            ):
                request.extend(group)
                break
        else:
            requests.append(list(group))
    return requests


def _answer(sub: _Sub, answer: dict) -> tuple[int, datetime | None]:
    body = answer.get("body")
    if sub.kind == "count":
        return int(body["totalSize"]), None
    rows = len(body["ids"]) if sub.kind == "updated" else len(body["deletedRecords"])
    return rows, datetime.strptime(body["latestDateCovered"], "%Y-%m-%dT%H:%M:%S.%f%z")


def _ask_round(
    client: SalesforceClient,
    groups: list[list[_Sub]],
    rows: dict[ChangeAsk, int],
    covered: dict[ChangeAsk, datetime],
    *,
    last: bool,
) -> list[ChangeAsk]:
    """One round of Composite requests over ``groups``, each answer added to ``rows`` and ``covered``; the asks
    whose replication subrequest was refused are returned (to be asked by COUNT()); a refused query, or any
    refusal in the ``last`` round, raises."""
    refused: list[ChangeAsk] = []
    for request in pack(groups):
        answers = client.composite([s.url for s in request])
        for sub, answer in zip(request, answers, strict=True):
            if answer["httpStatusCode"] >= 400:
                if sub.is_query or last:
                    raise QueryError(
                        refusal(answer), sobject=sub.ask.sobject, request=f"composite GET {sub.url.split('?')[0]}"
                    )
                log.info("%s: %s refused (%s): asked by COUNT()", sub.ask.sobject, sub.kind, refusal(answer))
                if sub.ask not in refused:
                    refused.append(sub.ask)
                continue
            n, end = _answer(sub, answer)
            rows[sub.ask] = rows.get(sub.ask, 0) + n
            if end is not None:
                covered[sub.ask] = min(covered.get(sub.ask, end), end)
    return refused


def count_changes(
    client: SalesforceClient,
    asks: Sequence[ChangeAsk],
    now: datetime | None = None,
    settle: timedelta = timedelta(0),
) -> dict[ChangeAsk, Changed]:
    """Rows changed in each ask's window, and where each answer ends. An object asked less than a minute
    after its cursor (the replication resources see whole minutes) is not asked: 0 rows, cursor kept; one
    asked by COUNT() is asked up to ``settle`` before its ``until``. The answers are keyed by the asks as
    asked (their ``until`` settled)."""
    now = now or datetime.now(UTC)
    out: dict[ChangeAsk, Changed] = {}
    groups = []

    def by_count(ask: ChangeAsk) -> list[_Sub]:
        settled = replace(ask, until=ask.until - settle)
        if settled.until <= ask.since:
            out[settled] = Changed(0, ask.since)
            return []
        return subrequests(client, settled, by_count=True)

    for ask in asks:
        if not replicable(ask, now):
            groups.append(by_count(ask))
        elif _minute(ask.until) <= ask.since:
            out[ask] = Changed(0, ask.since)
        else:
            groups.append(subrequests(client, ask, by_count=False))
    groups = [g for g in groups if g]
    rows: dict[ChangeAsk, int] = {}
    covered: dict[ChangeAsk, datetime] = {}
    refused = _ask_round(client, groups, rows, covered, last=False)
    for ask in refused:  # asked again, with COUNT()
        rows.pop(ask, None)
        covered.pop(ask, None)
    _ask_round(client, [g for g in map(by_count, refused) if g], rows, covered, last=True)
    for ask, n in rows.items():
        out[ask] = Changed(n, max(ask.since, min(covered.get(ask, ask.until), ask.until)))
    return out
