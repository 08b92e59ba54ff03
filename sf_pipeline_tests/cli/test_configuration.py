"""docs/configuration.md cannot drift: its variable tables are what the code's settings homes generate, every
variable the code reads is listed, every catalog key is documented, and a set variable reaches its resource."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

from sf_pipeline.catalog import OBJECT_SETTINGS
from sf_pipeline.cli.main import main
from sf_pipeline.cli.settings import BEGIN, END, markdown, settings
from sf_pipeline.defs.resources import RESOURCES, default_resources

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
VARIABLE = re.compile(r"[\"'`]((?:SF|AZURE_STORAGE)_[A-Z0-9_]*[A-Z0-9])[\"'`]")


def test_the_variable_tables_are_what_the_code_generates() -> None:
    text = DOC.read_text()
    generated = BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END
    assert generated == markdown(), "run: sf-pipeline settings --update docs/configuration.md"


def test_every_variable_the_code_reads_is_listed() -> None:
    listed = {s.variable for s in settings()}
    read = {m for path in (ROOT / "sf_pipeline").rglob("*.py") for m in VARIABLE.findall(path.read_text())}
    assert read - listed == set(), "variables read in the code but missing from sf_pipeline/cli/settings.py"
    assert len(listed) == len(list(settings())), "a variable is listed twice"


def test_every_catalog_key_is_documented() -> None:
    section = DOC.read_text().split("## The catalog file", 1)[1]
    documented = set(re.findall(r"^\| `(\w+)`", section, flags=re.M))
    assert documented >= OBJECT_SETTINGS


@pytest.mark.parametrize(
    ("variable", "value", "resource", "field", "expected"),
    [
        ("SF_PIPELINE_CHUNK_TARGET_MB", "96", "pipeline_settings", "chunk_target_mb", 96),
        ("SF_PIPELINE_DOWNLOAD_CONCURRENCY", "3", "salesforce", "download_concurrency", 3),
        ("SF_PIPELINE_DUCKDB", "/tmp/elsewhere.duckdb", "warehouse", "duckdb_path", "/tmp/elsewhere.duckdb"),
        ("SF_PIPELINE_SNOWFLAKE_ROLE", "LOADER", "warehouse", "snowflake_role", "LOADER"),
        ("SF_API_VERSION", "61.0", "salesforce", "api_version", "61.0"),
    ],
)
def test_a_set_variable_reaches_its_resource(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, resource: str, field: str, expected: object
) -> None:
    assert RESOURCES[resource].variables()[field] == variable
    monkeypatch.setenv("SF_LOGIN_URL", "http://127.0.0.1:9")  # required; never dialled: no request is made
    monkeypatch.setenv(variable, value)
    with dg.build_resources(default_resources()) as resources:
        assert getattr(getattr(resources, resource), field) == expected
    monkeypatch.delenv(variable)
    with dg.build_resources(default_resources()) as resources:
        assert getattr(getattr(resources, resource), field) == RESOURCES[resource].model_fields[field].default


def test_settings_update_rewrites_only_the_generated_part(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    doc = tmp_path / "configuration.md"
    doc.write_text(f"# before\n\n{BEGIN}\nstale\n{END}\n\nafter\n")
    assert main(["settings", "--update", str(doc)]) == 0
    assert doc.read_text() == f"# before\n\n{markdown()}\n\nafter\n"
    doc.write_text("no markers")
    assert main(["settings", "--update", str(doc)]) == 1
    assert "has no generated section" in capsys.readouterr().err


def test_the_readme_points_at_every_document_and_each_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"\b(docs/[a-z_]+\.md|bench/README\.md)", readme))
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= named
    assert all((ROOT / name).exists() for name in named), sorted(n for n in named if not (ROOT / n).exists())
    for path in re.findall(r"`(sf_pipeline/[\w/]+\.(?:py|yaml))`", readme):
        assert (ROOT / path).exists(), f"README names {path}, which does not exist"


def test_the_command_line_reads_the_same_settings_without_dagster(tmp_path: Path) -> None:
    """The settings models the resources inherit are read from the environment by the command line with no
    Dagster import, and a bad value is refused naming its variable."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from sf_pipeline.datapath.configured import PlainOrg\n"
        "from sf_pipeline.datapath.settings import LoadSettings\n"
        "from sf_pipeline.warehouse.settings import WarehouseSettings\n"
        "org, load, wh = PlainOrg.from_env(), LoadSettings.from_env(), WarehouseSettings.from_env()\n"
        "print(org.org.api_version, org.extract.download_concurrency, load.chunk_target_mb, wh.dataset,"
        " 'dagster' in sys.modules)\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "SF_API_VERSION": "61.0",
        "SF_PIPELINE_DOWNLOAD_CONCURRENCY": "3",
        "SF_PIPELINE_CHUNK_TARGET_MB": "96",
        "SF_PIPELINE_DATASET": "crm",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["61.0", "3", "96", "crm", "False"]
    env["SF_PIPELINE_CHUNK_TARGET_MB"] = "96MB"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "SF_PIPELINE_CHUNK_TARGET_MB" in bad.stderr and "'96MB'" in bad.stderr


def test_no_secret_setting_shows_in_a_repr() -> None:
    """A settings model or resource printed (a log line, a traceback's locals) shows no secret value."""
    from sf_pipeline.datapath.settings import LoadSettings
    from sf_pipeline.defs.resources import PipelineSettings, SalesforceResource, WarehouseResource
    from sf_pipeline.salesforce.settings import OrgSettings, SalesforceSettings
    from sf_pipeline.warehouse.settings import WarehouseSettings

    secrets = {
        "client_secret": "s-cs",
        "password": "s-pw",
        "refresh_token": "s-rt",
        "access_token": "s-at",
    }
    warehouse = {
        "snowflake_password": "s-sfpw",
        "snowflake_private_key": "s-pk",
        "snowflake_private_key_passphrase": "s-pp",
        "azure_account_key": "s-ak",
        "azure_sas_token": "s-sas",
    }
    shown = [
        repr(OrgSettings(**secrets)),
        repr(SalesforceSettings(login_url="http://x", **secrets)),
        repr(SalesforceResource(login_url="http://x", **secrets)),
        repr(WarehouseSettings(**warehouse)),
        repr(WarehouseResource(**warehouse)),
        repr(LoadSettings(hash_key="s-hk")),
        repr(PipelineSettings(hash_key="s-hk")),
    ]
    leaked = [text for text in shown if "s-" in text.replace("salesforce", "")]
    assert not leaked, leaked
