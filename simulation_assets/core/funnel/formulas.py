"""Section 6 of the tracking plan as outputs: subscription churn, credit-pack churn, P(purchase | click).

Each formula is computed from events alone (what a team would run on its PostHog
export), and its expected value from the simulation's ground truth, so a check can
hold one against the other:

* monthly subscription churn = subscriptions canceled in a month / subscriptions active at
  its start. Months are counted from each subscription's start (month 1 = its first 30
  days), and only months that ended before the data's last event count;
* credit-pack churn at 30/60/90 days = pack buyers with no ``return_session`` in the 30
  days that end 30/60/90 days after their purchase (no return in that month);
* P(purchase | click) = P(land | click) x P(CTA | land) x P(signup | CTA) x P(login | signup)
  x P(aha | login) x P(purchase | aha), each factor learned from the events.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl
from pydantic import BaseModel

from simulation_assets.core.funnel.config import CohortConfig, purchase_probability_per_click
from simulation_assets.core.funnel.identity import stitch

DAY_MS = 86_400_000
MONTHS = (1, 2, 3)
PACK_HORIZONS = (30, 60, 90)
PURCHASE_STEPS: tuple[tuple[str, str, str], ...] = (
    ("P(land|click)", "ad_click", "landing_view"),
    ("P(CTA|land)", "landing_view", "cta_click"),
    ("P(signup|CTA)", "cta_click", "signup_submit"),
    ("P(login|signup)", "signup_submit", "login_success"),
    ("P(aha|login)", "login_success", "download_clicked"),
    ("P(purchase|aha)", "download_clicked", "purchase_completed"),
)


class Rate(BaseModel):
    """One measured share, its denominator, the expected share and the band it must fall in."""

    name: str
    numerator: int
    denominator: int
    observed: float | None
    expected: float | None = None
    tolerance: float | None = None
    within: bool | None = None


class Formulas(BaseModel):
    """Every section 6 output of one window of events."""

    as_of: str | None
    monthly_subscription_churn: list[Rate]
    credit_pack_churn: list[Rate]
    purchase_steps: list[Rate]
    purchase_per_click_product: float | None
    purchase_per_click: Rate

    def rates(self) -> list[Rate]:
        """Return every rate that has an expected value, in report order."""
        rows = [*self.monthly_subscription_churn, *self.credit_pack_churn, self.purchase_per_click]
        return [r for r in rows if r.expected is not None]


def _ms(frame: pl.DataFrame, name: str) -> pl.Expr:
    return pl.col("timestamp").dt.epoch("ms").alias(name)


def subscription_months(events: pl.DataFrame) -> pl.DataFrame:
    """Return one row per subscription and month: ``person_id, month, active_at_start, canceled, complete``."""
    ev = stitch(events.filter(pl.col("event").is_in(["subscription_started", "subscription_canceled"])))
    last = events["timestamp"].max()
    as_of = last.timestamp() * 1000 if last is not None else 0
    starts = (
        ev.filter(pl.col("event") == "subscription_started")
        .group_by("person_id")
        .agg(pl.col("timestamp").min().dt.epoch("ms").alias("start"))
    )
    cancels = (
        ev.filter(pl.col("event") == "subscription_canceled")
        .group_by("person_id")
        .agg(pl.col("timestamp").min().dt.epoch("ms").alias("cancel"))
    )
    subs = starts.join(cancels, on="person_id", how="left")
    months = pl.DataFrame({"month": list(MONTHS)})
    m0 = pl.col("start") + (pl.col("month") - 1) * 30 * DAY_MS
    return subs.join(months, how="cross").select(
        "person_id",
        "month",
        (pl.col("cancel").is_null() | (pl.col("cancel") >= m0)).alias("active_at_start"),
        (
            pl.col("cancel").is_not_null() & (pl.col("cancel") >= m0) & (pl.col("cancel") < m0 + 30 * DAY_MS)
        ).alias("canceled"),
        (m0 + 30 * DAY_MS <= as_of).alias("complete"),
    )


def pack_buyer_returns(events: pl.DataFrame) -> pl.DataFrame:
    """Return one row per pack buyer and horizon: ``person_id, horizon, returned, complete``."""
    ev = stitch(events.filter(pl.col("event").is_in(["purchase_completed", "return_session"])))
    last = events["timestamp"].max()
    as_of = last.timestamp() * 1000 if last is not None else 0
    buyers = (
        ev.filter((pl.col("event") == "purchase_completed") & (pl.col("billing_period") == "one-time"))
        .group_by("person_id")
        .agg(pl.col("timestamp").min().dt.epoch("ms").alias("bought"))
    )
    returns = ev.filter(pl.col("event") == "return_session").select("person_id", _ms(ev, "t"))
    horizons = pl.DataFrame({"horizon": list(PACK_HORIZONS)})
    end = pl.col("bought") + pl.col("horizon") * DAY_MS
    windows = buyers.join(horizons, how="cross")
    hit = (
        windows.join(returns, on="person_id", how="inner")
        .filter((pl.col("t") > end - 30 * DAY_MS) & (pl.col("t") <= end))
        .select("person_id", "horizon")
        .unique()
        .with_columns(pl.lit(True).alias("returned"))
    )
    return windows.join(hit, on=["person_id", "horizon"], how="left").select(
        "person_id",
        "horizon",
        pl.col("returned").fill_null(False),
        (end <= as_of).alias("complete"),
    )


def _rate(name: str, hits: int, n: int, expected: float | None, z: float) -> Rate:
    observed = hits / n if n else None
    if expected is None or not n:
        return Rate(name=name, numerator=hits, denominator=n, observed=observed, expected=expected)
    tolerance = z * math.sqrt(max(expected * (1 - expected), 0.0) / n) + 0.5 / n
    return Rate(
        name=name,
        numerator=hits,
        denominator=n,
        observed=round(observed, 6),
        expected=round(expected, 6),
        tolerance=round(tolerance, 6),
        within=abs(observed - expected) <= tolerance,
    )


def compute_formulas(
    events: pl.DataFrame,
    users: pl.DataFrame | None = None,
    config: CohortConfig | None = None,
    z: float = 4.0,
) -> Formulas:
    """Return the section 6 outputs of ``events``; with the cohorts' ``users`` truth and config, also expectations.

    ``users`` is the ground-truth frame of the same cohorts (``user_id``, ``churn_probability``);
    expected values use the configured ``refund_rate``, ``p_return_next_month`` and rates.
    """
    truth = None
    if users is not None and config is not None:
        truth = users.select(pl.col("user_id").alias("person_id"), "churn_probability")
    r = config.p_return_next_month if config else None

    subs = subscription_months(events)
    monthly = []
    for month in MONTHS:
        rows = subs.filter((pl.col("month") == month) & pl.col("complete") & pl.col("active_at_start"))
        expected = None
        if truth is not None and rows.height:
            if month == 1:
                churn = (
                    rows.join(truth, on="person_id", how="left")["churn_probability"].fill_null(1.0).mean()
                )
                expected = config.refund_rate + (1 - config.refund_rate) * float(churn)  # type: ignore[union-attr]
            else:
                expected = 1 - r  # type: ignore[operator]
        monthly.append(_rate(f"month {month}", int(rows["canceled"].sum()), rows.height, expected, z))

    packs = pack_buyer_returns(events)
    pack = []
    for k, horizon in enumerate(PACK_HORIZONS):
        rows = packs.filter((pl.col("horizon") == horizon) & pl.col("complete"))
        expected = None
        if truth is not None and rows.height:
            stay = 1 - rows.join(truth, on="person_id", how="left")["churn_probability"].fill_null(1.0)
            expected = 1 - float(stay.mean()) * r**k  # type: ignore[operator]
        pack.append(_rate(f"{horizon} days", int((~rows["returned"]).sum()), rows.height, expected, z))

    stitched = stitch(events.filter(pl.col("event").is_in([e for _, a, b in PURCHASE_STEPS for e in (a, b)])))
    reached = stitched.group_by("person_id").agg(
        *[(pl.col("event") == e).any().alias(e) for e in {e for _, a, b in PURCHASE_STEPS for e in (a, b)}]
    )
    steps, product = [], 1.0
    for name, given, then in PURCHASE_STEPS:
        n = int(reached[given].sum()) if reached.height else 0
        hits = int((reached[given] & reached[then]).sum()) if reached.height else 0
        steps.append(_rate(name, hits, n, None, z))
        product = product * (hits / n) if n and product is not None else None  # type: ignore[assignment]
    clicks = int(reached["ad_click"].sum()) if reached.height else 0
    buyers = int((reached["ad_click"] & reached["purchase_completed"]).sum()) if reached.height else 0
    expected = purchase_probability_per_click(config.rates) if config else None
    last = events["timestamp"].max()
    return Formulas(
        as_of=None if last is None else last.isoformat(),
        monthly_subscription_churn=monthly,
        credit_pack_churn=pack,
        purchase_steps=steps,
        purchase_per_click_product=product,
        purchase_per_click=_rate("P(purchase|click)", buyers, clicks, expected, z),
    )


def formulas_table(formulas: Formulas) -> list[dict[str, Any]]:
    """Return the outputs as rows (``formula, name, observed, expected, tolerance, n, within``)."""
    rows = []
    for group, items in (
        ("monthly subscription churn", formulas.monthly_subscription_churn),
        ("credit-pack churn", formulas.credit_pack_churn),
        ("purchase steps", formulas.purchase_steps),
        ("purchase per click", [formulas.purchase_per_click]),
    ):
        for r in items:
            rows.append(
                {
                    "formula": group,
                    "name": r.name,
                    "observed": r.observed,
                    "expected": r.expected,
                    "tolerance": r.tolerance,
                    "n": r.denominator,
                    "within": r.within,
                }
            )
    return rows
