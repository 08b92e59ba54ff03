"""A local Salesforce org speaking the Bulk API 2.0 query protocol, for tests, benchmarks and the demo."""

from .faults import Fault
from .org import Org
from .server import EmulatorConfig, EmulatorServer, make_server

__all__ = ["EmulatorConfig", "EmulatorServer", "Fault", "Org", "make_server"]
