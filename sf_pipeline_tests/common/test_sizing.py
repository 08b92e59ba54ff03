"""The pipeline sizes itself from the memory its cgroup allows: the limit is read for cgroup v2 (on a fake
cgroup tree: this machine mounts v1) and v1 (a fake tree, and a real child cgroup the test makes), the
sizes follow it, an explicit setting wins, and a real load inside a small cgroup passes and says what it
found."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from sf_pipeline.common.sizing import (
    CHUNK_MIN_MB,
    DUCKDB_MIN_MB,
    MemoryLimit,
    MiB,
    SizeSettings,
    cgroup_memory_limit,
    find_memory_limit,
    plan_sizes,
)
from sf_pipeline.errors import SettingsError

from ..helpers import Emulator

pytestmark = pytest.mark.e2e  # a Dagster instance with its daemon, processes or a pod: make test-fast skips it

V1_ROOT = Path("/sys/fs/cgroup/memory")


def fake_proc(tmp_path: Path, cgroup: str, mounts: list[str]) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text("\n".join(mounts) + "\n")
    return proc


def v2_tree(tmp_path: Path, limits: dict[str, str]) -> Path:
    """A cgroup v2 hierarchy mounted at <tmp>/cgroup, the process in /kubepods/pod1/ctr."""
    root = tmp_path / "cgroup"
    for group, value in limits.items():
        (root / group).mkdir(parents=True, exist_ok=True)
        (root / group / "memory.max").write_text(value + "\n")
    mount = f"30 23 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw"
    return fake_proc(tmp_path, "0::/kubepods/pod1/ctr\n", ["22 1 0:21 / / rw - ext4 /dev/vda rw", mount])


def test_cgroup_v2_limit_is_the_tightest_along_the_processs_path(tmp_path: Path) -> None:
    # the container's own group says "max"; the pod's group above it holds the limit, as on Kubernetes
    proc = v2_tree(
        tmp_path, {"": "max", "kubepods": "max", "kubepods/pod1": str(384 * MiB), "kubepods/pod1/ctr": "max"}
    )
    limit = cgroup_memory_limit(proc)
    assert limit is not None and limit.bytes == 384 * MiB
    assert limit.source == f"cgroup v2 {tmp_path / 'cgroup' / 'kubepods' / 'pod1' / 'memory.max'}"


def test_cgroup_v2_without_a_limit_falls_back_to_the_machine(tmp_path: Path) -> None:
    proc = v2_tree(tmp_path, {"": "max", "kubepods/pod1/ctr": "max"})
    assert cgroup_memory_limit(proc) is None
    limit = find_memory_limit(None, proc)
    assert "machine's RAM" in limit.source and limit.bytes > 1024 * MiB


def test_cgroup_v1_is_read_on_a_hybrid_host_and_a_setting_wins(tmp_path: Path) -> None:
    root = tmp_path / "memory"
    (root / "pods" / "x").mkdir(parents=True)
    (root / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    (root / "pods" / "memory.limit_in_bytes").write_text(str(320 * MiB))
    (root / "pods" / "x" / "memory.limit_in_bytes").write_text(str(2048 * MiB))
    proc = fake_proc(
        tmp_path,
        "5:memory:/pods/x\n4:cpu,cpuacct:/pods/x\n0::/\n",
        [
            f"35 31 0:32 / {root} rw,relatime - cgroup cgroup rw,memory",
            f"41 31 0:38 / {tmp_path / 'unified'} rw,relatime - cgroup2 cgroup2 rw",
        ],
    )
    limit = cgroup_memory_limit(proc)
    assert limit is not None and limit.bytes == 320 * MiB and limit.source.startswith("cgroup v1 ")
    assert find_memory_limit(1000, proc) == MemoryLimit(1000 * MiB, "SF_PIPELINE_MEMORY_LIMIT_MB")


def test_sizes_follow_the_limit_and_explicit_settings_win() -> None:
    in_use = 100 * MiB
    small = plan_sizes(MemoryLimit(320 * MiB, "test"), in_use, cpus=2)
    large = plan_sizes(MemoryLimit(2048 * MiB, "test"), in_use, cpus=2)
    cap = {s: int(s.duckdb_memory_limit.removesuffix("MB")) for s in (small, large)}
    # what the load may hold beyond what the process already has stays inside the limit
    assert small.in_use_mb + cap[small] + small.read_block * (small.read_ahead + 2) / MiB < 320 * 0.85
    assert cap[small] < cap[large] and small.chunk_bytes < large.chunk_bytes
    assert (small.duckdb_threads, small.read_ahead, small.pages_in_flight) == (1, 1, 2)
    assert (large.duckdb_threads, large.read_ahead, large.pages_in_flight) == (2, 2, 4)
    assert small.read_block < large.read_block and not small.explicit
    given = SizeSettings(duckdb_memory_limit="300MB", chunk_bytes=8 * MiB, download_concurrency=6)
    chosen = plan_sizes(MemoryLimit(320 * MiB, "test"), in_use, 2, given)
    assert (chosen.duckdb_memory_limit, chosen.chunk_bytes, chosen.pages_in_flight) == ("300MB", 8 * MiB, 6)
    assert set(chosen.explicit) == {"duckdb_memory_limit", "chunk_bytes", "pages_in_flight"}
    assert "set explicitly: duckdb_memory_limit, chunk_bytes, pages_in_flight" in chosen.describe()
    # a process that already holds more than its limit still gets the floor, never a negative size
    starved = plan_sizes(MemoryLimit(128 * MiB, "test"), 200 * MiB, 2)
    assert starved.spare_mb == 0 and starved.duckdb_memory_limit == "48MB"


def test_a_bad_size_setting_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from sf_pipeline.datapath.settings import LoadSettings
    from sf_pipeline.salesforce.settings import ExtractSettings
    from sf_pipeline.warehouse.settings import WarehouseSettings

    monkeypatch.setenv("SF_PIPELINE_MEMORY_LIMIT_MB", "4GB")
    with pytest.raises(SettingsError, match="SF_PIPELINE_MEMORY_LIMIT_MB: .*integer.*, got '4GB'"):
        LoadSettings.from_env()
    monkeypatch.setenv("SF_PIPELINE_MEMORY_LIMIT_MB", "512")
    monkeypatch.setenv("SF_PIPELINE_CHUNK_TARGET_MB", "64")
    given = LoadSettings.from_env().size_settings(WarehouseSettings.from_env(), ExtractSettings.from_env())
    assert given == SizeSettings(memory_limit_mb=512, chunk_bytes=64 * MiB)


DESCRIBE = [
    {"name": "Id", "type": "id"},
    {"name": "Name", "type": "string"},
    {"name": "Amount__c", "type": "currency", "precision": 16, "scale": 2},
    {"name": "CreatedDate", "type": "datetime"},
    {"name": "Notes__c", "type": "textarea"},
]


def write_csv(path: Path, rows: int) -> None:
    """~1 KB Salesforce-style rows: quoted values, a comma, doubled quotes and a line break inside."""
    note = '"Line one, with a comma and ""quotes""\r\nline two ' + "x" * 900 + '"'
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write('"Id","Name","Amount__c","CreatedDate","Notes__c"\r\n')
        for start in range(0, rows, 10_000):
            f.write(
                "".join(
                    f'"001{i:015d}","Name {i}","{i % 100000}.25","2024-05-01T10:00:00.000Z",{note}\r\n'
                    for i in range(start, min(rows, start + 10_000))
                )
            )


@pytest.mark.skipif(os.geteuid() != 0 or not (V1_ROOT / "cgroup.procs").exists(), reason="needs root and cgroup v1")
def test_a_load_inside_a_small_cgroup_sizes_itself_and_passes(tmp_path: Path) -> None:
    """`sf-pipeline load` of ~180 MB in a 256 MiB cgroup this test makes, no size setting given: over the limit
    the kernel would SIGKILL it (137). It finds the limit, logs it and the sizes it chose, and loads every row."""
    src, db = tmp_path / "Thing.csv", tmp_path / "pod.duckdb"
    write_csv(src, 180_000)
    (tmp_path / "describe.json").write_text(json.dumps({"fields": DESCRIBE}))
    group = V1_ROOT / f"sf_pipeline_test_{os.getpid()}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(256 * MiB))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SF_PIPELINE_")}
        args = ["load", str(src), "--object", "Thing__c", "--describe", str(tmp_path / "describe.json")]
        proc = subprocess.run(
            [sys.executable, "-m", "sf_pipeline.cli", "--log-level", "INFO", *args, "--duckdb", str(db)],
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
        )
        peak = int((group / "memory.max_usage_in_bytes").read_text())
    finally:
        group.rmdir()
    assert proc.returncode == 0, (
        f"exit {proc.returncode} (137: OOM-killed), cgroup peak {peak / MiB:.0f} MiB\n{proc.stderr}"
    )
    sized = next(line for line in proc.stderr.splitlines() if "sf_pipeline.common.sizing" in line)
    assert f"memory limit 256 MiB (cgroup v1 {group}/memory.limit_in_bytes)" in sized, sized
    assert "1 thread(s)" in sized and "1024 KiB CSV blocks 1 ahead" in sized, sized
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*), sum(amount__c) FROM salesforce.thing_c").fetchone() == (
            180_000,
            Decimal(sum(i % 100000 for i in range(180_000))) + Decimal("0.25") * 180_000,
        )


def test_every_load_logs_the_limit_it_found(org: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sf_pipeline.catalog import load_catalog
    from sf_pipeline.datapath.sync import sync_object
    from sf_pipeline.salesforce import SalesforceClient
    from sf_pipeline.warehouse import Warehouse

    caplog.set_level(logging.INFO, logger="sf_pipeline")
    with SalesforceClient(org.settings()) as client:
        entry = load_catalog().get("User")
        sync_object(client, entry, Warehouse(duckdb_path=tmp_path / "sf.duckdb"), full_refresh=True, work_dir=tmp_path)
        sync_object(
            client,
            entry,
            Warehouse(duckdb_path=tmp_path / "sf.duckdb", duckdb_memory_limit="64MB"),
            full_refresh=True,
            work_dir=tmp_path,
            memory_limit_mb=4000,
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "sf_pipeline.common.sizing"]
    assert len(lines) == 2 and all(line.startswith("[User] memory limit ") for line in lines), lines
    assert "(SF_PIPELINE_MEMORY_LIMIT_MB)" in lines[1] and "DuckDB 64MB" in lines[1], lines[1]
    assert "set explicitly: duckdb_memory_limit" in lines[1]


def _sync_in_cgroup(limit_mb: int, url: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    """`sf-pipeline sync Account --full-refresh` in a v1 memory cgroup of ``limit_mb`` this test makes: its
    result and the cgroup's peak (MiB)."""
    group = V1_ROOT / f"sf_pipeline_sync_{os.getpid()}_{limit_mb}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit_mb * MiB))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_PIPELINE_", "SF_"))}
        env |= {
            "SF_LOGIN_URL": url,
            "SF_PIPELINE_DUCKDB": str(tmp_path / f"pod_{limit_mb}.duckdb"),
            "SF_PIPELINE_WORK_DIR": str(tmp_path / f"work_{limit_mb}"),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "sf_pipeline.cli", "--log-level", "INFO", "sync", "Account", "--full-refresh"],
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
        )
        return proc, int((group / "memory.max_usage_in_bytes").read_text()) / MiB
    finally:
        group.rmdir()


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0 or not (V1_ROOT / "cgroup.procs").exists(), reason="needs root and cgroup v1")
def test_a_sync_fits_a_210_mib_pod_and_a_smaller_pod_fails_by_name(emulator_cache: Path, tmp_path: Path) -> None:
    """200,000 Account records from the org (HTTP to the emulator) into DuckDB by `sf-pipeline sync` in a
    210 MiB pod (issue 32: 1.5x a peer connector's peak; it was SIGKILLed there while the command imported
    Dagster). In a 150 MiB pod the same command fails at once naming the minimum, never exit 137."""
    from sf_testbed.emulator import EmulatorConfig

    from ..helpers import running_emulator

    config = EmulatorConfig(port=0, rows={"Account": 200_000}, cache_dir=emulator_cache)
    with running_emulator(config) as org:
        fits, peak = _sync_in_cgroup(210, org.url, tmp_path)
        small, _ = _sync_in_cgroup(150, org.url, tmp_path)
    assert fits.returncode == 0, f"exit {fits.returncode} (137: OOM-killed), peak {peak:.0f} MiB\n{fits.stderr[-2000:]}"
    result = json.loads(fits.stdout.strip().splitlines()[-1])
    assert result["records_read"] == 200_000 and result["reconciled"], result
    with duckdb.connect(str(tmp_path / "pod_210.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM salesforce.account").fetchone() == (result["rows_written"],)
    assert small.returncode == 1, f"exit {small.returncode} (137: OOM-killed)\n{small.stderr[-2000:]}"
    assert "[Account] memory limit 150 MiB" in small.stderr and "give the pod at least" in small.stderr, small.stderr
    assert not (tmp_path / "pod_150.duckdb").exists() or "account" not in str(
        duckdb.connect(str(tmp_path / "pod_150.duckdb"), read_only=True).execute("SHOW ALL TABLES").fetchall()
    )


def test_work_outside_a_load_plans_no_sizes_of_its_own(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One sizing path: a load is sized as it starts (``size_load``, logged) and passes its sizes down; what runs
    outside a load without them (a count, a library call with default options) takes the smallest sizes a load
    would, whatever the machine, rather than a second plan of its own."""
    from sf_pipeline.common.sizing import UNSIZED
    from sf_pipeline.datapath.split import SplitOptions
    from sf_pipeline.salesforce import ExtractOptions
    from sf_pipeline.warehouse import Warehouse

    caplog.set_level(logging.INFO, logger="sf_pipeline")
    warehouse = Warehouse(duckdb_path=tmp_path / "sf.duckdb")
    with warehouse.connection() as conn:
        cap = conn.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    with duckdb.connect(config={"memory_limit": UNSIZED.duckdb_memory_limit}) as con:
        assert cap == con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert UNSIZED.duckdb_memory_limit == f"{DUCKDB_MIN_MB}MB", "the smallest cap a load takes"
    assert SplitOptions().target == UNSIZED.chunk_bytes == CHUNK_MIN_MB * MiB
    assert (
        ExtractOptions().pages_in_flight
        == UNSIZED.pages_in_flight
        == plan_sizes(MemoryLimit(200 * MiB, "test"), 0, 1).pages_in_flight
    )
    assert not [r for r in caplog.records if r.name == "sf_pipeline.common.sizing"], "no load, no sizing"
