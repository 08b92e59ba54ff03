"""The package layout is the architecture: each package imports only those before it in the flow, and the
plain-Python parts never load Dagster. Read statically from every import statement (lazy ones included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "sf_pipeline"

# What each part of sf_pipeline may import of sf_pipeline (besides itself), in the flow's order.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "common": {"errors"},
    "salesforce": {"errors", "common"},
    "warehouse": {"errors", "common", "salesforce"},
    "catalog": {"errors", "common", "salesforce"},
    "datapath": {"errors", "common", "salesforce", "warehouse", "catalog"},
    "defs": {"errors", "common", "salesforce", "warehouse", "catalog", "datapath"},
    "definitions": {"catalog", "defs"},
    "deployment": set(),
    "cli": {"errors", "common", "salesforce", "warehouse", "catalog", "datapath", "defs", "deployment"},
}
# Third-party packages a part must never import.
NEVER: dict[str, set[str]] = {
    "errors": {"dagster", "dlt", "pyarrow", "duckdb", "httpx"},
    "common": {"dagster", "dlt", "duckdb", "httpx"},  # memory.lean_arrow_allocator tunes pyarrow, lazily
    "salesforce": {"dagster", "dlt", "pyarrow", "duckdb"},
    "warehouse": {"dagster"},
    "catalog": {"dagster", "dlt", "pyarrow"},
    "datapath": {"dagster", "dagster_dlt"},
}
# the testbed (emulator, LocalDagster) is not in the code-location image: only the commands that run it (cli:
# demo, emulator; the settings table lists its variable where it is installed) may import it
NEVER = {part: NEVER.get(part, set()) | {"sf_testbed"} for part in ALLOWED if part != "cli"}
TESTBED = Path(__file__).parents[1] / "sf_testbed"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module a file imports, relative imports resolved."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts[:-1]  # a module's package, or the package an __init__ opens
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module or "")
    return names


def part_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_every_file_belongs_to_a_known_part() -> None:
    parts = {part_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert parts == set(ALLOWED), "a new top-level module or package needs its place in ALLOWED"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path: Path) -> None:
    part = part_of(path)
    if part == "__init__":
        return
    wrong = []
    for name in imported_modules(path):
        top, _, rest = name.partition(".")
        if top == "sf_pipeline":
            other = rest.split(".")[0]
            if other and other != part and other not in ALLOWED[part]:
                wrong.append(name)
        elif top in NEVER.get(part, set()):
            wrong.append(name)
    assert not wrong, f"{path.relative_to(PACKAGE)} ({part}) imports {sorted(wrong)} against the flow"


@pytest.mark.parametrize("path", sorted(TESTBED.rglob("*.py")), ids=lambda p: str(p.relative_to(TESTBED)))
def test_the_testbed_imports_nothing_of_the_product(path: Path) -> None:
    """The emulator and LocalDagster stand apart: an org and a stack, whatever the pipeline's code."""
    wrong = [name for name in imported_modules(path) if name.split(".")[0] == "sf_pipeline"]
    assert not wrong, f"{path.relative_to(TESTBED)} imports {sorted(wrong)}"


def test_the_code_location_image_holds_no_testbed() -> None:
    dockerfile = (PACKAGE.parent / "deploy" / "Dockerfile").read_text()
    assert "COPY sf_pipeline ./sf_pipeline" in dockerfile and "sf_testbed" not in dockerfile


def loaded_after(imports: str, packages: set[str]) -> list[str]:
    """Which of ``packages`` a fresh interpreter has loaded after ``import <imports>``."""
    code = f"import sys, {imports}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return sorted(set(out.split()) & packages)


def test_the_data_path_runs_without_dagster() -> None:
    assert loaded_after("sf_pipeline.datapath.sync, sf_pipeline.datapath.reconcile", {"dagster"}) == []


def test_the_commands_that_load_read_their_settings_without_dagster() -> None:
    """`sf-pipeline sync`, `sweep`, `load`, `discover` and `check-connections` read the settings models the
    resources inherit, not the resources: in a small pod, Dagster's ~60 MB of imports is memory a load lacks."""
    imports = "sf_pipeline.datapath.configured, sf_pipeline.datapath.settings, sf_pipeline.warehouse.settings"
    assert loaded_after(imports, {"dagster"}) == []
    main = (PACKAGE / "cli" / "main.py").read_text()
    for command in ("sync", "sweep", "load", "discover", "check_connections"):
        body = main.split(f"def cmd_{command}(", 1)[1].split("\ndef ", 1)[0]
        assert "dagster" not in body and "defs." not in body, f"cmd_{command} imports Dagster or its resources"


def test_every_package_says_what_it_owns_and_may_import() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc) > 60, f"{init.relative_to(PACKAGE)} needs a docstring saying what the package owns"
        assert "import" in doc.lower(), f"{init.relative_to(PACKAGE)}: say what it may import"


def test_the_splitter_loads_neither_dlt_nor_pyarrow() -> None:
    """``sf-pipeline split`` pays for what it uses: the package's names resolve on first use."""
    assert loaded_after("sf_pipeline.datapath.split", {"dlt", "pyarrow"}) == []
