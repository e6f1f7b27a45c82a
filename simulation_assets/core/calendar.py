"""Calendar defaults every domain shares. Free of imports: the CLI prints them in its help without loading anything."""

# The first simulated day when nothing else is configured ($HOGFLIX_START_DATE overrides it).
DEFAULT_START_DATE = "2026-01-01"


def checked_start_date(value: str | None) -> str:
    """Return ``value`` (``$HOGFLIX_START_DATE`` as read by the caller) or the default first day; YYYY-MM-DD or ValueError."""
    import datetime as dt

    day = value or DEFAULT_START_DATE
    try:
        dt.date.fromisoformat(day)
    except ValueError as exc:
        raise ValueError(f"HOGFLIX_START_DATE must be YYYY-MM-DD, got {day!r}") from exc
    return day
