"""Secrets never leave: a load configured the production way (environment variables read through EnvVar)
with known secret values, one run that succeeds and two that fail on a credential, and then every event
in Dagster's event log, every log line and everything printed is searched for the secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._serdes import serialize_value

from sf_pipeline.catalog import load_catalog
from sf_pipeline.defs.assets import asset_key, build_assets
from sf_pipeline.defs.resources import default_resources
from sf_testbed.emulator import EmulatorConfig, make_server

from ..servers import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Fakesnow

CLIENT_SECRET = "cs-4f9e2a7b-never-printed"
PASSWORD = "pw-8c1d3e5f-never-printed"
WRONG_PASSWORD = "pw-wrong-6a7b8c9d-never-printed"
SNOWFLAKE_PASSWORD = "snow-2b4d6f8a-never-printed"
WRONG_AZURE_KEY = "d3JvbmctYXp1cmUta2V5LW5ldmVyLXByaW50ZWQ=" * 2
HASH_KEY = "hk-5e7f9a1c-never-printed"


@pytest.fixture
def private_org(emulator_cache: Path) -> Iterator[str]:
    """An org of its own whose credentials are this test's secrets."""
    server = make_server(
        EmulatorConfig(
            port=0, rows={"Lead": 1_500}, cache_dir=emulator_cache, client_secret=CLIENT_SECRET, password=PASSWORD
        )
    )
    server.start_background()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()


def test_no_secret_in_events_logs_or_output(
    private_org: str,
    fakesnow_server: Fakesnow,
    azurite: Azurite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    azurite.service().create_container("secrets")
    env = {
        "SF_LOGIN_URL": private_org,
        "SF_CLIENT_SECRET": CLIENT_SECRET,
        "SF_USERNAME": "demo@example.com",
        "SF_PASSWORD": PASSWORD,
        "SF_PIPELINE_DESTINATION": "snowflake",
        "SF_PIPELINE_SNOWFLAKE_ACCOUNT": "secrets-test",
        "SF_PIPELINE_SNOWFLAKE_USER": "loader",
        "SF_PIPELINE_SNOWFLAKE_PASSWORD": SNOWFLAKE_PASSWORD,
        "SF_PIPELINE_SNOWFLAKE_DATABASE": "DB_SECRETS",
        "SF_PIPELINE_SNOWFLAKE_ENDPOINT": fakesnow_server.endpoint,
        "SF_PIPELINE_STAGING": "az://secrets/sf",
        "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT,
        "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY,
        "AZURE_STORAGE_BLOB_ENDPOINT": azurite.blob_endpoint,
        "SF_PIPELINE_WORK_DIR": str(tmp_path / "work"),
        "SF_PIPELINE_HASH_KEY": HASH_KEY,  # Lead's Email hashed (the catalog below)
        "SF_PIPELINE_CATALOG": str(tmp_path / "catalog.yaml"),
    }
    (tmp_path / "catalog.yaml").write_text(
        'defaults:\n  partition_start: "2024-01-01"\nobjects:\n  - name: Lead\n    hash_fields: [Email]\n'
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    lead = next(a for a in build_assets(load_catalog()) if asset_key("Lead") in a.keys)

    def run(**overrides: str) -> dg.ExecuteInProcessResult:
        for name, value in overrides.items():
            monkeypatch.setenv(name, value)
        try:
            with dg.instance_for_test() as instance:
                result = dg.materialize(
                    [lead],
                    partition_key="2025-06-01",
                    instance=instance,
                    resources=default_resources(),
                    raise_on_error=False,
                )
                events.append(serialize_value(list(instance.all_logs(result.run_id))))
        finally:
            for name in overrides:
                monkeypatch.setenv(name, env[name])
        return result

    events: list[str] = []
    assert run().success
    bad_password = run(SF_PASSWORD=WRONG_PASSWORD)
    bad_key = run(AZURE_STORAGE_ACCOUNT_KEY=WRONG_AZURE_KEY)
    assert not bad_password.success and not bad_key.success
    assert "authentication failure" in serialize_value(list(bad_password.all_events))

    printed = capfd.readouterr()
    everything = {
        "dagster event logs": "\n".join(events),
        "python logs": caplog.text,
        "stdout": printed.out,
        "stderr": printed.err,
    }
    assert everything["dagster event logs"] and everything["python logs"], "the places searched are not empty"
    secrets = {
        "client secret": CLIENT_SECRET,
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "snowflake password": SNOWFLAKE_PASSWORD,
        "azure key": AZURITE_KEY,
        "wrong azure key": WRONG_AZURE_KEY,
        "hash key": HASH_KEY,
    }
    leaks = [
        f"{what} in {where}" for where, text in everything.items() for what, secret in secrets.items() if secret in text
    ]
    leaks += [f"a SAS signature in {where}" for where, text in everything.items() if "sig=" in text]
    assert not leaks, leaks
