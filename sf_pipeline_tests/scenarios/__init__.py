"""End-to-end scenarios across the packages: every record, faults, fixed costs, org scale, policies, secrets, the UI."""
