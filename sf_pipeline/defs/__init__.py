"""DAGSTER: the code location's definitions - resources, one partitioned asset per object with its checks,
jobs, sensors, schedules, discovery, the Id sweep and the formula refresh - thin glue over the plain data
path, assembled by ``definitions.py``. May import everything before it in the flow (``datapath`` and what it
imports); nothing imports it but ``definitions``, ``cli`` and tests.
"""
