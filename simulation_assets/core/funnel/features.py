"""Per-person ML features and labels built from canonical events (tracking plan sections 7 and 9).

One row per person who logged in, anchored at their first ``login_success``:

* purchase features: the first 24 hours after login, sessions with a monetization event
  excluded (so the label cannot leak), plus what they did on the landing page, and the
  section 9 signals (return within 24 h, jobs in the first session, re-runs of the same
  input, ratings, second download attempts, status polls, consent, attribution);
* churn features: the first 7 days after login (section 6 hazard inputs);
* labels: purchase within 7 days, churn (no completed job in the 30 days after the
  first week, or a canceled subscription), revenue within 30/60/90 days.
"""

from __future__ import annotations

import polars as pl

from simulation_assets.core.funnel.identity import stitch
from simulation_assets.core.funnel.taxonomy import Category, events_in

DAY_MS = 86_400_000
# Monetization events (category D of the taxonomy): left out of the purchase features.
MONETIZATION: tuple[str, ...] = tuple(events_in(Category.D))
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "device",
    "geo",
    "campaign_id",
    "creative_id",
    "experiment_variant",
    "utm_source",
    "ad_angle",  # 9F
    "landing_variant_id",  # 9F
    "email_domain_type",  # 9G
    "device_network_type",  # 9E
    "plan_viewed",  # 9D: the plan card looked at first (none: no pricing visit)
    "faq_topic",  # 9A: the first FAQ opened (none: no FAQ)
    "first_plan",  # the sku bought in the first week (none: no purchase); LTV only
)
_ATTRIBUTES = CATEGORICAL_FEATURES[:10]
PURCHASE_FEATURES: tuple[str, ...] = (
    "jobs_completed_24h",
    "jobs_attempted_24h",
    "time_to_first_job_s",
    "success_rate_24h",
    "inpaint_share_24h",
    "credits_remaining_24h",
    "pricing_viewed",
    "pricing_time_spent_s",
    "time_on_landing_before_cta_s",
    "time_to_first_cta_click_s",  # 9A
    "scroll_depth",
    "faq_opened",
    "errors_seen_24h",
    "downloads_24h",
    "return_within_24h",  # 9A: a second session within a day of login
    "jobs_attempted_in_first_session",  # 9A
    "repeat_upload_within_10min",  # 9A / 9C job_reprocessed_same_input
    "results_rated_down_24h",  # 9C
    "second_download_attempts_24h",  # 9C
    "status_poll_count_24h",  # 9E: polls per job
    "queue_wait_s_24h",  # 9E
    "low_credits_topup_clicked_24h",  # 9D
    "ads_allowed",  # 9G consent state at landing (null: banner ignored)
    *[c for c in CATEGORICAL_FEATURES if c != "first_plan"],
)
CHURN_FEATURES: tuple[str, ...] = (
    "days_since_last_job",
    "job_fail_rate",
    "avg_processing_time_min",
    "download_rate",
    "support_contacted",
    "credits_rollover_balance",
    "jobs_7d",
    "purchased_7d_flag",
    "revenue_7d",
    "job_reprocessed_same_input_7d",  # 9C
    "results_rated_down_7d",  # 9C
    "second_download_attempts_7d",  # 9C
    "status_poll_count_7d",  # 9E: polls per job, the anxiety indicator
    "refund_credit_returned_7d",  # 9C
    "email_domain_type",
    "device_network_type",
)
LTV_FEATURES: tuple[str, ...] = (*PURCHASE_FEATURES, *CHURN_FEATURES[:-2], "first_plan", "coupon_applied")
LTV_HORIZONS: tuple[int, ...] = (30, 60, 90)


def build_features(events: pl.DataFrame, free_credits: int = 5) -> pl.DataFrame:
    """Return one row per logged-in person: ``person_id``, ``login_at``, every feature and label.

    Units: times in seconds (``_s``) or minutes (``_min``), money in the events' currency.
    """
    ev = stitch(events).with_columns(pl.col("timestamp").dt.epoch("ms").alias("t"))
    login = (
        ev.filter(pl.col("event") == "login_success")
        .group_by("person_id")
        .agg(
            pl.col("t").min().alias("login_t"),
            pl.col("timestamp").min().alias("login_at"),
            pl.col("session_id").sort_by("t").first().alias("login_session"),
        )
    )
    attrs = (
        ev.filter(pl.col("event") == "ad_click")
        .group_by("person_id")
        .agg(*[pl.col(c).first() for c in _ATTRIBUTES])
    )
    ev = ev.join(login, on="person_id", how="inner").with_columns(
        ((pl.col("t") - pl.col("login_t")) / DAY_MS).alias("day")
    )
    # Whole sessions with a monetization event (the pricing visit right before a purchase included) stay out
    # of the purchase features, so the label cannot leak into them.
    money_sessions = ev.filter(pl.col("event").is_in(MONETIZATION))["session_id"].unique().implode()
    ev = ev.with_columns(pl.col("session_id").is_in(money_sessions).alias("_money_session"))
    e = pl.col("event")
    in24 = (pl.col("day") <= 1) & ~pl.col("_money_session")
    in7 = pl.col("day") <= 7
    not_money = ~e.is_in(MONETIZATION)
    outcome = e.is_in(["processing_completed", "processing_failed"])
    first_week_purchase = (e == "purchase_completed") & in7
    later_session = (pl.col("session_id") != pl.col("login_session")) & (pl.col("day") > 0)
    polls = pl.col("status_poll_count").filter(outcome & in24)
    feats = ev.group_by("person_id").agg(
        pl.col("login_at").first(),
        # --- first 24 h, purchase model (section 7 model 1 and section 9) ---
        ((e == "processing_completed") & in24).sum().alias("jobs_completed_24h"),
        ((e == "job_created") & in24).sum().alias("jobs_attempted_24h"),
        (pl.col("day").filter(e == "job_created").min() * 86_400).alias("time_to_first_job_s"),
        pl.col("success_bool").filter(outcome & in24).mean().alias("success_rate_24h"),
        (pl.col("mode").filter((e == "job_created") & in24) == "inpaint").mean().alias("inpaint_share_24h"),
        pl.col("credits_after")
        .filter(e.is_in(["job_created", "job_refunded", "credits_granted"]) & in24 & not_money)
        .last()
        .alias("credits_remaining_24h"),
        ((e == "pricing_view") & in24).any().alias("pricing_viewed"),
        (pl.col("pricing_time_spent_ms").filter((e == "pricing_view") & in24).sum() / 1000).alias(
            "pricing_time_spent_s"
        ),
        (pl.col("time_on_landing_before_cta_ms").filter(e == "cta_click").first() / 1000).alias(
            "time_on_landing_before_cta_s"
        ),
        (pl.col("time_to_first_cta_click_ms").filter(e == "cta_click").first() / 1000).alias(
            "time_to_first_cta_click_s"
        ),
        pl.col("scroll_depth_bucket").filter(e == "landing_view").max().alias("scroll_depth"),
        (e == "faq_expand").any().alias("faq_opened"),
        pl.col("faq_topic").filter(e == "faq_expand").first().fill_null("none").alias("faq_topic"),
        pl.col("plan_viewed")
        .filter((e == "pricing_view") & in24)
        .first()
        .fill_null("none")
        .alias("plan_viewed"),
        ((e == "error_shown") & in24).sum().alias("errors_seen_24h"),
        ((e == "download_clicked") & in24 & (pl.col("download_attempt").fill_null(1) == 1))
        .sum()
        .alias("downloads_24h"),
        (later_session & in24 & not_money).any().alias("return_within_24h"),
        ((e == "job_created") & (pl.col("session_id") == pl.col("login_session")))
        .sum()
        .alias("jobs_attempted_in_first_session"),
        ((e == "job_created") & in24 & pl.col("reprocessed_same_input").fill_null(False))
        .sum()
        .alias("repeat_upload_within_10min"),
        ((e == "result_rated") & in24 & (pl.col("result_rating") == "down"))
        .sum()
        .alias("results_rated_down_24h"),
        ((e == "download_clicked") & in24 & (pl.col("download_attempt").fill_null(1) == 2))
        .sum()
        .alias("second_download_attempts_24h"),
        polls.mean().alias("status_poll_count_24h"),
        (pl.col("queue_wait_ms").filter(outcome & in24).mean() / 1000).alias("queue_wait_s_24h"),
        ((e == "low_credits_topup_clicked") & in24).sum().alias("low_credits_topup_clicked_24h"),
        pl.col("ads_allowed")
        .filter((e == "cookie_consent_updated") & (pl.col("day") <= 0))
        .first()
        .alias("ads_allowed"),
        # --- first 7 days, churn model (section 7 model 2 / section 6 hazard / section 9) ---
        pl.col("day").filter((e == "processing_completed") & in7).max().alias("_last_job_day"),
        pl.col("success_bool").filter(outcome & in7).not_().mean().alias("job_fail_rate"),
        (pl.col("processing_time_ms").filter(outcome & in7).mean() / 60_000).alias("avg_processing_time_min"),
        ((e == "download_clicked") & in7 & (pl.col("download_attempt").fill_null(1) == 1))
        .sum()
        .alias("_downloads_7d"),
        ((e == "processing_completed") & in7).sum().alias("_completed_7d"),
        ((e == "support_contacted") & in7).sum().alias("support_contacted"),
        ((e == "job_created") & in7).sum().alias("jobs_7d"),
        ((e == "job_created") & in7 & pl.col("reprocessed_same_input").fill_null(False))
        .sum()
        .alias("job_reprocessed_same_input_7d"),
        ((e == "result_rated") & in7 & (pl.col("result_rating") == "down"))
        .sum()
        .alias("results_rated_down_7d"),
        ((e == "download_clicked") & in7 & (pl.col("download_attempt").fill_null(1) == 2))
        .sum()
        .alias("second_download_attempts_7d"),
        pl.col("status_poll_count").filter(outcome & in7).mean().alias("status_poll_count_7d"),
        ((e == "job_refunded") & in7).sum().alias("refund_credit_returned_7d"),
        first_week_purchase.any().alias("purchased_7d_flag"),
        pl.col("sku").filter(first_week_purchase).first().fill_null("none").alias("first_plan"),
        (pl.col("coupon").filter(first_week_purchase).first().is_not_null())
        .fill_null(False)
        .alias("coupon_applied"),
        # --- labels ---
        first_week_purchase.any().alias("label_purchased_7d"),
        ((e == "processing_completed") & (pl.col("day") > 7) & (pl.col("day") <= 37))
        .any()
        .alias("_job_after_week"),
        ((e == "subscription_canceled") & (pl.col("day") <= 37)).any().alias("_canceled"),
    )
    ledger = _credit_balance_at(ev, 7, "credits_rollover_balance", free_credits)
    revenue = _revenue(ev)
    feats = (
        feats.join(attrs, on="person_id", how="left")
        .join(ledger, on="person_id", how="left")
        .join(revenue, on="person_id", how="left")
        .with_columns(
            (7 - pl.col("_last_job_day")).clip(0, 7).fill_null(7.0).alias("days_since_last_job"),
            (pl.col("_downloads_7d") / pl.col("_completed_7d")).fill_nan(None).alias("download_rate"),
            pl.col("credits_rollover_balance").fill_null(free_credits),
            pl.col("credits_remaining_24h").fill_null(free_credits),
            *[pl.col(f"revenue_{h}d").fill_null(0.0) for h in (7, *LTV_HORIZONS)],
            (~pl.col("_job_after_week") | pl.col("_canceled")).alias("label_churned"),
            (pl.col("_completed_7d") > 0).alias("had_job_7d"),
        )
        .drop("_last_job_day", "_downloads_7d", "_completed_7d", "_job_after_week", "_canceled")
        .sort("login_at", "person_id")
    )
    return feats


def _credit_balance_at(ev: pl.DataFrame, days: float, name: str, free_credits: int) -> pl.DataFrame:
    """Return each person's last known credit balance within ``days`` of login."""
    e = pl.col("event")
    return (
        ev.filter(
            pl.col("credits_after").is_not_null()
            & (pl.col("day") <= days)
            & e.is_in(
                [
                    "credits_granted",
                    "job_created",
                    "job_refunded",
                    "processing_completed",
                    "processing_failed",
                ]
            )
        )
        .sort("t")
        .group_by("person_id")
        .agg(pl.col("credits_after").last().alias(name))
    )


def _revenue(ev: pl.DataFrame) -> pl.DataFrame:
    """Return revenue within 7/30/60/90 days of login per person: purchases, renewals, later top-ups, less refunds.

    A first purchase emits both ``purchase_completed`` and ``topup_purchased`` /
    ``subscription_started`` with one order id; it is counted once. A move to a yearly plan
    (``plan_changed`` with billing period ``yearly``) is charged when it happens; other plan
    changes are charged by the next renewal.
    """
    e = pl.col("event")
    first_orders = ev.filter(e == "purchase_completed").select("order_id").unique()
    money = ev.filter(
        (e.is_in(["purchase_completed", "subscription_renewed"]))
        | ((e == "topup_purchased") & ~pl.col("order_id").is_in(first_orders["order_id"].implode()))
        | ((e == "plan_changed") & (pl.col("billing_period") == "yearly"))
    ).with_columns(pl.col("price").alias("amount"))
    refunds = ev.filter(e == "refund_issued").with_columns((-pl.col("price")).alias("amount"))
    both = pl.concat(
        [money.select("person_id", "day", "amount"), refunds.select("person_id", "day", "amount")]
    )
    return both.group_by("person_id").agg(
        *[
            pl.col("amount").filter(pl.col("day") <= h).sum().alias(f"revenue_{h}d")
            for h in (7, *LTV_HORIZONS)
        ]
    )


def time_split(features: pl.DataFrame, test_share: float = 0.3) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (train, test): the earliest logins train, the latest ``test_share`` test (no shuffling)."""
    if not 0 < test_share < 1:
        raise ValueError(f"test_share must be between 0 and 1, got {test_share}")
    ordered = features.sort("login_at", "person_id")
    cut = int(round(ordered.height * (1 - test_share)))
    return ordered.head(cut), ordered.slice(cut)
