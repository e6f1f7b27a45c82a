"""App database rows reconcile with the events and replace only synthetic rows; Stripe events arrive signed, once."""

from __future__ import annotations

import datetime as dt

import polars as pl
import psycopg
import pytest

from simulation_assets.core.funnel.app_rows import app_rows
from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.core.funnel.stripe import STRIPE_EVENT_TYPES, stripe_events
from simulation_assets.sinks.funnel_app_db import FunnelAppDatabase
from simulation_assets.sinks.funnel_stripe import StripeWebhookSink
from simulation_assets_tests.funnel.servers import WebhookServer

DAY = "2026-01-01"


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    return simulate_cohort_events(
        dt.date.fromisoformat(DAY), CohortConfig(), seed=42, impressions=400_000
    ).events


def test_app_rows_reconcile_with_the_events(events) -> None:
    rows = app_rows(events)
    logins = events.filter(pl.col("event") == "login_success")
    assert rows["users"].height == logins["user_id"].n_unique()
    assert rows["users"]["email"].str.ends_with("@funnel-synthetic.test").all()
    # the ledger rebuilt from the events gives every job the balance the job event reports
    jobs = events.filter(pl.col("event") == "job_created").select(
        pl.col("event_id").alias("entry_id"), "credits_after"
    )
    both = rows["credit_ledger"].join(jobs, on="entry_id")
    assert both.height == jobs.height and (both["balance_after"] == both["credits_after"]).all()
    assert rows["credit_ledger"]["balance_after"].min() >= 0
    purchases = rows["purchases"]
    first = events.filter(pl.col("event") == "purchase_completed")
    assert purchases.filter(pl.col("kind") == "first_purchase").height == first.height
    assert purchases["amount_cents"].sum() > 0 and purchases["purchase_id"].n_unique() == purchases.height
    refunds = events.filter(pl.col("event") == "refund_issued")["order_id"]
    assert set(purchases.filter(pl.col("status") == "refunded")["order_id"]) == set(refunds)


@pytest.mark.postgres
def test_rows_replace_only_the_days_synthetic_rows_in_postgres(events, postgres_dsn) -> None:
    db = FunnelAppDatabase(mode="postgres", dsn=postgres_dsn)
    rows = app_rows(events)
    db.write_day(DAY, rows)
    with psycopg.connect(postgres_dsn, autocommit=True) as con:
        con.execute(
            "INSERT INTO funnel_app.users (user_id, email, is_synthetic, cohort_day) VALUES "
            "('real_1', 'ana@example.com', false, %s), ('real_2', 'bo@example.com', true, %s)",
            (DAY, DAY),
        )
    written = db.write_day(DAY, rows)  # again: replaces, never duplicates
    assert written == {name: frame.height for name, frame in rows.items()}
    with psycopg.connect(postgres_dsn) as con:
        counts = {t: con.execute(f"SELECT count(*) FROM funnel_app.{t}").fetchone()[0] for t in rows}
        real = {r[0] for r in con.execute("SELECT user_id FROM funnel_app.users WHERE user_id LIKE 'real_%'")}
        cents = con.execute("SELECT sum(amount_cents) FROM funnel_app.purchases").fetchone()[0]
    assert counts == {"users": rows["users"].height + 2, "credit_ledger": rows["credit_ledger"].height,
                      "purchases": rows["purchases"].height}  # fmt: skip
    assert real == {"real_1", "real_2"}  # a real row, and one flagged synthetic without a synthetic e-mail
    assert cents == rows["purchases"]["amount_cents"].sum()


def test_rows_that_are_not_synthetic_are_refused_before_connecting(events) -> None:
    rows = app_rows(events)
    rows["users"] = rows["users"].with_columns(pl.lit("x@example.com").alias("email"))
    with pytest.raises(ValueError, match="synthetic"):
        FunnelAppDatabase(mode="postgres", dsn="postgresql://nobody@127.0.0.1:1/none").write_day(DAY, rows)


def test_stripe_events_mirror_the_monetization_events(events) -> None:
    out = stripe_events(events)
    counts = dict(events.group_by("event").len().iter_rows())
    by_type: dict[str, int] = {}
    for e in out:
        by_type[e["type"]] = by_type.get(e["type"], 0) + 1
    assert by_type == {kind: counts[name] for name, kind in STRIPE_EVENT_TYPES.items() if counts.get(name)}
    assert len({e["id"] for e in out}) == len(out) and not any(e["livemode"] for e in out)
    checkout = next(e for e in out if e["type"] == "checkout.session.completed")["data"]["object"]
    assert checkout["amount_total"] in {900, 810, 2900, 2610, 1900, 1710, 19000, 17100}
    assert out == stripe_events(events)  # deterministic ids: a re-send is the same event


def test_webhook_deliveries_are_signed_and_none_is_lost_under_injected_faults(events) -> None:
    out = stripe_events(events)
    with WebhookServer("whsec_test_123", failure_rate=0.3) as server:
        sink = StripeWebhookSink(
            webhook_url=server.url, webhook_secret="whsec_test_123", backoff_seconds=0.001, max_retries=10
        )
        report = sink.send(out)
    assert server.failures_injected > 5 and server.bad_signatures == 0
    assert report.acknowledged == len(out) == len(server.received)
    assert [e["id"] for e in server.received] == [e["id"] for e in out]  # each once, in order


def test_a_live_stripe_key_is_refused() -> None:
    sink = StripeWebhookSink(webhook_url="http://127.0.0.1:9/x", webhook_secret="sk_live_abc")
    with pytest.raises(ValueError, match="live Stripe key"):
        sink.send([])
