"""The change sensor's question at org scale, over HTTP against the emulator: Composite requests (one API call
for up to 25 subrequests, at most 5 of them queries) and the replication resources ``updated/`` and
``deleted/`` (whole minutes, ``latestDateCovered``, 30 and 15 days back), as Salesforce documents them; and
``count_changes``, which asks hundreds of objects in a bounded number of calls and agrees with ``COUNT()``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from sf_pipeline.salesforce import QueryError, SalesforceClient
from sf_pipeline.salesforce.changes import (
    MAX_QUERIES,
    MAX_SUBREQUESTS,
    MINUTE_WAIT_MARGIN,
    MINUTE_WAIT_MAX,
    ChangeAsk,
    Changed,
    count_changes,
    minute_close_wait,
)
from sf_testbed.emulator import EmulatorConfig
from sf_testbed.emulator.soql import epoch_ms

from ..helpers import Emulator, running_emulator

OBJECTS = 120


@pytest.fixture(scope="module")
def wide_org(tmp_path_factory: pytest.TempPathFactory) -> Emulator:
    config = EmulatorConfig(port=0, objects=OBJECTS, scale=0.01, cache_dir=tmp_path_factory.mktemp("cache"))
    with running_emulator(config) as org:
        yield org


@dataclass(frozen=True)
class Edits:
    at: datetime  # when the records were changed
    first: Changed  # Lead asked at once: its minute was not over
    lead: list[str]  # Lead Ids: [0] edited, [1] deleted


@pytest.fixture(scope="module")
def edits(wide_org: Emulator) -> Edits:
    """Records changed in several objects, then the org's clock moved on a minute so that their minute is over
    (no wall-clock wait): the replication resources answer up to the current whole minute, as Salesforce's do."""
    lead = wide_org.truth_ids("Lead")
    at = datetime.now(UTC)
    wide_org.change("Lead", update=[{"Id": lead[0], "Company": "Renamed"}], delete=[lead[1]])
    wide_org.change("Account", insert=[{"Name": f"New {k}"} for k in range(3)])
    wide_org.change("Contact", delete=wide_org.truth_ids("Contact")[:2])
    with SalesforceClient(wide_org.settings()) as client:
        ask = ChangeAsk("Lead", "SystemModstamp", at - timedelta(minutes=5), at + timedelta(minutes=5))
        (first,) = count_changes(client, [ask], datetime.now(UTC)).values()
    wide_org.advance_clock(61)
    return Edits(at, first, lead)


@pytest.fixture
def sf(wide_org: Emulator) -> SalesforceClient:
    with SalesforceClient(wide_org.settings()) as client:
        yield client


def composite(client: SalesforceClient, urls: list[str]) -> list[dict]:
    body = {"compositeRequest": [{"method": "GET", "url": u, "referenceId": f"r{k}"} for k, u in enumerate(urls)]}
    return client.json("POST", client.data_path("composite"), json=body)["compositeResponse"]


def window(org: Emulator, edits: Edits) -> tuple[datetime, datetime]:
    """Minutes around the edits, on minute boundaries, over the org's now: what the replication resources
    answer for."""
    start = edits.at.replace(second=0, microsecond=0) - timedelta(minutes=10)
    return start, org.now().replace(second=0, microsecond=0)


def asks_for(org: Emulator, since: datetime, until: datetime) -> list[ChangeAsk]:
    """Every object the sensor would ask (as discovery classifies them: a filter-needing object left out)."""
    out = []
    for m in org.org.objects.values():
        if not m.queryable or m.query_refused or m.filter_fields:
            continue
        cursor = next(
            (f for f in ("SystemModstamp", "LastModifiedDate", "CreatedDate") if f.lower() in m.by_name), None
        )
        if cursor:
            out.append(ChangeAsk(m.name, cursor, since, until, include_deleted=m.deletable))
    return out


def test_a_composite_request_is_one_api_call_with_an_answer_per_subrequest(
    wide_org: Emulator, sf, edits: Edits
) -> None:
    since, until = window(wide_org, edits)
    span = f"?start={since.isoformat()}&end={until.isoformat()}".replace("+", "%2B")
    urls = [sf.data_path(f"sobjects/{name}/updated/") + span for name in ("Account", "Contact", "Lead")]
    urls.append(sf.data_path("sobjects/NoSuchObject__c/updated/") + span)
    before = wide_org.server.state.api_used
    answers = composite(sf, urls)
    assert wide_org.server.state.api_used - before == 1, "the whole composite counts as one call"
    assert [a["referenceId"] for a in answers] == ["r0", "r1", "r2", "r3"]
    assert [a["httpStatusCode"] for a in answers[:3]] == [200, 200, 200] and answers[3]["httpStatusCode"] == 404
    account = wide_org.truth_ids("Account", epoch_ms(since.isoformat()), epoch_ms(until.isoformat()))
    assert sorted(answers[0]["body"]["ids"]) == sorted(account) and len(account) == 3
    assert answers[0]["body"]["latestDateCovered"] == until.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def test_composite_limits_are_salesforces(sf) -> None:
    updated = sf.data_path("sobjects/Account/updated/?start=2026-01-01T00:00:00Z&end=2026-01-01T00:01:00Z")
    with pytest.raises(QueryError, match="1 to 25 subrequests"):
        composite(sf, [updated] * (MAX_SUBREQUESTS + 1))
    count = sf.data_path("query") + "?q=SELECT+COUNT()+FROM+Account"
    with pytest.raises(QueryError, match="at most 5 subrequests may be queries"):
        composite(sf, [count] * (MAX_QUERIES + 1))
    assert [a["body"]["totalSize"] > 0 for a in composite(sf, [count] * MAX_QUERIES)] == [True] * MAX_QUERIES


def test_replication_resources_see_whole_minutes_and_a_bounded_past(wide_org: Emulator, sf) -> None:
    now = datetime.now(UTC)
    # seconds are ignored: 10:00:59 .. 10:02:30 is asked as 10:00 .. 10:02
    start = (now - timedelta(days=2)).replace(second=59, microsecond=0)
    end = start + timedelta(seconds=91)
    body = sf.json(
        "GET", sf.data_path("sobjects/Account/updated/"), params={"start": start.isoformat(), "end": end.isoformat()}
    )
    assert body["latestDateCovered"] == (end.replace(second=0)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    month_ago, half_month_ago = (now - timedelta(days=31)).isoformat(), (now - timedelta(days=16)).isoformat()
    with pytest.raises(QueryError, match="INVALID_REPLICATION_DATE"):
        sf.json("GET", sf.data_path("sobjects/Account/updated/"), params={"start": month_ago, "end": now.isoformat()})
    with pytest.raises(QueryError, match="INVALID_REPLICATION_DATE"):  # the recycle bin keeps 15 days
        sf.json(
            "GET", sf.data_path("sobjects/Account/deleted/"), params={"start": half_month_ago, "end": now.isoformat()}
        )
    models = wide_org.org.objects.values()
    feed = next(m.name for m in models if not m.global_entry()["replicateable"] and m.queryable)
    with pytest.raises(QueryError, match="not replicateable"):
        sf.json(
            "GET",
            sf.data_path(f"sobjects/{feed}/updated/"),
            params={"start": start.isoformat(), "end": end.isoformat()},
        )


@pytest.mark.parametrize(
    ("second", "interval_s", "waits_s"),
    [
        (50.0, 30, 12.0),  # the minute ends before the next tick: wait for it (and 2 s more)
        (50.0, 10, 0.0),  # the next tick comes first and waits itself
        (45.0, 300, 17.0),
        (30.0, 300, 0.0),  # 32 s: longer than a tick may wait (MINUTE_WAIT_MAX)
        (0.5, 30, 0.0),  # the minute just ended: ask at once
        (58.5, 30, 3.5),
    ],
)
def test_a_tick_just_before_a_minute_ends_waits_for_it(second: float, interval_s: int, waits_s: float) -> None:
    now = datetime(2026, 12, 7, 10, 41, tzinfo=UTC) + timedelta(seconds=second)
    wait = minute_close_wait(now, timedelta(seconds=interval_s))
    assert wait == timedelta(seconds=waits_s)
    if wait:
        asked = now + wait
        assert asked.replace(second=0, microsecond=0) > now, "asked once the tick's minute is over"
        assert asked.second == MINUTE_WAIT_MARGIN.seconds and wait < MINUTE_WAIT_MAX


def test_edits_and_deletes_show_once_their_minute_is_over(wide_org: Emulator, sf, edits: Edits) -> None:
    minute = edits.at.replace(second=0, microsecond=0)
    if edits.first.covered == minute:  # asked within the edits' minute (a slow machine may have crossed it)
        assert edits.first.rows == 0, "the minute was not over: nothing reported yet"
    ask = ChangeAsk("Lead", "SystemModstamp", edits.at - timedelta(minutes=5), edits.at + timedelta(minutes=5))
    (later,) = count_changes(sf, [ask], wide_org.now()).values()
    assert later.rows == 2 and later.covered > edits.at, "one edit and one delete"
    params = {"start": ask.since.isoformat(), "end": ask.until.isoformat()}
    updated = sf.json("GET", sf.data_path("sobjects/Lead/updated/"), params=params)
    deleted = sf.json("GET", sf.data_path("sobjects/Lead/deleted/"), params=params)
    assert updated["ids"] == [edits.lead[0]] and [r["id"] for r in deleted["deletedRecords"]] == [edits.lead[1]]


def test_count_changes_asks_an_org_in_few_calls_and_agrees_with_count(wide_org: Emulator, sf, edits: Edits) -> None:
    since, until = window(wide_org, edits)
    asks = asks_for(wide_org, since, until)
    by_count = [a for a in asks if a.cursor_field == "CreatedDate"]
    assert len(asks) > 90 and by_count, "the org has objects of both kinds"
    before = wide_org.server.state.api_used
    answers = count_changes(sf, asks, until)
    calls = wide_org.server.state.api_used - before
    replicated = len(asks) - len(by_count)
    bound = max(-(-(2 * replicated + len(by_count)) // MAX_SUBREQUESTS), -(-len(by_count) // MAX_QUERIES))
    # first fit may leave a request a subrequest short; refused objects cost one more round
    assert calls <= bound + 2, (calls, bound)
    assert set(answers) == set(asks)
    for ask, changed in answers.items():
        truth = wide_org.truth_ids(
            ask.sobject, epoch_ms(since.isoformat()), epoch_ms(until.isoformat()), ask.include_deleted
        )
        assert changed.rows == len(truth), ask.sobject
        assert changed.covered == until, ask.sobject
    changed = {a.sobject: c.rows for a, c in answers.items() if c.rows}
    assert changed == {"Lead": 2, "Account": 3, "Contact": 2}, changed
    # a window older than the replication resources' reach is asked by COUNT(): same answer
    old = [ChangeAsk("Account", "SystemModstamp", since - timedelta(days=20), until)]
    assert count_changes(sf, old, until)[old[0]].rows == 3
    print(f"\n{len(asks)} objects asked in {calls} API calls")


def test_a_subrequest_answered_5xx_or_429_is_asked_again(wide_org: Emulator, sf, edits: Edits) -> None:
    """The sensor's Composite request is retried like a GET when a subrequest is answered 5xx or 429, rather than
    failing the tick (a query) or sending a replication question back to COUNT()."""
    since, until = window(wide_org, edits)
    old = [ChangeAsk("Account", "SystemModstamp", since - timedelta(days=20), until)]  # asked by COUNT()
    for kind in ("server_error", "rate_limit"):
        wide_org.fault(kind=kind, stage="query", object="Account", times=1, retry_after=0.1)
        assert count_changes(sf, old, until)[old[0]].rows == 3
        assert [f["times"] for f in wide_org.faults()] == [0], "the fault was met, then asked again"
        wide_org.clear_faults()
