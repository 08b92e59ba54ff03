"""Discovery in Dagster: the ``salesforce_discovery`` job refreshes the discovered catalog file from the org
(only what changed since the file's last discovery), and a weekly schedule runs it. The code location reads
the file when it loads, so a changed object list reaches the UI on the next code-location reload."""

import os

import dagster as dg

from ..catalog import DISCOVERED_ENV
from ..salesforce.discovery import refresh
from .resources import SalesforceResource

DISCOVERY_JOB = "salesforce_discovery"


class DiscoveryConfig(dg.Config):
    out: str = ""  # the discovered catalog file; empty: $SF_PIPELINE_DISCOVERED_CATALOG
    full: bool = False  # describe every object again (no If-Modified-Since)


@dg.op(description="Discover the org's objects into the discovered catalog file")
def refresh_discovered_catalog(
    context: dg.OpExecutionContext, config: DiscoveryConfig, salesforce: SalesforceResource
) -> dg.Output[None]:
    out = config.out or os.environ.get(DISCOVERED_ENV, "")
    if not out:
        raise dg.Failure(f"no discovered catalog file: set {DISCOVERED_ENV} for the code location, or config `out`")
    with salesforce.client() as client:
        discovery, stats = refresh(client, out, full=config.full)
    context.log.info(
        f"{len(discovery.loadable)} objects load, {len(discovery.skipped)} skipped; {stats.requests} API request(s); "
        "reload the code location to see a changed object list"
    )
    return dg.Output(
        None,
        metadata={
            "file": dg.MetadataValue.path(str(out)),
            "objects": len(discovery.objects),
            "loaded": len(discovery.loadable),
            "by_rest": sum(o.route == "rest" for o in discovery.loadable),
            "skipped": dg.MetadataValue.json({o.name: o.reason for o in discovery.skipped}),
            "api_requests": stats.requests,
            "describes_read": stats.described,
            "unchanged": stats.unchanged,
        },
    )


@dg.job(name=DISCOVERY_JOB, description="Refresh the discovered catalog from the org (describeGlobal, describes)")
def salesforce_discovery() -> None:
    refresh_discovered_catalog()


salesforce_weekly_discovery = dg.ScheduleDefinition(
    name="salesforce_weekly_discovery",
    job=salesforce_discovery,
    cron_schedule="0 5 * * 0",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Refreshes the discovered catalog weekly (a request or so when nothing changed)",
)
