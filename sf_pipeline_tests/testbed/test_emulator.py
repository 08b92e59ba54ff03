"""The emulator speaks Bulk API 2.0 the way Salesforce does: checked over real HTTP."""

from __future__ import annotations

import csv
import gzip
import io
import time
from urllib.parse import urlparse

import httpx
import pytest

from ..helpers import Emulator
from ..latency_proxy import latency_proxy

V = "/services/data/v62.0"


def token(org: Emulator, **form) -> httpx.Response:
    data = {"grant_type": "client_credentials", "client_id": "demo-client-id", "client_secret": "demo-client-secret"}
    data.update(form)
    return httpx.post(f"{org.url}/services/oauth2/token", data=data)


@pytest.fixture
def api(org: Emulator) -> httpx.Client:
    access = token(org).json()["access_token"]
    with httpx.Client(base_url=org.url + V, headers={"Authorization": f"Bearer {access}"}, timeout=30) as c:
        yield c


def run_job(api: httpx.Client, soql: str, **body) -> dict:
    job = api.post("/jobs/query", json={"operation": "query", "query": soql, **body})
    assert job.status_code == 200, job.text
    job_id = job.json()["id"]
    for _ in range(200):
        info = api.get(f"/jobs/query/{job_id}").json()
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return info
        time.sleep(0.02)
    raise AssertionError("job did not finish")


def test_oauth_flows_and_their_errors(org: Emulator) -> None:
    ok = token(org).json()
    assert ok["token_type"] == "Bearer" and ok["instance_url"].startswith("http://127.0.0.1")
    pw = token(org, grant_type="password", username="demo@example.com", password="demo-password").json()
    assert "refresh_token" in pw
    assert token(org, grant_type="refresh_token", refresh_token=pw["refresh_token"]).status_code == 200
    bad = token(org, client_secret="wrong")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client"
    bad = token(org, grant_type="password", username="demo@example.com", password="nope")
    assert bad.json() == {"error": "invalid_grant", "error_description": "authentication failure"}
    assert token(org, client_id="other").json()["error"] == "invalid_client_id"


def test_api_requires_a_valid_session(org: Emulator) -> None:
    r = httpx.get(f"{org.url}{V}/sobjects", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.json() == [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]


def test_sobjects_and_describe(api: httpx.Client) -> None:
    names = {o["name"] for o in api.get("/sobjects").json()["sobjects"]}
    assert {"Account", "Contact", "Opportunity", "Lead", "Case", "Task", "User", "Invoice__c"} <= names
    desc = api.get("/sobjects/Account/describe").json()
    by_name = {f["name"]: f for f in desc["fields"]}
    assert by_name["BillingAddress"]["type"] == "address"
    assert by_name["BillingCity"]["compoundFieldName"] == "BillingAddress"
    assert by_name["AnnualRevenue"]["type"] == "currency" and by_name["Credit_Limit__c"]["scale"] == 2
    types = {f["type"] for o in names for f in api.get(f"/sobjects/{o}/describe").json()["fields"]}
    assert {
        "id",
        "reference",
        "string",
        "textarea",
        "picklist",
        "multipicklist",
        "combobox",
        "email",
        "phone",
        "url",
        "boolean",
        "int",
        "long",
        "double",
        "currency",
        "percent",
        "date",
        "datetime",
        "time",
        "base64",
        "address",
        "location",
        "encryptedstring",
    } <= types
    assert api.get("/sobjects/Nope__c/describe").status_code == 404


def test_results_page_with_locators_and_headers(api: httpx.Client, org: Emulator) -> None:
    info = run_job(api, "SELECT Id, Name, Description FROM Account")
    total = info["numberRecordsProcessed"]
    assert total == len(org.truth_ids("Account"))
    ids, locator, pages = [], None, 0
    while True:
        params = {"maxRecords": 4000} | ({"locator": locator} if locator else {})
        r = api.get(f"/jobs/query/{info['id']}/results", params=params)
        assert r.headers["content-type"] == "text/csv"
        rows = list(csv.reader(io.StringIO(r.text, newline="")))
        assert rows[0] == ["Id", "Name", "Description"]
        assert int(r.headers["Sforce-NumberOfRecords"]) == len(rows) - 1 <= 4000
        ids += [row[0] for row in rows[1:]]
        pages += 1
        locator = r.headers["Sforce-Locator"]
        if locator == "null":
            break
    assert pages == -(-total // 4000)
    assert ids == org.truth_ids("Account")


def test_gzip_when_asked(api: httpx.Client) -> None:
    info = run_job(api, "SELECT Id FROM Lead")
    url = f"{api.base_url}/jobs/query/{info['id']}/results"
    with httpx.stream("GET", url, headers={**api.headers, "Accept-Encoding": "gzip"}) as r:
        assert r.headers["content-encoding"] == "gzip"
        raw = b"".join(r.iter_raw())
    body = gzip.decompress(raw).decode()
    assert body.startswith('"Id"\n') and body.count("\n") == info["numberRecordsProcessed"] + 1


def test_a_large_page_is_compressed_once_then_served_from_its_gzip(
    api: httpx.Client, org: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sf_testbed.emulator.results.GZIP_CACHE_MIN_BYTES", 1)  # every page is "large"
    info = run_job(api, "SELECT Id, Name, Description FROM Account")
    assert not list(org.server.state.job_dir.glob(f"gz/{info['id']}-*.gz"))
    url = f"{api.base_url}/jobs/query/{info['id']}/results"
    plain = api.get(url, params={"maxRecords": 3000}, headers={"Accept-Encoding": "identity"})
    org.fault(kind="cut_body", stage="results", object="Account", times=1)
    with pytest.raises(httpx.HTTPError):  # a cut page is never kept as the page's gzip
        api.get(url, params={"maxRecords": 3000}, headers={"Accept-Encoding": "gzip"})
    bodies = []
    for _ in range(2):
        with httpx.stream(
            "GET", url, params={"maxRecords": 3000}, headers={**api.headers, "Accept-Encoding": "gzip"}
        ) as r:
            assert r.headers["content-encoding"] == "gzip"
            assert r.headers["Sforce-NumberOfRecords"] == "3000"
            bodies.append((r.headers.get("content-length"), gzip.decompress(b"".join(r.iter_raw()))))
    (first_length, first), (second_length, second) = bodies
    assert first_length is None and second_length is not None  # on the fly (chunked), then the kept file
    assert first == second == plain.content
    kept = [p.stat().st_size for p in org.server.state.job_dir.glob(f"gz/{info['id']}-*.gz")]
    assert kept == [int(second_length)]  # fields other than the base file's: the job's own file


@pytest.mark.parametrize(
    ("delimiter", "char"),
    [("COMMA", ","), ("TAB", "\t"), ("PIPE", "|"), ("SEMICOLON", ";"), ("CARET", "^"), ("BACKQUOTE", "`")],
)
@pytest.mark.parametrize("line_ending", ["LF", "CRLF"])
def test_csv_is_written_as_salesforce_writes_it(
    api: httpx.Client, org: Emulator, delimiter: str, char: str, line_ending: str
) -> None:
    fields = ["Id", "Name", "Description", "Notes__c", "BillingStreet", "AnnualRevenue", "Is_Strategic__c"]
    info = run_job(
        api,
        f"SELECT {', '.join(fields)} FROM Account WHERE SystemModstamp < 2010-01-01T00:00:00Z",
        columnDelimiter=delimiter,
        lineEnding=line_ending,
    )
    body = api.get(f"/jobs/query/{info['id']}/results").content
    terminator = b"\r\n" if line_ending == "CRLF" else b"\n"
    assert body.endswith(b'"' + terminator) or body.endswith(char.encode() + terminator)
    rows = list(csv.reader(io.StringIO(body.decode(), newline=""), delimiter=char))
    assert rows[0] == fields and len(rows) - 1 == info["numberRecordsProcessed"]
    obj = org.org.get("Account")
    flat = [v for row in rows[1:] for v in row]
    assert any("\n" in v for v in flat) and any('"' in v for v in flat) and any(char in v for v in flat)
    assert any(not v.isascii() for v in flat)
    # every value equals the org's value; nulls are empty and unquoted
    metas = [obj.by_name[f.lower()] for f in fields]
    first = obj.first_row_at_or_after(0)
    expected = [[obj.raw_value(m, i) or "" for m in metas] for i in range(first, obj.rows) if not obj.is_deleted(i)][
        : len(rows) - 1
    ]
    assert rows[1:] == expected
    if delimiter == "COMMA" and line_ending == "LF":
        assert f"{char}{char}".encode() in body or b",\n" in body  # a null is an empty, unquoted value


def test_window_filters_and_query_all(api: httpx.Client, org: Emulator) -> None:
    obj = org.org.get("Contact")
    lo, hi = obj.modstamp_ms(1000), obj.modstamp_ms(2000)
    since, until = "2025-03-01T00:00:00Z", "2025-09-01T00:00:00Z"
    live = run_job(api, f"SELECT Id FROM Contact WHERE SystemModstamp >= {since} AND SystemModstamp < {until}")
    everything = api.post(
        "/jobs/query",
        json={
            "operation": "queryAll",
            "query": f"SELECT Id, IsDeleted FROM Contact WHERE SystemModstamp >= {since} AND SystemModstamp < {until}",
        },
    )
    assert lo < hi
    from sf_testbed.emulator.soql import epoch_ms

    s, u = epoch_ms(since), epoch_ms(until)
    assert live["numberRecordsProcessed"] == len(org.truth_ids("Contact", s, u))
    job_id = everything.json()["id"]
    time.sleep(0.3)
    rows = list(csv.reader(io.StringIO(api.get(f"/jobs/query/{job_id}/results").text, newline="")))[1:]
    assert [r[0] for r in rows] == org.truth_ids("Contact", s, u, include_deleted=True)
    assert {r[1] for r in rows} == {"true", "false"}
    assert len(rows) > live["numberRecordsProcessed"]


def test_job_lifecycle_list_abort_delete_and_version(api: httpx.Client) -> None:
    info = run_job(api, "SELECT Id FROM Case")
    assert info["jobType"] == "V2Query" and info["state"] == "JobComplete"
    assert any(j["id"] == info["id"] for j in api.get("/jobs/query").json()["records"])
    other = httpx.get(
        str(api.base_url).replace("v62.0", "v61.0") + f"/jobs/query/{info['id']}/results", headers=api.headers
    )
    assert other.status_code == 409
    r = api.patch(f"/jobs/query/{info['id']}", json={"state": "Aborted"})
    assert r.status_code == 400  # a completed job cannot be aborted
    assert api.delete(f"/jobs/query/{info['id']}").status_code == 204
    assert api.get(f"/jobs/query/{info['id']}").status_code == 404


def test_abort_a_running_job(api: httpx.Client, org: Emulator) -> None:
    org.fault(kind="slow_job", stage="poll", object="Case", polls=50)
    job_id = api.post("/jobs/query", json={"operation": "query", "query": "SELECT Id FROM Case"}).json()["id"]
    info = api.get(f"/jobs/query/{job_id}").json()
    assert info["state"] == "InProgress", info
    aborted = api.patch(f"/jobs/query/{job_id}", json={"state": "Aborted"}).json()
    assert aborted["state"] == "Aborted"


def test_clearing_the_faults_releases_a_job_held_in_progress(api: httpx.Client, org: Emulator) -> None:
    """What the UI test holds a run with: a slow job stays InProgress, poll after poll, until the faults go."""
    org.fault(kind="slow_job", stage="poll", object="Case", polls=1000)
    job_id = api.post("/jobs/query", json={"operation": "query", "query": "SELECT Id FROM Case"}).json()["id"]
    time.sleep(0.3)  # long enough for the job itself to be done
    assert [api.get(f"/jobs/query/{job_id}").json()["state"] for _ in range(3)] == ["InProgress"] * 3
    org.clear_faults()
    assert api.get(f"/jobs/query/{job_id}").json()["state"] == "JobComplete"
    assert api.get(f"/jobs/query/{job_id}/results").status_code == 200


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT COUNT() FROM Account", "INVALIDJOB"),
        ("SELECT Id FROM Account LIMIT 5 OFFSET 5", "INVALIDJOB"),
        ("SELECT Id, BillingAddress FROM Account", "FUNCTIONALITY_NOT_ENABLED"),
        ("SELECT Id, Signature__c FROM Invoice__c", "INVALIDJOB"),
        ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "INVALIDJOB"),
        ("SELECT Id, Nope__c FROM Account", "INVALID_FIELD"),
        ("SELEC Id FROM Account", "MALFORMED_QUERY"),
    ],
)
def test_bulk_rejects_what_salesforce_rejects(api: httpx.Client, soql: str, code: str) -> None:
    r = api.post("/jobs/query", json={"operation": "query", "query": soql})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == code


def test_result_pages_for_parallel_download(api: httpx.Client, org: Emulator) -> None:
    info = run_job(api, "SELECT Id FROM Account")
    urls, body = [], api.get(f"/jobs/query/{info['id']}/resultPages", params={"maxRecords": 1000}).json()
    while True:
        urls += [p["resultUrl"] for p in body["resultPages"]]
        assert len(body["resultPages"]) <= 5
        if body["done"]:
            break
        body = api.get(body["nextRecordsUrl"].replace(V, "")).json()
    ids = []
    for url in urls:
        rows = api.get(url.replace(V, "")).text.splitlines()
        assert rows[0] == '"Id"'
        ids += [r.strip('"') for r in rows[1:]]
    assert ids == org.truth_ids("Account")


def test_rest_count_and_max(api: httpx.Client, org: Emulator) -> None:
    obj = org.org.get("Opportunity")
    count = api.get("/query", params={"q": "SELECT COUNT() FROM Opportunity"}).json()
    assert count == {"totalSize": len(org.truth_ids("Opportunity")), "done": True, "records": []}
    newest = api.get("/query", params={"q": "SELECT MAX(SystemModstamp) FROM Opportunity"}).json()
    last_live = max(i for i in range(obj.rows) if not obj.is_deleted(i))
    assert newest["records"][0]["expr0"] == obj.raw_value(obj.by_name["systemmodstamp"], last_live)
    page = api.get("/query", params={"q": "SELECT Id, Name FROM Account"}).json()
    assert page["done"] is False and len(page["records"]) == 2000
    ids = [r["Id"] for r in page["records"]]
    while not page["done"]:
        page = api.get(page["nextRecordsUrl"].replace(V, "")).json()
        ids += [r["Id"] for r in page["records"]]
    assert ids == org.truth_ids("Account")


def test_rest_records_carry_json_booleans_and_numbers(api: httpx.Client, org: Emulator) -> None:
    """As the REST API sends them: true/false, numbers, null; text for every other type."""
    obj = org.org.get("Account")
    page = api.get("/query", params={"q": "SELECT Id, IsDeleted, NumberOfEmployees, AnnualRevenue, Name FROM Account"})
    records = page.json()["records"]
    assert all(isinstance(r["IsDeleted"], bool) for r in records)
    assert {type(r["NumberOfEmployees"]) for r in records} <= {int, type(None)}
    assert {type(r["AnnualRevenue"]) for r in records} <= {float, type(None)}
    assert any(isinstance(r["AnnualRevenue"], float) for r in records) and any(r["Name"] for r in records)
    first = records[0]
    raw = obj.raw_value(obj.by_name["annualrevenue"], 0)
    assert first["AnnualRevenue"] == (None if raw is None else float(raw))


def test_a_query_job_goes_through_the_documented_states(api: httpx.Client, org: Emulator) -> None:
    """Create answers UploadComplete; polls then see InProgress (while it runs) and end at JobComplete."""
    org.fault(kind="slow_job", stage="poll", object="Lead", polls=2)
    created = api.post("/jobs/query", json={"operation": "query", "query": "SELECT Id FROM Lead"}).json()
    assert created["state"] == "UploadComplete"
    seen = [api.get(f"/jobs/query/{created['id']}").json()["state"] for _ in range(2)]
    deadline = time.monotonic() + 60  # after the slow polls the job ends when its thread has selected the rows
    while seen[-1] == "InProgress" and time.monotonic() < deadline:
        time.sleep(0.05)
        seen.append(api.get(f"/jobs/query/{created['id']}").json()["state"])
    assert seen[:2] == ["InProgress", "InProgress"] and seen[-1] == "JobComplete", seen


def test_a_third_party_client_works_unchanged(org: Emulator) -> None:
    """simple-salesforce's Bulk 2.0 query, pointed at the emulator, reads the same rows."""
    simple_salesforce = pytest.importorskip("simple_salesforce")
    import requests

    class PlainHttp(requests.adapters.HTTPAdapter):
        # simple-salesforce always builds https:// URLs; the emulator serves plain HTTP on loopback,
        # so this adapter (the only change to the client) sends those requests over http.
        def send(self, request, **kwargs):
            request.url = request.url.replace("https://", "http://", 1)
            return super().send(request, **kwargs)

    session = requests.Session()
    session.mount("https://", PlainHttp())
    access = token(org).json()["access_token"]
    sf = simple_salesforce.Salesforce(instance_url=org.url, session_id=access, version="62.0", session=session)
    assert sf.Account.describe()["name"] == "Account"
    got = []
    for chunk in sf.bulk2.Lead.query("SELECT Id, Name FROM Lead", max_records=700):
        got += [row["Id"] for row in csv.DictReader(io.StringIO(chunk, newline=""))]
    assert got == org.truth_ids("Lead")


def test_the_latency_proxy_charges_each_request_once(emulator: Emulator) -> None:
    """The production profile's bucket round trip (``latency_proxy``, used by bench/fixed_cost_bench.py): each
    request through it waits the set time once, and its answer is the server's own."""
    target = urlparse(emulator.url).port
    with latency_proxy(target, 0.2) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        started = time.monotonic()
        answers = [client.get("/services/data").status_code for _ in range(3)]  # one connection, kept alive
        took = time.monotonic() - started
    assert answers == [httpx.get(f"{emulator.url}/services/data").status_code] * 3
    # a floor only, no ceiling: a loaded machine may take longer
    assert took >= 0.6, f"three requests through the proxy took {took:.2f}s: each must wait its 0.2 s"
