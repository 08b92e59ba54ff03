"""A batch run's describes, asked 25 to a Composite request against the emulator: one API call for 25 objects,
each describe handed out once and equal to the plain describe's fields, at most 24 held, and an object the
batch cannot serve (not one of the run's, refused by Salesforce) described alone, its error the plain one's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sf_pipeline.salesforce import SalesforceClient, SalesforceError
from sf_pipeline.salesforce.describes import BATCH
from sf_testbed.emulator import EmulatorConfig

from ..helpers import Emulator, running_emulator


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    config = EmulatorConfig(port=0, objects=60, scale=0.001, cache_dir=tmp_path_factory.mktemp("cache"))
    with running_emulator(config) as emulator:
        yield emulator


def requests(org: Emulator) -> dict[str, int]:
    """The API requests since the last reset, by kind: composite requests and plain describes."""
    stats = org.stats()
    return {
        "composite": sum(n for path, n in stats.items() if path.endswith("/composite")),
        "describe": sum(n for path, n in stats.items() if path.endswith("/describe")),
    }


def shape(describe: dict) -> list[tuple]:
    return [(f["name"], f["type"], f.get("calculated"), f.get("length")) for f in describe["fields"]]


def test_a_runs_objects_are_described_25_to_a_request(org: Emulator) -> None:
    with SalesforceClient(org.settings()) as client:
        names = sorted(o["name"] for o in client.sobjects() if o["queryable"])[:40]
        plain = {name: client.describe(name) for name in names}
        client.describe_ahead(names)
        org.reset_stats()
        calls = client.api_calls
        got = {name: client.describe(name) for name in names}
        assert requests(org) == {"composite": 2, "describe": 0}, "40 objects: two requests of up to 25"
        assert client.api_calls == calls + 2
        assert all(shape(got[name]) == shape(plain[name]) for name in names)
        assert not any("picklistValues" in f for name in names[1:BATCH] for f in got[name]["fields"]), "held lean"
        org.reset_stats()
        client.describe(names[3])  # handed out once: asked again, it is described again
        assert requests(org) == {"composite": 0, "describe": 1}


def test_at_most_24_describes_are_held_and_what_a_batch_cannot_serve_is_described_alone(org: Emulator) -> None:
    with SalesforceClient(org.settings()) as client:
        names = sorted(o["name"] for o in client.sobjects() if o["queryable"])[:40]
        client.describe_ahead([*names, "NoSuchObject__c"])
        org.reset_stats()
        client.describe(names[-1])  # out of order: asked with the first 24 waiting, which are held
        client.describe(names[30])  # nothing more is held: described on its own
        assert requests(org) == {"composite": 2, "describe": 0}
        held = client.describes_ahead._held  # noqa: SLF001 - the bound is the point of the test
        assert len(held) == BATCH - 1 and names[30] not in held
        client.describe("Account" if "Account" not in names else names[0])  # not waiting or held: a plain describe
        with pytest.raises(SalesforceError, match="NoSuchObject__c"):
            client.describe("NoSuchObject__c")  # refused in its batch, then described alone: the plain error
