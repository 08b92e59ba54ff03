"""The row policies as pure functions over Arrow batches, and the catalog settings that choose them."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from sf_pipeline.catalog import load_catalog
from sf_pipeline.datapath.row_policy import (
    RowPolicy,
    as_hashed,
    flag_deleted,
    hash_columns,
    keyed_hash,
    with_version,
)
from sf_pipeline.errors import CatalogError, SettingsError

KEY = b"k3y"


def test_a_keyed_hash_is_hmac_sha256_hex_and_the_same_everywhere() -> None:
    assert keyed_hash("ann@example.com", KEY) == hmac.new(KEY, b"ann@example.com", hashlib.sha256).hexdigest()
    assert keyed_hash("ann@example.com", KEY) != keyed_hash("ann@example.com", b"other key")
    assert keyed_hash("ann@example.com", KEY) != hashlib.sha256(b"ann@example.com").hexdigest(), "keyed, not bare"


def test_hashed_columns_keep_nulls_and_become_text() -> None:
    batch = pa.RecordBatch.from_pydict(
        {"Id": ["a", "b"], "Email": ["x@y.z", None], "Phone": pa.array([12, 34], pa.int64())}
    )
    out = hash_columns(batch, ("Email", "Phone"), KEY)
    assert out.column(0).to_pylist() == ["a", "b"]
    assert out.column(1).to_pylist() == [keyed_hash("x@y.z", KEY), None]
    assert out.column(2).to_pylist() == [keyed_hash("12", KEY), keyed_hash("34", KEY)]
    assert out.schema.field("Phone").type == pa.string()
    described = as_hashed({"name": "Email", "type": "email", "label": "Email"})
    assert (described["type"], described["length"], described["label"]) == ("string", 64, "Email (HMAC-SHA256, hex)")


def test_a_deleted_record_is_flagged_with_its_modstamp() -> None:
    stamp = pa.array([datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)], pa.timestamp("us", "UTC"))
    batch = pa.RecordBatch.from_pydict({"Id": ["a", "b"], "IsDeleted": [False, True], "SystemModstamp": stamp})
    out = flag_deleted(batch, "SystemModstamp")
    assert out.column("_sf_deleted").to_pylist() == [False, True]
    assert out.column("_sf_deleted_at").to_pylist() == [None, datetime(2026, 2, 1, tzinfo=UTC)]
    no_flag = flag_deleted(pa.RecordBatch.from_pydict({"Id": ["u"]}), None)  # User: no IsDeleted
    assert no_flag.column("_sf_deleted").to_pylist() == [False]
    assert no_flag.column("_sf_deleted_at").to_pylist() == [None]


def test_a_version_is_the_record_id_at_its_modstamp() -> None:
    stamp = pa.array(
        [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, 8, 30, tzinfo=UTC)], pa.timestamp("us", "UTC")
    )
    batch = pa.RecordBatch.from_pydict({"Id": ["a", "b"], "SystemModstamp": stamp})
    versions = with_version(batch, "Id", "SystemModstamp").column("_sf_version").to_pylist()
    assert versions[0].startswith("a@2026-01-01") and versions[1].startswith("b@2026-02-01 08:30")
    assert len(set(versions)) == 2


def catalog(tmp_path: Path, lead: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(f'defaults:\n  partition_start: "2024-01-01"\nobjects:\n  - name: Lead\n{lead}')
    return path


def test_the_catalog_chooses_the_policies_and_refuses_what_cannot_work(tmp_path: Path) -> None:
    entry = load_catalog(catalog(tmp_path, "    deletes: flag\n    hash_fields: [Email]\n")).get("Lead")
    assert (entry.deletes, entry.hard_deletes, entry.hash_fields) == ("flag", "flag", ("Email",))
    assert entry.inactive_column == "_sf_deleted_at"
    assert load_catalog(catalog(tmp_path, "    hard_deletes: flag\n")).get("Lead").inactive_column == (
        "_sf_hard_deleted_at"
    )
    assert load_catalog(catalog(tmp_path, "")).get("Lead").inactive_column is None
    history = load_catalog(catalog(tmp_path, "    history: true\n")).get("Lead")
    assert (history.history, history.hard_deletes, history.inactive_column) == (True, "flag", "_sf_valid_to")
    for bad, said in [
        ("    deletes: keep\n", "deletes must be one of"),
        ("    deletes: flag\n    hard_deletes: delete\n", "deletes: flag keeps hard-deleted rows too"),
        ("    hash_fields: [Id]\n", "hash_fields cannot hold Id"),
        ("    hash_fields: [SystemModstamp]\n", "hash_fields cannot hold SystemModstamp"),
        ("    hash_fields: Email\n", "hash_fields must be a list"),
        ("    history: yes please\n", "history must be true or false"),
        ("    history: true\n    deletes: flag\n", "history: true closes a deleted record's version"),
        ("    history: true\n    hard_deletes: delete\n", "history: true closes a deleted record's version"),
    ]:
        with pytest.raises(CatalogError, match=said):
            load_catalog(catalog(tmp_path, bad))


def test_a_policy_names_what_it_lacks() -> None:
    entry = load_catalog().get("Lead")
    import dataclasses

    hashed = dataclasses.replace(entry, hash_fields=("Email",))
    with pytest.raises(SettingsError, match=r"\[Lead\] hash_fields \['Email'\] need SF_PIPELINE_HASH_KEY"):
        RowPolicy.of(hashed, None, ["Id", "Email"])
    with pytest.raises(CatalogError, match=r"\[Lead\] hash_fields \['Email'\]: not fields the load reads"):
        RowPolicy.of(hashed, "key", ["Id", "Name"])
    policy = RowPolicy.of(hashed, "key", ["Id", "email", "SystemModstamp"])
    assert policy.hash_fields == ("email",) and "key" not in repr(policy)
