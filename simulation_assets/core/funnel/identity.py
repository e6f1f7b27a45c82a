"""Identity stitching (tracking plan section 4): anonymous ``distinct_id`` -> ``user_id`` on login.

Browsers track a user anonymously; ``login_success`` carries both ids and is the
point where the two are merged. Servers and workers only know the ``user_id``.
``stitch`` gives every event a ``person_id`` so that one person's anonymous and
identified events count once.
"""

from __future__ import annotations

import polars as pl
from pydantic import BaseModel


def identity_map(events: pl.DataFrame) -> pl.DataFrame:
    """Return ``distinct_id -> user_id`` pairs from ``login_success`` events (first login wins)."""
    return (
        events.filter((pl.col("event") == "login_success") & pl.col("user_id").is_not_null())
        .sort("timestamp")
        .group_by("distinct_id", maintain_order=True)
        .agg(pl.col("user_id").first().alias("stitched_user_id"))
    )


def stitch(events: pl.DataFrame) -> pl.DataFrame:
    """Return ``events`` with ``person_id``: the user id when known (directly or via login), else the anonymous id."""
    mapping = identity_map(events)
    return (
        events.join(mapping, on="distinct_id", how="left")
        .with_columns(
            pl.coalesce("user_id", "stitched_user_id", "distinct_id").alias("person_id"),
        )
        .drop("stitched_user_id")
    )


class StitchReport(BaseModel):
    """How well the events follow the stitching rule; ``ok`` when every count is zero."""

    persons: int
    anonymous_ids_with_two_users: int
    identified_events_without_login: int
    web_events_after_login_without_user_id: int

    @property
    def ok(self) -> bool:
        return (
            self.anonymous_ids_with_two_users == 0
            and self.identified_events_without_login == 0
            and self.web_events_after_login_without_user_id == 0
        )


def check_stitching(events: pl.DataFrame) -> StitchReport:
    """Return the stitching report of an events frame.

    * an anonymous id must log in as at most one user;
    * every event carrying a ``user_id`` must belong to a user with a ``login_success``
      at or before it;
    * every browser event of an anonymous id at or after its login must carry the ``user_id``.
    """
    logins = (
        events.filter(pl.col("event") == "login_success")
        .group_by("distinct_id")
        .agg(
            pl.col("user_id").n_unique().alias("users"),
            pl.col("user_id").first(),
            pl.col("timestamp").min().alias("login_at"),
        )
    )
    two = int((logins["users"] > 1).sum()) if logins.height else 0
    first_login_by_user = logins.group_by("user_id").agg(pl.col("login_at").min())
    identified = events.filter(pl.col("user_id").is_not_null()).join(
        first_login_by_user, on="user_id", how="left"
    )
    orphans = int(
        identified.filter(pl.col("login_at").is_null() | (pl.col("timestamp") < pl.col("login_at"))).height
    )
    web_after = (
        events.filter(pl.col("source") == "web")
        .join(logins.select("distinct_id", "login_at"), on="distinct_id", how="inner")
        .filter((pl.col("timestamp") >= pl.col("login_at")) & pl.col("user_id").is_null())
        .height
    )
    persons = stitch(events.select("event", "timestamp", "distinct_id", "user_id"))["person_id"].n_unique()
    return StitchReport(
        persons=int(persons),
        anonymous_ids_with_two_users=two,
        identified_events_without_login=orphans,
        web_events_after_login_without_user_id=int(web_after),
    )
