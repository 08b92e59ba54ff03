"""Dagster resources: the org, the warehouse, and the load's settings, each the Dagster face of the settings
model it inherits (declared once, with its variables: ``OrgSettings``/``ExtractSettings``,
``WarehouseSettings``, ``LoadSettings``), plus what only a run has: one Salesforce login and one Snowflake
connection a run. A variable that is set becomes an ``EnvVar``, read when a run starts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from ..common.env_settings import EnvSettings
from ..datapath.settings import LoadSettings
from ..salesforce import SalesforceClient
from ..salesforce.settings import ExtractSettings, OrgSettings
from ..warehouse import RunColumnMaps, SnowflakeSettings, Warehouse, WarehouseConfigError
from ..warehouse.settings import WarehouseSettings


def run_objects(context: dg.InitResourceContext) -> list[str]:
    """The objects a run loads (its selected object assets), sorted by name: empty outside a run, or for a run
    of checks alone."""
    run = context.run
    if run is None or not run.asset_selection:
        return []
    return sorted(key.path[-1] for key in run.asset_selection if key.path[0] == "salesforce")


class SalesforceResource(dg.ConfigurableResource, OrgSettings, ExtractSettings):
    """How to reach the org (``OrgSettings``) and read it (``ExtractSettings``): ``login_url`` must be set (the
    demo sets it to its emulator). A run logs in once."""

    _shared: SalesforceClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # one login a run: every load, check and count of the run's objects shares this client (its session
        # renews itself when Salesforce expires it); Dagster closes it when the run ends
        self._shared = self._new_client()
        # a batch run's objects are described 25 to a request, as the first of each 25 loads
        self._shared.describe_ahead(run_objects(context))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    def _new_client(self) -> SalesforceClient:
        return SalesforceClient(self.salesforce_settings(), max_connections=max(self.download_concurrency or 0, 4) + 2)

    @contextlib.contextmanager
    def client(self) -> Iterator[SalesforceClient]:
        """The run's client (logged in once a run), or, outside a Dagster execution, one of its own."""
        if self._shared is not None:
            yield self._shared
            return
        with self._new_client() as client:
            yield client


def snowflake_resource(settings: SnowflakeSettings, schema: str) -> Any:
    """dagster-snowflake's resource on the warehouse's account: it runs the DDL and counts the pipeline owns,
    and dlt's loads share its connection (``snowflake_session``: the session dlt would set up itself)."""
    from dagster_snowflake import SnowflakeResource

    from ..warehouse.snowflake_session import SESSION_TIMEZONE

    settings.validate()
    return SnowflakeResource(
        account=settings.account,
        user=settings.user,
        password=settings.password,
        database=settings.database,
        schema=schema,
        role=settings.role,
        warehouse=settings.warehouse,
        private_key=settings.private_key,
        private_key_path=settings.private_key_path,
        private_key_password=settings.private_key_passphrase,
        autocommit=True,
        additional_snowflake_connection_args={**settings.endpoint_args(), "timezone": SESSION_TIMEZONE},
    )


class WarehouseResource(dg.ConfigurableResource, WarehouseSettings):
    """Where rows land and how they get there (``WarehouseSettings``); in a run, one Snowflake connection for
    every load, count, DDL and swap of the run's objects."""

    _run_connections: contextlib.ExitStack | None = PrivateAttr(default=None)
    _snowflake: Any = PrivateAttr(default=None)
    _column_maps: RunColumnMaps | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_connections = contextlib.ExitStack()
        if objects := run_objects(context):
            # the run's objects' column records are read once, when the first of them loads
            self._column_maps = RunColumnMaps(objects)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._run_connections is not None:
            self._run_connections.close()
        self._run_connections = self._snowflake = self._column_maps = None

    @contextlib.contextmanager
    def _snowflake_connection(self, settings: SnowflakeSettings) -> Iterator[Any]:
        """In a run, one Snowflake connection (one login) for every load, count, DDL and swap of the run's
        objects, closed when the run ends; outside a run, a connection of its own."""
        if self._run_connections is None:
            with snowflake_resource(settings, self.dataset).get_connection() as conn:
                yield conn
            return
        if self._snowflake is None:
            self._snowflake = self._run_connections.enter_context(
                snowflake_resource(settings, self.dataset).get_connection()
            )
        yield self._snowflake

    def warehouse(self) -> Warehouse:  # type: ignore[override]
        snowflake = self.snowflake_settings()
        try:
            return super().warehouse(lambda: self._snowflake_connection(snowflake), self._column_maps)
        except WarehouseConfigError as exc:
            raise dg.Failure(f"warehouse settings: {exc}") from None


class PipelineSettings(dg.ConfigurableResource, LoadSettings):
    """Splitting, working space and the memory a load sizes itself by (``LoadSettings``)."""


# The code location's resources, each the Dagster face of one settings model: `default_resources` sets each
# field whose variable is set with an `EnvVar` (read when a run starts); unset, a field keeps its default.
RESOURCES: dict[str, type[dg.ConfigurableResource]] = {
    "salesforce": SalesforceResource,
    "warehouse": WarehouseResource,
    "pipeline_settings": PipelineSettings,
}


def _is_int(annotation: Any) -> bool:
    return annotation is int or int in getattr(annotation, "__args__", ())


def resource_from_env(key: str) -> dg.ConfigurableResource:
    """The resource with an ``EnvVar`` for each of its variables that is set."""
    cls = RESOURCES[key]
    assert issubclass(cls, EnvSettings)
    values: dict[str, Any] = {}
    for name, var in cls.variables().items():
        if os.environ.get(var, "").strip():
            values[name] = dg.EnvVar.int(var) if _is_int(cls.model_fields[name].annotation) else dg.EnvVar(var)
    return cls(**values)


def destination_from_env() -> str:
    """The destination the code location loads into, for the asset's kinds (a label, read at import)."""
    return WarehouseSettings.from_env().destination


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {key: resource_from_env(key) for key in RESOURCES}
