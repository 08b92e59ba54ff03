"""The Bulk API 2.0 client against the running emulator: every auth flow and every fault."""

from __future__ import annotations

import csv
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from sf_pipeline.salesforce import (
    ApiLimitError,
    AuthError,
    ExtractOptions,
    JobFailedError,
    QueryError,
    SalesforceClient,
    TransientError,
    UnexpectedResponseError,
)
from sf_pipeline.salesforce.bulk import BulkExtract, extract_object

from ..helpers import Emulator

# every test here is of the Bulk API 2.0 protocol: the route is never chosen by size (rest_max_records=0)
SMALL_PAGES = ExtractOptions(max_records=2_500, concurrency=3, poll_initial_s=0.02, poll_max_s=0.1, rest_max_records=0)


def ids_in(files: list[Path]) -> list[str]:
    out: list[str] = []
    for f in files:
        with open(f, newline="", encoding="utf-8") as fh:
            rows = csv.reader(fh)
            header = next(rows)
            assert header[0] == "Id"
            out += [r[0] for r in rows]
    return out


def test_extract_is_complete_and_in_order(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    result, describe = extract_object(client, "Account", tmp_path, options=SMALL_PAGES)
    assert len(result.files) == 5 and result.records == len(org.truth_ids("Account"))
    assert ids_in(result.files) == org.truth_ids("Account")
    assert "BillingAddress" not in result.fields and "BillingCity" in result.fields
    assert not list(tmp_path.glob("*.part"))
    assert result.bytes == sum(f.stat().st_size for f in result.files)
    # the job was deleted once everything was on disk
    assert all(j["id"] != result.job_id for j in client.list_jobs())


def test_window_and_deleted_rows(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    since, until = datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 8, 1, tzinfo=UTC)
    s, u = int(since.timestamp() * 1000), int(until.timestamp() * 1000)
    live, _ = extract_object(client, "Contact", tmp_path / "live", since=since, until=until, options=SMALL_PAGES)
    assert ids_in(live.files) == org.truth_ids("Contact", s, u)
    everything, _ = extract_object(
        client, "Contact", tmp_path / "all", since=since, until=until, include_deleted=True, options=SMALL_PAGES
    )
    assert ids_in(everything.files) == org.truth_ids("Contact", s, u, include_deleted=True)
    assert everything.records > live.records > 0
    # User has no IsDeleted: include_deleted is quietly a plain query
    users, _ = extract_object(client, "User", tmp_path / "users", include_deleted=True, options=SMALL_PAGES)
    assert users.records == len(org.truth_ids("User"))


@pytest.mark.parametrize("flow", ["client_credentials", "password", "refresh_token", "access_token"])
def test_auth_flows(org: Emulator, flow: str, tmp_path: Path) -> None:
    kw: dict = {}
    if flow == "password":
        kw = {"username": "demo@example.com", "password": "demo-password"}
    elif flow == "refresh_token":
        kw = {"refresh_token": "demo-refresh-token"}
    elif flow == "access_token":
        with SalesforceClient(org.settings()) as seed:
            seed.login()
            kw = {"access_token": seed._token, "instance_url": org.url}
    with SalesforceClient(org.settings(**kw)) as c:
        assert c.settings.flow == flow
        assert c.describe("Lead")["name"] == "Lead"


def test_bad_credentials_name_the_failure(org: Emulator) -> None:
    with SalesforceClient(org.settings(client_secret="wrong")) as c, pytest.raises(AuthError, match="invalid_client"):
        c.sobjects()
    with (
        SalesforceClient(org.settings(username="demo@example.com", password="bad")) as c,
        pytest.raises(AuthError, match="invalid_grant"),
    ):
        c.sobjects()


def test_expired_session_is_renewed_once(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    org.fault(kind="expired_session", stage="results", object="Lead", times=1)
    result, _ = extract_object(client, "Lead", tmp_path, options=SMALL_PAGES)
    assert ids_in(result.files) == org.truth_ids("Lead")


def test_expired_session_without_a_way_to_renew_is_an_auth_error(org: Emulator, tmp_path: Path) -> None:
    with SalesforceClient(org.settings()) as seed:
        seed.login()
        token = seed._token
    with SalesforceClient(org.settings(access_token=token, instance_url=org.url)) as c:
        org.fault(kind="expired_session", stage="describe", object="Lead")
        with pytest.raises(AuthError, match="session expired"):
            extract_object(c, "Lead", tmp_path, options=SMALL_PAGES)


def test_session_refused_twice_is_an_auth_error(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    org.fault(kind="expired_session", stage="describe", object="Lead", times=-1)
    with pytest.raises(AuthError, match=r"\[Lead\].*INVALID_SESSION_ID"):
        extract_object(client, "Lead", tmp_path, options=SMALL_PAGES)


@pytest.mark.parametrize("stage", ["create", "poll", "result_pages", "results", "describe"])
def test_throttling_and_server_errors_are_retried(
    client: SalesforceClient, org: Emulator, tmp_path: Path, stage: str
) -> None:
    org.fault(kind="rate_limit", stage=stage, object="Case", times=1, retry_after=0.2)
    org.fault(kind="server_error", stage=stage, object="Case", times=1, status=503)
    org.fault(kind="server_error", stage=stage, object="Case", times=1, status=500)
    started = time.monotonic()
    result, _ = extract_object(client, "Case", tmp_path, options=SMALL_PAGES)
    assert ids_in(result.files) == org.truth_ids("Case")
    assert time.monotonic() - started >= 0.2  # Retry-After was honoured
    assert all(f["times"] == 0 for f in org.faults())


def test_retries_are_bounded(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    org.fault(kind="server_error", stage="create", object="Case", times=-1, status=503)
    with pytest.raises(TransientError, match=r"\[Case\] POST .*503.*after 4 attempts"):
        extract_object(client, "Case", tmp_path, options=SMALL_PAGES)


def test_api_limit_is_not_retried(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    org.fault(kind="request_limit", stage="create", object="Case", times=-1)
    with pytest.raises(ApiLimitError, match="REQUEST_LIMIT_EXCEEDED"):
        extract_object(client, "Case", tmp_path, options=SMALL_PAGES)
    assert org.faults()[0]["hits"] == 1


def test_a_body_cut_mid_stream_is_fetched_again(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    org.fault(kind="cut_body", stage="results", object="Account", times=2)
    result, _ = extract_object(client, "Account", tmp_path, options=SMALL_PAGES)
    assert ids_in(result.files) == org.truth_ids("Account")
    assert org.faults()[0]["hits"] == 2


def test_cut_body_without_gzip(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    org.fault(kind="cut_body", stage="results", object="Lead", times=1)
    options = ExtractOptions(max_records=500, gzip=False, poll_initial_s=0.02, rest_max_records=0)
    result, _ = extract_object(client, "Lead", tmp_path, options=options)
    assert ids_in(result.files) == org.truth_ids("Lead")


@pytest.mark.parametrize("stage", ["results", "poll", "describe"])
def test_html_login_page_with_200_is_an_error_not_zero_rows(
    client: SalesforceClient, org: Emulator, tmp_path: Path, stage: str
) -> None:
    org.fault(kind="html_login", stage=stage, object="Lead", times=-1)
    with pytest.raises(UnexpectedResponseError, match=r"\[Lead\].*HTML page.*login"):
        extract_object(client, "Lead", tmp_path, options=SMALL_PAGES)
    assert not list(tmp_path.glob("*.csv")), "no page may look complete"


def test_failed_job_raises_salesforce_message(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    org.fault(kind="job_failed", stage="create", object="Task", message="INVALID_FIELD: No such column")
    with pytest.raises(JobFailedError, match=r"\[Task\].*Failed: INVALID_FIELD: No such column"):
        extract_object(client, "Task", tmp_path, options=SMALL_PAGES)


def test_slow_job_is_polled_until_complete(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    org.fault(kind="slow_job", stage="poll", object="Task", polls=4)
    result, _ = extract_object(client, "Task", tmp_path, options=SMALL_PAGES)
    assert result.records == len(org.truth_ids("Task"))
    assert org.faults()[0]["hits"] == 1


def test_a_job_that_outlives_its_timeout_is_aborted(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    org.fault(kind="slow_job", stage="poll", object="Task", polls=1000)
    options = ExtractOptions(poll_initial_s=0.02, poll_max_s=0.05, job_timeout_s=0.3, rest_max_records=0)
    with pytest.raises(JobFailedError, match="still InProgress"):
        extract_object(
            client,
            "Task",
            tmp_path,
            options=options,
        )
    states = {j["state"] for j in client.list_jobs() if j["object"] == "Task"}
    assert "Aborted" in states


def test_cancelling_the_caller_aborts_the_job(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    org.fault(kind="slow_job", stage="poll", object="Opportunity", polls=1000)
    extract = BulkExtract(client, "Opportunity", ["Id"], tmp_path, options=SMALL_PAGES)
    calls = {"n": 0}
    real_get_job = client.get_job

    def interrupted_get_job(job_id: str, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # what a cancelled run delivers to the polling thread
        return real_get_job(job_id, **kw)

    client.get_job = interrupted_get_job  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        extract.run()
    client.get_job = real_get_job  # type: ignore[method-assign]
    job = [j for j in client.list_jobs() if j["object"] == "Opportunity"][-1]
    assert job["state"] == "Aborted"


def test_header_mismatch_is_an_error(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    extract = BulkExtract(client, "Lead", ["Id", "Name"], tmp_path, options=SMALL_PAGES)
    extract.fields = ["Id", "Email"]  # what a proxy serving another object's page would look like
    with pytest.raises(UnexpectedResponseError, match=r"\[Lead\].*header does not match"):
        extract.run()
    assert not list(tmp_path.glob("*.csv"))


def test_bad_query_is_a_query_error(client: SalesforceClient, tmp_path: Path) -> None:
    with pytest.raises(QueryError, match=r"\[Lead\].*INVALID_FIELD.*Nope__c"):
        BulkExtract(client, "Lead", ["Id", "Nope__c"], tmp_path, options=SMALL_PAGES).run()


def test_interrupted_download_resumes_from_complete_pages(org: Emulator, tmp_path: Path) -> None:
    options = ExtractOptions(
        max_records=2_000, concurrency=1, poll_initial_s=0.02, delete_job=False, rest_max_records=0
    )
    # first run: page 4 keeps failing, so the run stops with pages 0-3 on disk
    with SalesforceClient(org.settings()) as c:
        extract = BulkExtract(c, "Account", ["Id", "Name"], tmp_path, options=options)
        original = extract._download_once

        def failing(url, part, final, headers):
            if final.name.endswith("00004.csv"):
                raise ConnectionResetError("simulated drop")
            return original(url, part, final, headers)

        extract._download_once = failing  # type: ignore[method-assign]
        with pytest.raises(Exception, match="simulated drop"):
            extract.run()
    done = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert done[:4] == [f"Account.{i:05d}.csv" for i in range(4)] and "Account.00004.csv" not in done
    org.reset_stats()
    with SalesforceClient(org.settings()) as c:
        result = BulkExtract(c, "Account", ["Id", "Name"], tmp_path, options=options).run()
    assert result.resumed_pages == len(done)
    assert ids_in(result.files) == org.truth_ids("Account")
    stats = org.stats()
    assert stats.get("POST /services/data/v62.0/jobs/query", 0) == 0, "the earlier job was reused"
    assert stats["GET /services/data/v62.0/jobs/query/{id}/results"] == len(result.files) - len(done)


def test_sequential_download_below_api_58(org: Emulator, tmp_path: Path) -> None:
    with SalesforceClient(org.settings(api_version="57.0")) as c:
        result, _ = extract_object(c, "Account", tmp_path, options=SMALL_PAGES)
    assert ids_in(result.files) == org.truth_ids("Account")
    assert "GET /services/data/v57.0/jobs/query/{id}/resultPages" not in org.stats()


def test_record_count_mismatch_is_an_error(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    extract = BulkExtract(client, "Lead", ["Id"], tmp_path, options=SMALL_PAGES)
    real = client.get_job

    def lying(job_id, **kw):
        info = real(job_id, **kw)
        info["numberRecordsProcessed"] = info.get("numberRecordsProcessed", 0) + 1
        return info

    client.get_job = lying  # type: ignore[method-assign]
    with pytest.raises(UnexpectedResponseError, match="records on disk but job"):
        extract.run()


def test_concurrent_downloads_share_one_renewal(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    client.sobjects()  # logged in before the downloads start
    org.fault(kind="expired_session", stage="results", object="Account", times=1)
    org.reset_stats()
    result, _ = extract_object(client, "Account", tmp_path, options=SMALL_PAGES)
    assert result.records == len(org.truth_ids("Account"))
    token_requests = org.stats().get("POST /services/oauth2/token", 0)
    assert token_requests == 1, (
        f"{SMALL_PAGES.concurrency} downloads hit the expired session; renewals: {token_requests}"
    )
    assert threading.active_count() < 20


def test_a_create_whose_answer_is_lost_leaves_one_job(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    """The job is created but its answer never comes back (a proxy drops it): the client creates it again,
    then aborts and deletes the one it could not see. The extract is whole and no second job is left."""
    earlier = {j["id"] for j in client.list_jobs()}  # other tests' jobs on the shared org
    org.fault(kind="lost_answer", stage="create", object="Case", times=1)
    org.reset_stats()
    result, _ = extract_object(client, "Case", tmp_path, options=replace(SMALL_PAGES, delete_job=False))
    assert ids_in(result.files) == org.truth_ids("Case")
    assert org.stats()["POST /services/data/v62.0/jobs/query"] == 2
    cases = [j["id"] for j in client.list_jobs() if j["object"] == "Case" and j["id"] not in earlier]
    assert cases == [result.job_id], "the lost job was deleted, the used one kept"


def test_a_create_refused_with_a_server_error_is_not_repeated_blindly(
    client: SalesforceClient, org: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 503 answer to a create may come after the job was made: each new attempt is a create checked for a lost
    job afterwards (said in the log), never a plain resend; the job list holds one job for the extract."""
    earlier = {j["id"] for j in client.list_jobs()}
    org.fault(kind="server_error", stage="create", object="Lead", times=2, status=503)
    with caplog.at_level("WARNING", logger="sf_pipeline.salesforce.client"):
        result, _ = extract_object(client, "Lead", tmp_path, options=replace(SMALL_PAGES, delete_job=False))
    assert sum("the job may exist; creating it again" in r.getMessage() for r in caplog.records) == 2
    assert ids_in(result.files) == org.truth_ids("Lead")
    assert [j["id"] for j in client.list_jobs() if j["object"] == "Lead" and j["id"] not in earlier] == [result.job_id]


def test_retry_waits_are_jittered_and_a_retry_after_is_capped() -> None:
    """Backoff with full jitter (no two workers throttled together wait alike) within its cap, and a
    Retry-After honoured up to ``max_retry_after_s``: a proxy asking for an hour does not stall a run."""
    import httpx
    import tenacity

    from sf_pipeline.salesforce.retries import RetryableResponse, backoff
    from sf_pipeline.salesforce.settings import RetryPolicy

    policy = RetryPolicy(initial_backoff_s=0.5, max_backoff_s=30.0, max_retry_after_s=120.0)
    wait = backoff(policy)

    def state(attempt: int, failure: BaseException) -> tenacity.RetryCallState:
        s = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        s.attempt_number = attempt
        s.set_exception((type(failure), failure, None))
        return s

    throttled = httpx.Response(429, request=httpx.Request("GET", "https://x"))
    assert wait(state(1, RetryableResponse(throttled, 7.0))) == 7.0
    assert wait(state(1, RetryableResponse(throttled, 3600.0))) == 120.0
    waits = [wait(state(4, httpx.ConnectError("down"))) for _ in range(50)]
    assert all(0 <= w <= 30.0 for w in waits) and len({round(w, 6) for w in waits}) > 40
