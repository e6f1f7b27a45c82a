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
    hex_digits,
    hex_ids,
    labels,
    lognormal_ms,
    null_unless,
    pick,
    select,
    text_rows,
)
from simulation_assets.core.funnel.cohort.frame import EventBlocks
from simulation_assets.core.funnel.cohort.states import FunnelPath
from simulation_assets.core.funnel.cohort.traits import Traits, bernoulli, choose, draw_traits
from simulation_assets.core.funnel.config import CohortConfig

# Attribution catalogue (this project's choice): campaigns x adsets x ads, one creative per ad.
# Campaign names follow the plan's example ("<product> | Purchase | Prospecting | Broad US | ...").
CAMPAIGNS = (
    "Purchase | Prospecting | Broad US",
    "Purchase | Retargeting | 30 Days",
    "Lead | Lookalike | Creators",
)
ANGLES = ("ugc_deliverable", "quality", "speed", "privacy")
GEOS = ("US", "GB", "CA", "DE", "BR", "IN")
GEO_P = (0.5, 0.1, 0.08, 0.08, 0.08, 0.16)
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_P = (0.6, 0.35, 0.05)
NETWORKS = ("wifi", "4g", "5g", "ethernet")
EMAIL_KINDS = ("gmail", "work", "custom")
EMAIL_P = (0.7, 0.2, 0.1)
FAQ_TOPICS = ("pricing", "privacy", "quality", "formats", "refunds")
PLAN_CARDS = ("starter", "pro", "business")
# Names and ids of the catalogue's adsets (2 per campaign) and ads (3 per adset), by index.
ADSET_NAMES = tuple(f"adset_{i:02d}" for i in range(len(CAMPAIGNS) * 2))
CREATIVE_NAMES = tuple(f"cr_{i:03d}" for i in range(len(CAMPAIGNS) * 6))
CAMPAIGN_IDS = tuple(str(120_200_000 + i) for i in range(len(CAMPAIGNS)))
ADSET_IDS = tuple(str(230_400_000 + i) for i in range(len(CAMPAIGNS) * 2))
AD_IDS = tuple(str(340_600_000 + i) for i in range(len(CAMPAIGNS) * 6))
_META_CLICK = np.frombuffer(b"IwAR", dtype=np.uint8)
_GOOGLE_CLICK = np.frombuffer(b"Cj0K", dtype=np.uint8)


@dataclass(frozen=True)
class Clickers:
    """The people who clicked an ad: attribution per person, their ids and latent traits."""

    attribution: pl.DataFrame
    """One row per clicker (``user`` = row number): ids, utm and ad fields, device, geo ..."""
    anon_id: pl.Series
    user_id: pl.Series
    first_session: pl.Series
    traits: Traits
    ad_angle: np.ndarray
    """Index into :data:`ANGLES` per clicker."""

    @property
    def intent(self) -> np.ndarray:
        return self.traits.intent


def draw_clickers(gen: np.random.Generator, n: int, product: str = "BlankLogo") -> Clickers:
    """Return ``n`` clickers of ``product``'s ads with their attribution, ids and latent traits."""
    idx = np.arange(n, dtype=np.int64)
    ad = gen.integers(0, len(CAMPAIGNS) * 6, size=n)  # 3 campaigns x 2 adsets x 3 ads
    camp, adset, angle = ad // 6, ad // 3, ad % len(ANGLES)
    is_meta = gen.random(n) < 0.8
    geo = gen.choice(len(GEOS), size=n, p=GEO_P)
    email = gen.choice(len(EMAIL_KINDS), size=n, p=EMAIL_P)
    anon = hex_ids(gen, n, "anon_")
    usr = hex_ids(gen, n, "usr_", 8)
    sess0 = hex_ids(gen, n, "sess_")
    # one click id per person: fbclid ("IwAR...") from Meta ads, gclid ("Cj0K...") from Google
    click_text = np.empty((n, 36), dtype=np.uint8)
    click_text[:, :4] = np.where(is_meta[:, None], _META_CLICK, _GOOGLE_CLICK)
    click_text[:, 4:] = hex_digits(gen, n, 16)
    click_ids = text_rows(click_text)
    traits = draw_traits(gen, camp, angle, ANGLES, geo, GEOS, email == EMAIL_KINDS.index("work"))
    attribution = pl.DataFrame(
        {
            "user": idx,
            "anon_id": anon,
            "usr_id": usr,
            "experiment_variant": labels(("control", "treatment"), (gen.random(n) < 0.5).astype(np.int64)),
            "utm_source": labels(("google", "facebook"), is_meta.astype(np.int64)),
            "ad_platform": labels(("google", "meta"), is_meta.astype(np.int64)),
            "utm_campaign": labels(tuple(f"{product} | {c}" for c in CAMPAIGNS), camp),
            "utm_adset": labels(ADSET_NAMES, adset),
            "utm_content": labels(CREATIVE_NAMES, ad),
            "campaign_id": labels(CAMPAIGN_IDS, camp),
            "adset_id": labels(ADSET_IDS, adset),
            "ad_id": labels(AD_IDS, ad),
            "creative_id": labels(CREATIVE_NAMES, ad),
            "ad_angle": labels(ANGLES, angle),
            "fbclid": null_unless(is_meta, click_ids),
            "gclid": null_unless(~is_meta, click_ids),
            "referrer": labels(
                ("https://www.google.com/", "https://l.facebook.com/"), is_meta.astype(np.int64)
            ),
            "landing_variant": labels(("hero_v4", "hero_v3"), (gen.random(n) < 0.5).astype(np.int64)),
            "device": pick(gen, DEVICES, DEVICE_P, n),
            "geo": labels(GEOS, geo),
            "device_network_type": pick(gen, NETWORKS, None, n),
            "email_domain_type": labels(EMAIL_KINDS, email),
        }
    ).with_columns(
        pl.col("landing_variant").alias("landing_variant_id"),
        pl.col("utm_source").alias("first_touch_channel"),
    )
    return Clickers(
        attribution=attribution, anon_id=anon, user_id=usr, first_session=sess0, traits=traits, ad_angle=angle
    )


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
    """Emit ``pricing_view`` and ``faq_expand`` while on the landing page, then ``cta_click``.

    Intent and price sensitivity both send people to pricing; the price-sensitive stay longer
    and look at the cheaper plan cards. FAQ topics follow the worries the traits stand for.
    """
    n = len(path.landed)
    idx = np.arange(n, dtype=np.int64)
    sess0, landed, cta = clickers.first_session, path.landed, path.clicked_cta
    t = clickers.traits
    t_land, dwell = times.land, times.dwell
    base = np.log(config.pricing_view_base / (1 - config.pricing_view_base))
    pricing = landed & bernoulli(gen, base + t.intent + 0.5 * t.price_sensitivity)
    pricing_ms = lognormal_ms(gen, 15 * SECOND, 0.5, n, shift=0.3 * t.intent + 0.4 * t.price_sensitivity)
    t_pricing = t_land + (dwell * gen.uniform(0.2, 0.8, n)).astype(np.int64)
    card = choose(gen, np.array([0.4, 0.45, 0.15]), np.outer(t.price_sensitivity, [0.9, 0.0, -0.9]))
    blocks.add(
        "pricing_view",
        idx[pricing],
        t_pricing[pricing],
        sess0.filter(pricing),
        page_path="/pricing",
        pricing_time_spent_ms=pricing_ms[pricing],
        plan_viewed=select(labels(PLAN_CARDS, card), pricing),
    )
    faq_base = np.log(config.faq_rate / (1 - config.faq_rate))
    faq = landed & bernoulli(gen, faq_base + 0.4 * t.price_sensitivity + 0.3 * t.quality_bar)
    privacy = (clickers.ad_angle == ANGLES.index("privacy")).astype(float)
    topic_scores = np.column_stack(
        [t.price_sensitivity, 1.5 * privacy, t.quality_bar, np.zeros(n), 0.6 * t.price_sensitivity]
    )
    topic = choose(gen, np.full(len(FAQ_TOPICS), 1.0 / len(FAQ_TOPICS)), topic_scores)
    blocks.add(
        "faq_expand",
        idx[faq],
        (t_land + (dwell * gen.uniform(0.1, 0.9, n)).astype(np.int64))[faq],
        sess0.filter(faq),
        page_path="/",
        faq_topic=select(labels(FAQ_TOPICS, topic), faq),
    )
    blocks.add(
        "cta_click",
        idx[cta],
        times.cta[cta],
        sess0.filter(cta),
        page_path="/",
        time_on_landing_before_cta_ms=dwell[cta],
        time_to_first_cta_click_ms=(times.cta - times.click)[cta],
    )
