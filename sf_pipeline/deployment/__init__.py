"""DAGSTER ON ONE HOST: the run launcher that dagster.yaml names (it records each run's process ids so
run monitoring can fail a run whose processes are gone) and ``LocalDagster`` (emulator, webserver and daemon
for the demo, tests and bench). Never loaded by the code location. May import ``emulator``; nothing of
``defs`` or ``datapath``. Import the modules themselves: ``run_launcher`` must load without the rest.
"""
