"""Category A, acquisition: who the clickers are and what they do between the ad and the CTA.

``ad_click``, ``landing_view``, ``pricing_view``, ``faq_expand`` and ``cta_click``, with the
attribution every event carries (section 4 "always include") and the intent signals of
section 9A (time on landing before the CTA, scroll depth, pricing time, FAQ topics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort.draws import (
    DAY,
    SECOND,
    hex_ids,
    labels,
    lognormal_ms,
    null_unless,
    pick,
    select,
)
from simulation_assets.core.funnel.cohort.frame import EventBlocks
from simulation_assets.core.funnel.cohort.states import FunnelPath
from simulation_assets.core.funnel.config import CohortConfig

# Attribution catalogue (this project's choice): campaigns x adsets x ads, one creative per ad.
CAMPAIGNS = ("purchase_prospecting_broad_us", "purchase_retargeting_30d", "lead_lookalike_creators")
ANGLES = ("ugc_deliverable", "quality", "speed", "privacy")
GEOS = ("US", "GB", "CA", "DE", "BR", "IN")
GEO_P = (0.5, 0.1, 0.08, 0.08, 0.08, 0.16)
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_P = (0.6, 0.35, 0.05)
NETWORKS = ("wifi", "4g", "5g", "ethernet")
FAQ_TOPICS = ("pricing", "privacy", "quality", "formats", "refunds")


@dataclass(frozen=True)
class Clickers:
    """The people who clicked an ad: attribution per person and their ids."""

    attribution: pl.DataFrame
    """One row per clicker (``user`` = row number): ids, utm and ad fields, device, geo ..."""
    anon_id: pl.Series
    user_id: pl.Series
    first_session: pl.Series
    intent: np.ndarray
    """Latent purchase intent, N(0, 1) per clicker."""


def draw_clickers(gen: np.random.Generator, n: int) -> Clickers:
    """Return ``n`` clickers with their attribution, ids and latent intent."""
    idx = np.arange(n, dtype=np.int64)
    ad = gen.integers(0, len(CAMPAIGNS) * 6, size=n)  # 3 campaigns x 2 adsets x 3 ads
    camp, adset = ad // 6, ad // 3
    is_meta = gen.random(n) < 0.8
    anon = hex_ids(gen, n, "anon_")
    usr = hex_ids(gen, n, "usr_", 8)
    sess0 = hex_ids(gen, n, "sess_")
    click_ids = hex_ids(gen, n, "", 16)
    intent = gen.standard_normal(n)
    attribution = pl.DataFrame(
        {
            "user": idx,
            "anon_id": anon,
            "usr_id": usr,
            "experiment_variant": labels(("control", "treatment"), (gen.random(n) < 0.5).astype(np.int64)),
            "utm_source": labels(("google", "facebook"), is_meta.astype(np.int64)),
            "ad_platform": labels(("google", "meta"), is_meta.astype(np.int64)),
            "utm_campaign": labels(CAMPAIGNS, camp),
            "utm_adset": "adset_" + pl.Series(adset).cast(pl.String).str.pad_start(2, "0"),
            "utm_content": "cr_" + pl.Series(ad).cast(pl.String).str.pad_start(3, "0"),
            "campaign_id": pl.Series(camp + 120_200_000).cast(pl.String),
            "adset_id": pl.Series(adset + 230_400_000).cast(pl.String),
            "ad_id": pl.Series(ad + 340_600_000).cast(pl.String),
            "creative_id": "cr_" + pl.Series(ad).cast(pl.String).str.pad_start(3, "0"),
            "ad_angle": labels(ANGLES, ad % len(ANGLES)),
            "fbclid": null_unless(is_meta, "IwAR" + click_ids),
            "gclid": null_unless(~is_meta, "Cj0K" + click_ids),
            "referrer": labels(
                ("https://www.google.com/", "https://l.facebook.com/"), is_meta.astype(np.int64)
            ),
            "landing_variant": labels(("hero_v4", "hero_v3"), (gen.random(n) < 0.5).astype(np.int64)),
            "device": pick(gen, DEVICES, DEVICE_P, n),
            "geo": pick(gen, GEOS, GEO_P, n),
            "device_network_type": pick(gen, NETWORKS, None, n),
            "email_domain_type": pick(gen, ("gmail", "work", "custom"), (0.7, 0.2, 0.1), n),
        }
    ).with_columns(
        pl.col("landing_variant").alias("landing_variant_id"),
        pl.col("utm_source").alias("first_touch_channel"),
    )
    return Clickers(attribution=attribution, anon_id=anon, user_id=usr, first_session=sess0, intent=intent)


@dataclass(frozen=True)
class LandingTimes:
    """Epoch milliseconds of each clicker's first visit (one entry per clicker)."""

    click: np.ndarray
    land: np.ndarray
    dwell: np.ndarray
    """Time on the landing page before the CTA, ms."""
    cta: np.ndarray


def emit_landing(
    blocks: EventBlocks,
    gen: np.random.Generator,
    day_ms: int,
    path: FunnelPath,
    clickers: Clickers,
) -> LandingTimes:
    """Emit ``ad_click`` and ``landing_view``; return the first visit's times (high intent reads faster)."""
    n = len(path.landed)
    idx = np.arange(n, dtype=np.int64)
    sess0 = clickers.first_session
    landed = path.landed
    t_click = day_ms + gen.integers(0, DAY, size=n)
    t_land = t_click + gen.integers(500, 3 * SECOND, size=n)
    dwell = lognormal_ms(gen, 20 * SECOND, 0.6, n, shift=-0.3 * clickers.intent)
    blocks.add("ad_click", idx, t_click, sess0, page_path="/")
    scroll = np.array([25, 50, 75, 100])[
        np.clip((gen.random(n) * 3 + (clickers.intent > 0)).astype(int), 0, 3)
    ]
    blocks.add(
        "landing_view",
        idx[landed],
        t_land[landed],
        sess0.filter(landed),
        page_path="/",
        scroll_depth_bucket=scroll[landed],
    )
    return LandingTimes(click=t_click, land=t_land, dwell=dwell, cta=t_land + dwell)


def emit_browsing(
    blocks: EventBlocks,
    gen: np.random.Generator,
    config: CohortConfig,
    path: FunnelPath,
    clickers: Clickers,
    times: LandingTimes,
) -> None:
    """Emit ``pricing_view`` and ``faq_expand`` while on the landing page, then ``cta_click``."""
    n = len(path.landed)
    idx = np.arange(n, dtype=np.int64)
    sess0, intent, landed, cta = clickers.first_session, clickers.intent, path.landed, path.clicked_cta
    t_land, dwell = times.land, times.dwell
    p_pricing = 1 / (
        1 + np.exp(-(np.log(config.pricing_view_base / (1 - config.pricing_view_base)) + intent))
    )
    pricing = landed & (gen.random(n) < p_pricing)
    pricing_ms = lognormal_ms(gen, 15 * SECOND, 0.5, n, shift=0.4 * intent)
    t_pricing = t_land + (dwell * gen.uniform(0.2, 0.8, n)).astype(np.int64)
    blocks.add(
        "pricing_view",
        idx[pricing],
        t_pricing[pricing],
        sess0.filter(pricing),
        page_path="/pricing",
        pricing_time_spent_ms=pricing_ms[pricing],
    )
    faq = landed & (gen.random(n) < config.faq_rate)
    blocks.add(
        "faq_expand",
        idx[faq],
        (t_land + (dwell * gen.uniform(0.1, 0.9, n)).astype(np.int64))[faq],
        sess0.filter(faq),
        page_path="/",
        faq_topic=select(pick(gen, FAQ_TOPICS, None, n), faq),
    )
    blocks.add(
        "cta_click",
        idx[cta],
        times.cta[cta],
        sess0.filter(cta),
        page_path="/",
        time_on_landing_before_cta_ms=dwell[cta],
    )
