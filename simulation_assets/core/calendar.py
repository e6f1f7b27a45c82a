"""Calendar defaults every domain shares. Free of imports: the CLI prints them in its help without loading anything."""

# The first simulated day when nothing else is configured ($HOGFLIX_START_DATE overrides it).
DEFAULT_START_DATE = "2026-01-01"
