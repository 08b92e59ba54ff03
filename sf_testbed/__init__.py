"""What the demo, the tests and the benchmarks run the pipeline against, and never part of the product (the
code-location image holds ``sf_pipeline`` alone): ``emulator``, a Salesforce org speaking Bulk API 2.0 and
REST over HTTP, and ``local_dagster``, a Dagster webserver and daemon on a fresh ``DAGSTER_HOME``."""
