"""A local Salesforce org speaking OAuth, REST and the Bulk API 2.0 query protocol, for tests, benchmarks
and the demo. Imports nothing else of sf_pipeline (it stands in for the org, so it shares no code with the
client it tests); never dlt, pyarrow or dagster."""

from .faults import Fault
from .org import Org
from .server import EmulatorConfig, EmulatorServer, make_server
from .state import PRODUCTION_LATENCY

__all__ = ["PRODUCTION_LATENCY", "EmulatorConfig", "EmulatorServer", "Fault", "Org", "make_server"]
