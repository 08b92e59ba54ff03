"""Shared fixtures: a real emulator over HTTP on loopback, clients with fast retries, Azurite and fakesnow,
and an environment free of the developer's own SF_* and AZURE_STORAGE_* variables."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sf_pipeline.salesforce import SalesforceClient
from sf_testbed.emulator import EmulatorConfig

from .helpers import TEST_ROWS, Emulator, running_emulator
from .servers import Azurite, Fakesnow

SCRUBBED_PREFIXES = ("SF_", "AZURE_STORAGE_", "DAGSTER_HOME")


@pytest.fixture(scope="session", autouse=True)
def clean_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test sees the settings of the shell that started pytest: each sets what it needs. The default
    work root (the temp folder's sf_pipeline/, with its per-object locks) is this session's own, so two
    test runs on one machine never share locks or leftovers."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(SCRUBBED_PREFIXES):
                mp.delenv(name)
        mp.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("tmp")))
        yield


@pytest.fixture(scope="session")
def emulator_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator-cache")


@pytest.fixture(scope="session")
def emulator(emulator_cache: Path) -> Iterator[Emulator]:
    with running_emulator(
        EmulatorConfig(port=0, rows=TEST_ROWS, cache_dir=emulator_cache, default_page_records=5_000)
    ) as org:
        yield org


@pytest.fixture
def org(emulator: Emulator) -> Iterator[Emulator]:
    """The emulator with no faults, record changes or API usage left over from another test."""
    emulator.clear_faults()
    yield emulator
    emulator.clear_faults()
    emulator.reset_records()
    emulator.set_api_usage(used=0, limit=100_000)
    emulator.set_bulk_jobs(used=0)


@pytest.fixture
def client(org: Emulator) -> Iterator[SalesforceClient]:
    with SalesforceClient(org.settings()) as c:
        yield c


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    from .servers import run_azurite

    with run_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="session")
def fakesnow_server(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[Fakesnow]:
    from .servers import run_fakesnow

    with run_fakesnow(tmp_path_factory.mktemp("fakesnow"), azurite.connection_string()) as server:
        yield server
