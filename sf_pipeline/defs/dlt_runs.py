"""dagster-dlt at the edge of the data path: a ``DagsterDltTranslator`` that gives each object's asset its
spec, and a chunk runner that sends each chunk's freshly constructed pipeline through
``DagsterDltResource.run``, merging what it reports across chunks into the run's one materialization.

The loader calls the runner like its plain one (``load.ChunkRunner``) and stays free of Dagster."""

from typing import Any

import dagster as dg
import dlt
from dagster_dlt import DagsterDltResource, DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData

from ..catalog import CatalogObject
from ..warehouse.naming import table_name


class ObjectTranslator(DagsterDltTranslator):
    """One catalog object's dlt resource (its table) is the asset ``salesforce/<Object>``: no upstream, our group,
    kinds, owners and tags (dagster-dlt's defaults would be ``dlt_<source>_<resource>`` with a phantom dep)."""

    def __init__(self, key: dg.AssetKey, entry: CatalogObject, group: str, description: str, kinds: set[str]) -> None:
        self.key, self.entry, self.group, self.description, self.kinds = key, entry, group, description, kinds

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        return (
            super()
            .get_asset_spec(data)
            .replace_attributes(
                key=self.key,
                deps=[],
                group_name=self.group,
                description=self.description,
                kinds=self.kinds,
                owners=list(self.entry.owners),
                tags={**self.entry.tags, "salesforce/object": self.entry.name},
            )
        )

    def spec(self) -> dg.AssetSpec:
        """The asset's spec at import time: no pipeline is constructed for it."""
        resource = dlt.resource([], name=table_name(self.entry.name))
        return self.get_asset_spec(DltResourceTranslatorData(resource=resource, pipeline=None))


class DagsterDltChunks:
    """A ``load.ChunkRunner`` that runs each chunk through ``DagsterDltResource.run`` and keeps what it reports:
    Dagster takes one materialization per asset and step, so the per-chunk events are merged, not yielded."""

    def __init__(self, context: dg.AssetExecutionContext, translator: ObjectTranslator) -> None:
        self.context, self.translator = context, translator
        self.resource = DagsterDltResource()
        self.rows_loaded = 0
        self.metadata: dict[str, Any] = {}

    def __call__(self, pipeline: Any, resource: Any, loader_file_format: str) -> Any:
        # a one-resource source named after the pipeline, so dlt keeps the schema name it always had
        source = dlt.source(name=pipeline.pipeline_name)(lambda: resource)()
        for event in self.resource.run(
            context=self.context,
            dlt_source=source,
            dlt_pipeline=pipeline,
            dagster_dlt_translator=self.translator,
            loader_file_format=loader_file_format,
        ):
            metadata = dict(event.metadata or {})
            rows = metadata.pop("rows_loaded", None)
            self.rows_loaded += int(getattr(rows, "value", rows) or 0)
            metadata.pop("jobs", None)  # executor-local file paths of one chunk: noise in the run's record
            self.metadata.update({k: v for k, v in metadata.items() if v is not None})
        return pipeline.last_trace.last_load_info

    def merged(self, column_descriptions: dict[str, str]) -> dict[str, Any]:
        """dagster-dlt's metadata across the chunks: the last chunk's schema and storage kind (each chunk's
        schema is the table's as loaded), rows summed, columns described from Salesforce labels and types."""
        out = {k: v for k, v in self.metadata.items() if k not in ("dagster/column_schema", "first_run")}
        out["dlt_rows_loaded"] = dg.MetadataValue.int(self.rows_loaded)
        schema = self.metadata.get("dagster/column_schema")
        columns = getattr(getattr(schema, "value", schema), "columns", None)
        if columns:
            out["dagster/column_schema"] = dg.TableSchema(
                columns=[
                    dg.TableColumn(c.name, c.type, description=column_descriptions.get(c.name, c.description))
                    for c in columns
                ]
            )
        return out
