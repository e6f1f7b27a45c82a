"""Dagster wiring only: partitions, assets, checks, schedules, sensors, jobs, one module per domain."""
