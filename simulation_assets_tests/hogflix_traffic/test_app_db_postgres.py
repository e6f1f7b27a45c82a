"""A full day of app rows in a real PostgreSQL: rows land, re-runs change nothing, cleanup spares real rows."""

from __future__ import annotations

import uuid

import polars as pl
import psycopg
import pytest

from simulation_assets.cli import main
from simulation_assets.core.hogflix import checks
from simulation_assets.core.hogflix.app_rows import app_rows, payment_rows, pool_profiles
from simulation_assets.core.hogflix.flixbuddy import chat_rows, conversations, deterministic_reply
from simulation_assets.sinks.app_db import PostgresAppDatabase
from simulation_assets_tests.hogflix_traffic.conftest import SEED

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("hogflix_postgres")]


def _day_tables(
    personas: pl.DataFrame, sessions: pl.DataFrame, events: pl.DataFrame
) -> dict[str, pl.DataFrame]:
    tables = app_rows(sessions, events, SEED)
    first_key = sessions["partition_key"].min()
    for name, frame in pool_profiles(personas, first_key, SEED).items():
        tables[name] = pl.concat([tables[name], frame]).unique("id", keep="first")
    asked = conversations(events, sessions, 50)
    replies = [
        deterministic_reply(t, c) for t, c in zip(asked["question_template"], asked["conversation_id"])
    ]
    tables.update(chat_rows(asked, replies, SEED))
    return tables


def _plant_real_rows(dsn: str, churned_user: str) -> dict[str, int]:
    """Rows a real app would hold: not flagged synthetic, real e-mail; one shares a churned persona's user id."""
    real_user = str(uuid.uuid4())
    with psycopg.connect(dsn) as con:
        con.execute(
            "INSERT INTO public.profiles (id, user_id, email, display_name, plan, created_at, is_synthetic) "
            "VALUES (%s, %s, 'ada@example.com', 'Ada', 'Premium', now(), false)",
            (str(uuid.uuid4()), real_user),
        )
        for user in (real_user, churned_user):
            con.execute(
                "INSERT INTO public.watch_progress (id, user_id, video_id, progress_seconds, updated_at, "
                "is_synthetic, partition_key) VALUES (%s, %s, %s, 60, now(), false, '2026-03-02-20:00')",
                (str(uuid.uuid4()), user, str(uuid.uuid4())),
            )
        con.execute(
            "INSERT INTO public.support_tickets (id, user_id, email, category, status, created_at, is_synthetic) "
            "VALUES (%s, %s, 'ada@example.com', 'billing', 'open', now(), false)",
            (str(uuid.uuid4()), churned_user),
        )
    return {"profiles": 1, "watch_progress": 2, "support_tickets": 1}


def _real_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as con:
        return sum(
            con.execute(f"SELECT count(*) FROM public.{t} WHERE NOT is_synthetic").fetchone()[0]
            for t in ("profiles", "watch_progress", "support_tickets")
        )


def test_a_full_day_lands_and_a_rerun_is_idempotent(postgres_dsn: str, day_traffic) -> None:  # noqa: ANN001
    personas, sessions, events = day_traffic
    db = PostgresAppDatabase(dsn=postgres_dsn)
    tables = _day_tables(personas, sessions, events)
    keys = sessions["partition_key"].unique().to_list()
    first = db.write(tables, keys)
    counts = db.table_counts()
    assert counts["video_ratings"] == (events["event"] == "video_rated").sum() > 0
    assert counts["watch_progress"] == (events["event"] == "video_started").sum()
    assert counts["user_watchlist"] == (events["event"] == "watchlist_added").sum()
    assert counts["support_tickets"] == (events["event"] == "support_ticket_created").sum()
    assert counts["chat_conversations"] == (events["event"] == "flixbuddy_interaction").sum()
    assert counts["profiles"] == personas.height
    assert first["new_profiles"].height == counts["profiles"]
    second = db.write(tables, keys)
    assert db.table_counts() == counts
    assert (
        second["new_profiles"].height == 0 and second["replaced"]["video_ratings"] == counts["video_ratings"]
    )
    assert sum(db.orphan_rows().values()) == 0
    ratings = db.read_table("video_ratings")
    assert set(ratings["id"]) == set(events.filter(pl.col("event") == "video_rated")["uuid"])


def test_cleanup_removes_exactly_the_churned_synthetic_users(
    postgres_dsn: str, day_traffic, persona_days
) -> None:  # noqa: ANN001
    personas, sessions, events = day_traffic
    db = PostgresAppDatabase(dsn=postgres_dsn)
    db.write(_day_tables(personas, sessions, events), sessions["partition_key"].unique().to_list())
    marked = pl.concat(persona_days).filter(pl.col("marked_for_cleanup"))
    marked = marked.filter(pl.col("user_id").is_in(personas["user_id"].implode()))
    assert marked.height >= 1
    ids = marked["user_id"].to_list()
    planted = _plant_real_rows(postgres_dsn, ids[0])
    before = db.table_counts()
    result = db.delete_users(ids)
    after = db.table_counts()
    assert result["deleted"]["profiles"] == len(ids)
    assert result["deleted"]["user_subscriptions"] == len(ids)
    assert result["non_synthetic_before"] == result["non_synthetic_after"] == sum(planted.values())
    with psycopg.connect(postgres_dsn) as con:
        for table in ("profiles", "watch_progress", "video_ratings", "support_tickets", "chat_messages"):
            left = con.execute(
                f"SELECT count(*) FROM public.{table} WHERE user_id = ANY(%s::uuid[]) AND is_synthetic",
                (ids,),
            ).fetchone()[0]
            assert left == 0, table
    assert _real_rows(postgres_dsn) == sum(planted.values())
    assert before["profiles"] - after["profiles"] == len(ids)
    assert db.delete_users(ids)["deleted"] == dict.fromkeys(result["deleted"], 0)  # a re-run finds nothing


def test_simulate_cleanup_counts_then_removes_synthetic_rows_only(
    postgres_dsn: str, day_traffic, capsys
) -> None:  # noqa: ANN001
    personas, sessions, events = day_traffic
    db = PostgresAppDatabase(dsn=postgres_dsn)
    db.write(_day_tables(personas, sessions, events), sessions["partition_key"].unique().to_list())
    planted = _plant_real_rows(postgres_dsn, sessions["user_id"][0])
    synthetic = db.count_synthetic()
    with psycopg.connect(postgres_dsn) as con:  # the SQL functions apply the same rules
        assert dict(con.execute("SELECT * FROM public.count_synthetic_data()").fetchall()) == synthetic
    assert main(["cleanup", "--dry-run", "--app-db", "postgres", "--dsn", postgres_dsn]) == 0
    assert f"{synthetic['watch_progress']}" in capsys.readouterr().out
    assert db.count_synthetic() == synthetic
    assert main(["cleanup", "--app-db", "postgres", "--dsn", postgres_dsn]) == 0
    assert sum(db.count_synthetic().values()) == 0
    assert _real_rows(postgres_dsn) == sum(planted.values())
    assert main(["cleanup", "--app-db", "postgres"]) == 2  # no DSN anywhere: bad input, nothing touched
    db.write(_day_tables(personas, sessions, events), sessions["partition_key"].unique().to_list())
    with psycopg.connect(postgres_dsn) as con:
        deleted = dict(con.execute("SELECT * FROM public.cleanup_synthetic_data()").fetchall())
    assert deleted == synthetic and sum(db.count_synthetic().values()) == 0
    assert _real_rows(postgres_dsn) == sum(planted.values())


def _orphan_watch_row(dsn: str, synthetic: bool) -> None:
    """A watch_progress row whose user has no profile."""
    with psycopg.connect(dsn) as con:
        con.execute(
            "INSERT INTO public.watch_progress (id, user_id, video_id, progress_seconds, updated_at, "
            "is_synthetic, partition_key) VALUES (%s, %s, %s, 60, now(), %s, '2026-03-02-20:00')",
            (str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), synthetic),
        )


def test_orphan_check_looks_only_at_the_simulators_rows(postgres_dsn: str, day_traffic) -> None:  # noqa: ANN001
    personas, sessions, events = day_traffic
    db = PostgresAppDatabase(dsn=postgres_dsn)
    db.write(_day_tables(personas, sessions, events), sessions["partition_key"].unique().to_list())
    _orphan_watch_row(postgres_dsn, synthetic=False)  # the real application's own orphan
    assert checks.no_orphan_rows(db.orphan_rows()).passed
    _orphan_watch_row(postgres_dsn, synthetic=True)  # one of ours: the check must see it
    outcome = checks.no_orphan_rows(db.orphan_rows())
    assert not outcome.passed and outcome.metadata["orphans"]["watch_progress"] == 1


def test_plan_and_dunning_follow_the_persona_and_payments_are_cleaned(postgres_dsn: str, day_traffic) -> None:  # noqa: ANN001
    personas, sessions, events = day_traffic
    db = PostgresAppDatabase(dsn=postgres_dsn)
    keys = sessions["partition_key"].unique().to_list()
    db.write(_day_tables(personas, sessions, events), keys)
    real_user = str(uuid.uuid4())
    with psycopg.connect(postgres_dsn) as con:  # a real subscription with a synthetic-looking twin id
        con.execute(
            "INSERT INTO public.user_subscriptions (id, user_id, plan, status, started_at, is_synthetic) "
            "VALUES (%s, %s, 'Basic', 'active', now(), false)",
            (str(uuid.uuid4()), real_user),
        )
    first = personas.row(0, named=True)
    later = personas.with_columns(
        pl.when(pl.col("distinct_id") == first["distinct_id"]).then(pl.lit("Basic")).otherwise(pl.col("plan"))
        .cast(personas["plan"].dtype).alias("plan"),
        pl.when(pl.col("distinct_id") == first["distinct_id"]).then(pl.lit("dunning"))
        .otherwise(pl.col("payment_status")).cast(personas["payment_status"].dtype).alias("payment_status"),
        pl.when(pl.col("distinct_id") == first["distinct_id"]).then(3).otherwise(0).cast(pl.Int8)
        .alias("payment_attempt_today"),
        (pl.col("distinct_id") == first["distinct_id"]).alias("payment_failed_today"),
    )  # fmt: skip
    tables = pool_profiles(later, keys[0], SEED)
    tables["payments"] = payment_rows(later, keys[0], SEED, {"Premium": 1799, "Standard": 1299, "Basic": 699})
    db.write(tables, keys[:1])
    with psycopg.connect(postgres_dsn) as con:
        plan = con.execute(
            "SELECT plan FROM public.profiles WHERE user_id = %s", (first["user_id"],)
        ).fetchone()
        status = con.execute(
            "SELECT plan, status FROM public.user_subscriptions WHERE user_id = %s", (first["user_id"],)
        ).fetchone()
        paid = con.execute(
            "SELECT amount_cents, status, attempt FROM public.payments WHERE user_id = %s",
            (first["user_id"],),
        ).fetchall()
        real = con.execute(
            "SELECT plan, status FROM public.user_subscriptions WHERE user_id = %s", (real_user,)
        ).fetchone()
    assert plan == ("Basic",) and status == ("Basic", "past_due")
    assert paid == [(699, "failed", 3)]
    assert real == ("Basic", "active")
    assert db.count_synthetic()["payments"] == 1
    db.cleanup_synthetic()
    assert sum(db.count_synthetic().values()) == 0
