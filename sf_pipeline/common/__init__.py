"""Leaves any package may import: the quote-aware CSV record scanner, fault points for tests, memory
measurement and the pod's memory limit with the sizes derived from it. May import ``errors`` only; never
Salesforce, dlt, pyarrow or dagster. Import the modules themselves (``from ..common.sizing import ...``)."""
