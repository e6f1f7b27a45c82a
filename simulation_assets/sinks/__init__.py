"""Where data goes or comes from: Dagster resources with an embedded and a real implementation."""
