"""Pure, deterministic, vectorized simulation logic. No Dagster, no network, no files."""
