"""DAGSTER ON ONE HOST: the run launcher that dagster.yaml names (it records each run's process ids so
run monitoring can fail a run whose processes are gone). Loaded by the instance, never by the code location.
Imports nothing of ``sf_pipeline``: the launcher must load without the rest. ``LocalDagster`` (emulator,
webserver and daemon for the demo, tests and bench) lives in the testbed, ``sf_testbed.local_dagster``.
"""
