"""Google Analytics: website sessions with source/medium, channel group, bounce and duration."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulation_assets.core.warehouse.generators import iot
from simulation_assets.core.warehouse.generators.marketing import campaigns_started_before
from simulation_assets.core.warehouse.generators.text import concat
from simulation_assets.core.warehouse.sampling import DAY, choice, labels, ts

if TYPE_CHECKING:
    from simulation_assets.core.warehouse.generate import Warehouse

# Paid source/medium pairs and the campaign channel that tags them.
CHANNEL_OF_SOURCE = {"google/cpc": "google_ads", "facebook/paid": "meta", "linkedin/paid": "linkedin",
                     "newsletter/email": "email"}  # fmt: skip
# GA default channel group of a medium.
CHANNEL_GROUP = {"organic": "Organic Search", "(none)": "Direct", "cpc": "Paid Search", "paid": "Paid Social",
                 "email": "Email", "referral": "Referral"}  # fmt: skip
LANDING_PAGES = {"/": 0.45, "/pricing": 0.2, "/features": 0.15, "/blog": 0.15, "/demo": 0.05}


def website_calendar(wh: Warehouse) -> np.ndarray:
    """Return the cumulative day weights of website visits: yearly growth x the calendar's season and holidays
    at ``calendar.ga_strength`` (a flat week: the bars' weekday rhythm is not their owners' browsing)."""
    origin, weights = iot.calendar_weights(wh, wh.cfg.calendar.ga_strength, weekdays=False)
    years = (np.arange(len(weights)) + 0.5) / 365.25
    growth = (1 + wh.cfg.window.account_yoy_growth) ** years
    return np.concatenate([[0.0], np.cumsum(weights * growth)])


def website_times(wh: Warehouse, u: np.ndarray) -> np.ndarray:
    """Return epoch seconds in the window (before its last day) at quantiles ``u`` of ``website_calendar``."""
    cumulative = website_calendar(wh)
    origin = wh.history_start // DAY
    end = iot.calendar_position(cumulative, origin, np.array([wh.history_end - DAY]))[0]
    return np.minimum(iot.calendar_seconds(cumulative, origin, u * end), wh.history_end - DAY - 1)


def sessions(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the website sessions; paid sessions point to a campaign of their channel."""
    marketing, activity = wh.cfg.marketing, wh.cfg.activity
    start, stop = wh.chunk_rows("ga_sessions", k)
    rng, n = wh.rng("ga_sessions", k), stop - start
    when = website_times(wh, rng.random(n))
    source = choice(rng, n, marketing.ga_sources)
    source_names = list(marketing.ga_sources)
    channels = wh.whole("marketing_campaigns")["channel"].to_numpy()
    campaign = np.full(n, -1, dtype=np.int64)
    for source_medium, channel in CHANNEL_OF_SOURCE.items():
        rows = (
            np.flatnonzero(source == source_names.index(source_medium))
            if source_medium in source_names
            else np.array([], dtype=np.int64)
        )
        subset = np.flatnonzero(channels == channel)
        if len(rows) and len(subset):
            campaign[rows], when[rows] = campaigns_started_before(wh, rng, when[rows], subset)
    # bounce and engagement depend on where the visitor came from, scaled so the overall bounce stays as set
    # and on the landing page (a blog post bounces more than the demo page), both scaled so that the overall
    # bounce rate stays as set
    shares = np.fromiter(marketing.ga_sources.values(), dtype=np.float64)
    relative = np.array([marketing.ga_source_bounce.get(name, 1.0) for name in source_names])
    page_shares = np.fromiter(LANDING_PAGES.values(), dtype=np.float64)
    page_relative = np.array([marketing.ga_landing_bounce.get(page, 1.0) for page in LANDING_PAGES])
    landing_page = choice(rng, n, LANDING_PAGES)
    mean = float(shares @ relative) * float(page_shares @ page_relative)
    bounce = np.clip(relative[source] * page_relative[landing_page] * marketing.bounce_rate / mean, 0.0, 1.0)
    engaged = np.array([marketing.ga_source_duration.get(name, 1.0) for name in source_names])
    bounced = rng.random(n) < bounce
    typical = np.log(marketing.median_session_seconds * engaged[source])
    duration = np.where(bounced, rng.integers(0, 11, n), np.exp(rng.normal(typical, 0.9, n))).astype(np.int32)
    pageviews = np.where(bounced, 1, 2 + rng.geometric(0.4, n) - 1).astype(np.int32)
    medium = labels(source, [name.split("/")[1] for name in source_names])
    landing = labels(landing_page, list(LANDING_PAGES))
    return pl.DataFrame(
        {
            "ga_session_id": np.arange(start + 1, stop + 1),
            "client_id": concat(
                "GA1.1.", pl.Series(rng.integers(10**8, 10**9, n)), ".", pl.Series(when // DAY)
            ),
            "campaign_id": pl.Series(np.where(campaign >= 0, campaign + 1, 0)).set(
                pl.Series(campaign < 0), None
            ),
            "source": labels(source, [name.split("/")[0] for name in source_names]),
            "medium": medium,
            "channel_group": medium.replace_strict(CHANNEL_GROUP, default="Other", return_dtype=pl.String),
            "landing_page": landing,
            "device_category": labels(choice(rng, n, activity.device_types), activity.device_types),
            "session_start": ts(when),
            "pageviews": pageviews,
            "session_duration_seconds": duration,
            "bounced": bounced,
            "converted": ~bounced & (rng.random(n) < 0.04),
        }
    )
