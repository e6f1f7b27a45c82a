"""Event-level cohorts: one day's ad clickers walking S0-S11 and emitting canonical events.

Every user's path is decided with whole-array draws (one uniform per transition),
then each event type is emitted as one block of rows for the users (or jobs,
orders ...) it applies to. Timestamps are chained with positive delays, so on
every path landing < CTA < signup < login < credits < upload < job < download,
and purchases fall within seven days of login, returns within 30 days.

Identity follows the plan's stitching rule: browser events carry the anonymous
``distinct_id`` and, from ``login_success`` on, also the ``user_id``; server and
worker events after login use the ``user_id`` as ``distinct_id``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from simulation_assets.core.funnel.config import CohortConfig, Plan
from simulation_assets.core.funnel.hazard import churn_probability, intent_probability
from simulation_assets.core.funnel.schema import TOP_LEVEL_COLUMNS, polars_type
from simulation_assets.core.funnel.taxonomy import PROPERTIES, TAXONOMY
from simulation_assets.core.rng import stream

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# Attribution catalogue (this project's choice): campaigns x adsets x ads, one creative per ad.
_CAMPAIGNS = ("purchase_prospecting_broad_us", "purchase_retargeting_30d", "lead_lookalike_creators")
_ANGLES = ("ugc_deliverable", "quality", "speed", "privacy")
_GEOS = ("US", "GB", "CA", "DE", "BR", "IN")
_GEO_P = (0.5, 0.1, 0.08, 0.08, 0.08, 0.16)
_DEVICES = ("mobile", "desktop", "tablet")
_DEVICE_P = (0.6, 0.35, 0.05)
_NETWORKS = ("wifi", "4g", "5g", "ethernet")
_PLATFORMS = ("tiktok", "sora", "runway", "unknown")
_PLATFORM_P = (0.5, 0.25, 0.15, 0.10)
_POSITIONS = ("edge", "corner", "center", "unknown")
_RESOLUTIONS = ("720p", "1080p", "4k")
_RESOLUTION_P = (0.3, 0.6, 0.1)
_FAILURES = ("timeout", "no_watermark_found", "unsupported_codec", "storage_error", "gpu_out_of_memory")
_FAILURE_P = (0.35, 0.25, 0.15, 0.15, 0.10)
_FAQ_TOPICS = ("pricing", "privacy", "quality", "formats", "refunds")


USER_TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "user": pl.Int64(),
    "anon_id": pl.String(),
    "user_id": pl.String(),
    "intent": pl.Float64(),
    **{
        name: pl.Boolean()
        for name in (
            "landed",
            "clicked_cta",
            "signed_up",
            "logged_in",
            "credits_granted",
            "uploaded",
            "job_completed",
            "aha",
            "purchased",
        )
    },
    "purchase_probability": pl.Float64(),
    "churn_hazard": pl.Float64(),
    "retained": pl.Boolean(),
    "churned": pl.Boolean(),
    "credits_left_day7": pl.Int64(),
}
"""Columns of a cohort's ground-truth users frame (one row per ad clicker)."""


@dataclass
class Cohort:
    """A simulated daily cohort: the events and the users' ground truth (for checks and tests)."""

    events: pl.DataFrame
    users: pl.DataFrame
    impressions: int


@dataclass
class _Blocks:
    """Accumulates blocks of events that share a shape; turned into one frame at the end."""

    frames: list[pl.DataFrame] = field(default_factory=list)

    def add(
        self,
        event: str,
        user: np.ndarray,
        t_ms: np.ndarray,
        session: pl.Series | np.ndarray,
        **props: object,
    ) -> None:
        if len(user) == 0:
            return
        cols: dict[str, object] = {
            "user": pl.Series(user, dtype=pl.Int64),
            "t_ms": pl.Series(np.asarray(t_ms, dtype=np.int64)),
            "session_id": session if isinstance(session, pl.Series) else pl.Series(session, dtype=pl.String),
        }
        for name, value in props.items():
            spec = PROPERTIES[name]
            dtype = polars_type(spec)
            if isinstance(value, pl.Series):
                cols[name] = value.cast(dtype)
            elif isinstance(value, np.ndarray) and value.dtype == object:
                cols[name] = pl.Series(value.tolist(), dtype=dtype)
            elif isinstance(value, np.ndarray):
                cols[name] = pl.Series(value).cast(dtype)
            else:
                cols[name] = pl.repeat(value, len(user), dtype=dtype, eager=True)
        frame = pl.DataFrame(cols).with_columns(
            pl.lit(event).alias("event"), pl.lit(TAXONOMY[event].source).alias("source")
        )
        self.frames.append(frame)


def hex_ids(gen: np.random.Generator, n: int, prefix: str, nbytes: int = 12) -> pl.Series:
    """Return ``n`` ids ``prefix`` + 2*``nbytes`` random hex digits (deterministic for the stream)."""
    raw = gen.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    raw[:, -1] |= 1  # numpy drops trailing zero bytes of fixed-width bytes; keep the width
    hexed = pl.Series(raw.view(f"S{nbytes}").ravel()).bin.encode("hex")
    return (prefix + hexed).rename("id") if n else pl.Series("id", [], dtype=pl.String)


def _null_unless(keep: np.ndarray, values: pl.Series) -> pl.Series:
    """Return ``values`` where ``keep`` is true and null elsewhere."""
    return (
        values.to_frame("v")
        .select(pl.when(pl.lit(pl.Series(keep, dtype=pl.Boolean))).then(pl.col("v")))
        .to_series()
        .rename(values.name)
    )


def _lognormal_ms(
    gen: np.random.Generator, median_ms: float, sigma: float, n: int, shift: np.ndarray | float = 0.0
) -> np.ndarray:
    return np.maximum(1, median_ms * np.exp(sigma * gen.standard_normal(n) + shift)).astype(np.int64)


def _labels(choices: tuple[str, ...], index: np.ndarray) -> pl.Series:
    """Return ``choices[index]`` as a string Series (no per-row Python, no numpy unicode)."""
    return pl.Series(list(choices), dtype=pl.String).gather(np.asarray(index, dtype=np.int64))


def _pick(
    gen: np.random.Generator, choices: tuple[str, ...], p: tuple[float, ...] | None, n: int
) -> pl.Series:
    return _labels(choices, gen.choice(len(choices), size=n, p=p))


def _sel(values: pl.Series | np.ndarray, mask: np.ndarray) -> pl.Series | np.ndarray:
    """Return the rows of ``values`` (numpy or polars) where ``mask`` is true."""
    if isinstance(values, pl.Series):
        return values.filter(pl.Series(mask, dtype=pl.Boolean))
    return values[mask]


def _bucket_duration(seconds: np.ndarray) -> pl.Series:
    return _labels(
        ("0-10s", "10-30s", "30-60s", "60s+"), np.searchsorted([10, 30, 60], seconds, side="right")
    )


def _bucket_size(nbytes: np.ndarray) -> pl.Series:
    index = np.searchsorted([50, 150, 500], nbytes / 1e6, side="right")
    return _labels(("0-50mb", "50-150mb", "150-500mb", "500mb+"), index)


def _latency_bucket(ms: np.ndarray) -> pl.Series:
    return _labels(("<30s", "30-120s", ">120s"), np.searchsorted([30_000, 120_000], ms, side="right"))


def cohort_seed_keys(day: dt.date) -> tuple[object, ...]:
    """Return the rng keys of a day's cohort."""
    return ("funnel", "cohort_events", day.isoformat())


def simulate_cohort_events(
    day: dt.date, config: CohortConfig, seed: int, impressions: int | None = None
) -> Cohort:
    """Return the events and users of the cohort that clicked an ad on ``day`` (UTC).

    ``impressions`` defaults to ``config.impressions_per_day``; clicks are Binomial(impressions, ctr).
    """
    n_impr = config.impressions_per_day if impressions is None else impressions
    if n_impr < 0:
        raise ValueError(f"impressions must be >= 0, got {n_impr}")
    gen = stream(seed, *cohort_seed_keys(day))
    r = config.rates
    n = int(gen.binomial(n_impr, r.ctr))
    if n == 0:
        return Cohort(
            events=empty_events_frame(), users=pl.DataFrame(schema=USER_TRUTH_SCHEMA), impressions=n_impr
        )
    day_ms = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)
    B = _Blocks()
    idx = np.arange(n, dtype=np.int64)

    # --- who the users are (per-user attributes, joined onto every event at the end) ---
    ad = gen.integers(0, len(_CAMPAIGNS) * 6, size=n)  # 3 campaigns x 2 adsets x 3 ads
    camp, adset = ad // 6, ad // 3
    is_meta = gen.random(n) < 0.8
    anon = hex_ids(gen, n, "anon_")
    usr = hex_ids(gen, n, "usr_", 8)
    sess0 = hex_ids(gen, n, "sess_")
    click_ids = hex_ids(gen, n, "", 16)
    intent = gen.standard_normal(n)
    users = pl.DataFrame(
        {
            "user": idx,
            "anon_id": anon,
            "usr_id": usr,
            "experiment_variant": _labels(("control", "treatment"), (gen.random(n) < 0.5).astype(np.int64)),
            "utm_source": _labels(("google", "facebook"), is_meta.astype(np.int64)),
            "ad_platform": _labels(("google", "meta"), is_meta.astype(np.int64)),
            "utm_campaign": _labels(_CAMPAIGNS, camp),
            "utm_adset": "adset_" + pl.Series(adset).cast(pl.String).str.pad_start(2, "0"),
            "utm_content": "cr_" + pl.Series(ad).cast(pl.String).str.pad_start(3, "0"),
            "campaign_id": pl.Series(camp + 120_200_000).cast(pl.String),
            "adset_id": pl.Series(adset + 230_400_000).cast(pl.String),
            "ad_id": pl.Series(ad + 340_600_000).cast(pl.String),
            "creative_id": "cr_" + pl.Series(ad).cast(pl.String).str.pad_start(3, "0"),
            "ad_angle": _labels(_ANGLES, ad % len(_ANGLES)),
            "fbclid": _null_unless(is_meta, "IwAR" + click_ids),
            "gclid": _null_unless(~is_meta, "Cj0K" + click_ids),
            "referrer": _labels(
                ("https://www.google.com/", "https://l.facebook.com/"), is_meta.astype(np.int64)
            ),
            "landing_variant": _labels(("hero_v4", "hero_v3"), (gen.random(n) < 0.5).astype(np.int64)),
            "device": _pick(gen, _DEVICES, _DEVICE_P, n),
            "geo": _pick(gen, _GEOS, _GEO_P, n),
            "device_network_type": _pick(gen, _NETWORKS, None, n),
            "email_domain_type": _pick(gen, ("gmail", "work", "custom"), (0.7, 0.2, 0.1), n),
        }
    ).with_columns(
        pl.col("landing_variant").alias("landing_variant_id"),
        pl.col("utm_source").alias("first_touch_channel"),
    )

    # --- the path through the state machine: one uniform per transition (section 5) ---
    u = gen.random((10, n))
    landed = u[0] < r.p_land
    cta = landed & (u[1] < r.p_cta)
    signed = cta & (u[2] < r.p_signup)
    logged = signed & (u[3] < r.p_login)
    credited = logged & (u[4] < r.p_credits)
    uploaded = credited & (u[5] < r.p_upload)
    completed = uploaded & (u[6] < r.p_job_success)
    aha = completed & (u[7] < r.p_download)
    p_buy = intent_probability(r.p_purchase, config.purchase_intent_strength, intent)
    purchased = aha & (u[8] < p_buy)

    # --- acquisition (category A) ---
    t_click = day_ms + gen.integers(0, DAY, size=n)
    t_land = t_click + gen.integers(500, 3 * SECOND, size=n)
    dwell = _lognormal_ms(gen, 20 * SECOND, 0.6, n, shift=-0.3 * intent)
    t_cta = t_land + dwell
    B.add("ad_click", idx, t_click, sess0, page_path="/")
    L = idx[landed]
    scroll = np.array([25, 50, 75, 100])[np.clip((gen.random(n) * 3 + (intent > 0)).astype(int), 0, 3)]
    B.add(
        "landing_view",
        L,
        t_land[landed],
        sess0.filter(landed),
        page_path="/",
        scroll_depth_bucket=scroll[landed],
    )
    consent = landed & (gen.random(n) < config.consent_banner_rate)
    ads_ok = gen.random(n) < 0.7
    B.add(
        "cookie_consent_updated",
        idx[consent],
        (t_land + dwell // 20)[consent],
        sess0.filter(consent),
        page_path="/",
        ads_allowed=ads_ok[consent],
        analytics_allowed=np.ones(int(consent.sum()), dtype=bool),
    )
    p_pricing = 1 / (
        1 + np.exp(-(np.log(config.pricing_view_base / (1 - config.pricing_view_base)) + intent))
    )
    pricing = landed & (gen.random(n) < p_pricing)
    pricing_ms = _lognormal_ms(gen, 15 * SECOND, 0.5, n, shift=0.4 * intent)
    t_pricing = t_land + (dwell * gen.uniform(0.2, 0.8, n)).astype(np.int64)
    B.add(
        "pricing_view",
        idx[pricing],
        t_pricing[pricing],
        sess0.filter(pricing),
        page_path="/pricing",
        pricing_time_spent_ms=pricing_ms[pricing],
    )
    faq = landed & (gen.random(n) < config.faq_rate)
    B.add(
        "faq_expand",
        idx[faq],
        (t_land + (dwell * gen.uniform(0.1, 0.9, n)).astype(np.int64))[faq],
        sess0.filter(faq),
        page_path="/",
        faq_topic=_sel(_pick(gen, _FAQ_TOPICS, None, n), faq),
    )
    B.add(
        "cta_click",
        idx[cta],
        t_cta[cta],
        sess0.filter(cta),
        page_path="/",
        time_on_landing_before_cta_ms=dwell[cta],
    )

    # --- activation (category B) ---
    t_sstart = t_cta + gen.integers(SECOND, 3 * SECOND, size=n)
    t_submit = t_sstart + _lognormal_ms(gen, 40 * SECOND, 0.4, n)
    t_sent = t_submit + SECOND
    t_deliv = t_sent + gen.integers(SECOND, 5 * SECOND, size=n)
    t_link = t_deliv + _lognormal_ms(gen, 3 * MINUTE, 0.8, n)
    t_login = t_link + 1_500
    t_credit = t_login + 500
    t_onboard = t_login + 2 * SECOND
    t_upview = t_onboard + _lognormal_ms(gen, 10 * SECOND, 0.5, n)
    t_activation = t_upview + 200
    B.add("signup_start", idx[cta], t_sstart[cta], sess0.filter(cta), page_path="/signup")
    B.add("signup_submit", idx[signed], t_submit[signed], sess0.filter(signed), page_path="/signup")
    B.add("auth_email_sent", idx[signed], t_sent[signed], sess0.filter(signed))
    B.add("auth_email_delivered", idx[signed], t_deliv[signed], sess0.filter(signed))
    opened = signed & (logged | (gen.random(n) < 0.3)) & (gen.random(n) < 0.7)
    t_open = t_deliv + ((t_link - t_deliv) * gen.uniform(0.2, 0.9, n)).astype(np.int64)
    B.add("auth_email_opened", idx[opened], t_open[opened], sess0.filter(opened))
    B.add(
        "auth_email_link_clicked",
        idx[logged],
        t_link[logged],
        sess0.filter(logged),
        page_path="/auth/callback",
    )
    B.add("login_success", idx[logged], t_login[logged], sess0.filter(logged), page_path="/auth/callback")
    B.add(
        "credits_granted",
        idx[credited],
        t_credit[credited],
        sess0.filter(credited),
        credits_added=config.free_credits,
        credits_before=0,
        credits_after=config.free_credits,
    )
    B.add("onboarding_view", idx[logged], t_onboard[logged], sess0.filter(logged), page_path="/welcome")
    B.add("upload_view", idx[credited], t_upview[credited], sess0.filter(credited), page_path="/app")
    B.add(
        "activation_complete", idx[credited], t_activation[credited], sess0.filter(credited), page_path="/app"
    )

    # --- jobs (category C): the first job of every uploader, then first-week jobs of aha users ---
    U = idx[uploaded]
    first = _job_attributes(gen, len(U))
    first.update(
        user=U,
        t0=t_activation[U] + _lognormal_ms(gen, 30 * SECOND, 0.5, len(U)),
        first=np.ones(len(U), bool),
        success=completed[U],
        download=aha[U],
        session=sess0.gather(U),
    )
    tf = _job_timeline(gen, first, config)
    t_first_dl = np.zeros(n, dtype=np.int64)
    t_first_dl[U] = tf["download"]
    lam = config.extra_jobs_first_week * np.exp(0.3 * intent - 0.045)
    n_extra = np.minimum(gen.poisson(lam), config.free_credits - 1) * aha
    X = np.repeat(idx, n_extra)
    window = np.maximum(t_login[X] + 7 * DAY - 20 * MINUTE - t_first_dl[X], MINUTE)
    extra = _job_attributes(gen, len(X))
    extra.update(
        user=X,
        t0=t_first_dl[X] + MINUTE + (gen.random(len(X)) * window).astype(np.int64),
        first=np.zeros(len(X), bool),
        session=hex_ids(gen, len(X), "sess_"),
    )
    extra["success"] = gen.random(len(X)) < r.p_job_success
    extra["download"] = extra["success"] & (gen.random(len(X)) < r.p_download)
    tx = _job_timeline(gen, extra, config)
    jobs = {
        k: (
            pl.concat([first[k], extra[k]])
            if isinstance(first[k], pl.Series)
            else np.concatenate([first[k], extra[k]])
        )
        for k in first
    }
    t = {k: np.concatenate([tf[k], tx[k]]) for k in tf}
    jobs_user, jobs_success = jobs["user"], jobs["success"]
    nj = len(jobs_user)

    # --- credits ledger: grant, -1 per job, +1 per refund, + purchases; balances by cumulative sum ---
    t_buy = np.zeros(n, dtype=np.int64)
    remaining = np.maximum(t_login + 7 * DAY - t_first_dl - 10 * MINUTE, MINUTE)
    t_buy[purchased] = (
        t_first_dl[purchased]
        + 5 * MINUTE
        + (remaining[purchased] * gen.beta(0.7, 2.5, int(purchased.sum()))).astype(np.int64)
    )
    plans = config.plans
    weights = np.array([p.weight for p in plans])
    plan_idx = gen.choice(len(plans), size=n, p=weights / weights.sum())
    plan_credits = np.array([p.credits for p in plans])[plan_idx]
    buyers = idx[purchased]
    t_paid = t_buy + 2 * MINUTE
    ledger = (
        pl.concat(
            [
                pl.DataFrame(
                    {"user": idx[credited], "t": t_credit[credited], "delta": config.free_credits, "job": -1}
                ),
                pl.DataFrame({"user": jobs_user, "t": t["created"], "delta": -1, "job": np.arange(nj)}),
                pl.DataFrame(
                    {
                        "user": jobs_user[~jobs_success],
                        "t": t["outcome"][~jobs_success] + SECOND,
                        "delta": 1,
                        "job": -2,
                    }
                ),
                pl.DataFrame(
                    {"user": buyers, "t": t_paid[purchased], "delta": plan_credits[purchased], "job": -3}
                ),
            ],
            how="vertical_relaxed",
        )
        .sort(["user", "t"])
        .with_columns(pl.col("delta").cum_sum().over("user").alias("balance"))
    )
    job_bal = ledger.filter(pl.col("job") >= 0).sort("job")["balance"].to_numpy()
    jobs["credits_after"] = job_bal
    jobs["credits_before"] = job_bal + 1
    day7 = t_login + 7 * DAY
    bal7 = (
        ledger.filter(pl.col("t") <= pl.lit(pl.Series(day7)).gather(pl.col("user")))
        .group_by("user")
        .agg(pl.col("balance").last())
    )
    credits_left = np.zeros(n, dtype=np.int64)
    credits_left[bal7["user"].to_numpy()] = bal7["balance"].to_numpy()

    _emit_jobs(B, gen, jobs, t, config, returning=False)

    # --- churn hazard from the first week (section 6), retention with the template's repeat rate ---
    jf = (
        pl.DataFrame(
            {
                "user": jobs_user,
                "t": t["outcome"],
                "fail": ~jobs_success,
                "proc_min": jobs["processing_time_ms"] / 60_000,
                "ticket": jobs["support"],
            }
        )
        .group_by("user")
        .agg(
            pl.col("t").filter(~pl.col("fail")).max().alias("last_ok"),
            pl.col("t").max().alias("last_any"),
            pl.col("fail").mean().alias("fail_rate"),
            pl.col("proc_min").mean(),
            pl.col("ticket").sum(),
        )
    )
    days_since = np.zeros(n)
    fail_rate = np.zeros(n)
    proc_min = np.zeros(n)
    tickets = np.zeros(n, dtype=np.int64)
    ju = jf["user"].to_numpy()
    last_job = jf["last_ok"].fill_null(jf["last_any"]).to_numpy()
    days_since[ju] = np.clip((day7[ju] - last_job) / DAY, 0, 7)
    fail_rate[ju] = jf["fail_rate"].to_numpy()
    proc_min[ju] = jf["proc_min"].to_numpy()
    tickets[ju] = jf["ticket"].to_numpy()
    hazard = churn_probability(config.hazard, days_since, fail_rate, proc_min, credits_left, tickets)
    retained = aha & (u[9] < (1.0 - hazard)) & (gen.random(n) < r.p_repeat_30d)
    churned = uploaded & ~retained

    # --- purchase machine (category D) within 7 days of login ---
    _emit_purchases(
        B,
        gen,
        config,
        buyers,
        t_buy[purchased],
        plan_idx[purchased],
        credits_left,
        retained,
        churned,
        t_login,
    )

    # --- returning usage (category E) within 30 days: one returning session with a successful job ---
    R = idx[retained]
    t_ret = day7[R] + DAY + (gen.random(len(R)) * 21 * DAY).astype(np.int64)
    r_sess = hex_ids(gen, len(R), "sess_")
    last_seen = np.maximum(t_first_dl, t_login)
    B.add(
        "return_session",
        R,
        t_ret,
        r_sess,
        page_path="/app",
        days_since_last_visit=((t_ret - last_seen[R]) // DAY),
    )
    need_topup = credits_left[R] <= 0
    T = R[need_topup]
    _emit_order(
        B,
        gen,
        "topup_purchased",
        T,
        t_ret[need_topup] + MINUTE,
        r_sess.filter(need_topup),
        config.plans[0],
        ltv=None,
    )
    rj = _job_attributes(gen, len(R))
    rj.update(
        user=R,
        t0=t_ret + 5 * MINUTE,
        first=np.zeros(len(R), bool),
        success=np.ones(len(R), bool),
        download=gen.random(len(R)) < r.p_download,
    )
    rj["credits_before"] = credits_left[R] + np.where(need_topup, config.plans[0].credits, 0)
    rj["credits_after"] = rj["credits_before"] - 1
    rt = _job_timeline(gen, rj, config)
    _emit_jobs(B, gen, rj, rt, config, returning=True, session=r_sess)

    # --- account control (category G) for a few churned users ---
    # buyers are left out so no billing event follows a deleted account
    leaving = churned & logged & ~purchased & (gen.random(n) < config.deletion_rate_of_churned)
    t_leave = day7 + (gen.random(n) * 20 * DAY).astype(np.int64)
    leave_sess = hex_ids(gen, n, "sess_")
    export = leaving & (gen.random(n) < 0.3)
    B.add(
        "data_export_requested",
        idx[export],
        t_leave[export] - HOUR,
        leave_sess.filter(export),
        page_path="/account",
    )
    B.add(
        "account_deletion_started",
        idx[leaving],
        t_leave[leaving],
        leave_sess.filter(leaving),
        page_path="/account",
    )
    B.add("account_deleted", idx[leaving], t_leave[leaving] + DAY, leave_sess.filter(leaving))

    events = _assemble(B, users, t_login, logged, config, gen)
    truth = pl.DataFrame(
        {
            "user": idx,
            "anon_id": anon,
            "user_id": usr,
            "intent": intent,
            "landed": landed,
            "clicked_cta": cta,
            "signed_up": signed,
            "logged_in": logged,
            "credits_granted": credited,
            "uploaded": uploaded,
            "job_completed": completed,
            "aha": aha,
            "purchased": purchased,
            "purchase_probability": np.where(aha, p_buy, 0.0),
            "churn_hazard": np.where(aha, hazard, np.nan),
            "retained": retained,
            "churned": churned,
            "credits_left_day7": credits_left,
        }
    )
    return Cohort(events=events, users=truth, impressions=n_impr)


def _job_attributes(gen: np.random.Generator, nj: int) -> dict[str, np.ndarray]:
    """Return the content attributes of ``nj`` jobs (section 2C and 9B)."""
    duration = np.round(gen.gamma(2.0, 12.0, nj) + 2, 1)
    res = gen.choice(len(_RESOLUTIONS), size=nj, p=_RESOLUTION_P)
    rate = np.array([0.6e6, 1.5e6, 5e6])[res]  # bytes per second of video
    video_bytes = (duration * rate * gen.uniform(0.7, 1.3, nj)).astype(np.int64)
    platform = gen.choice(len(_PLATFORMS), size=nj, p=_PLATFORM_P)
    unknown = platform == _PLATFORMS.index("unknown")
    return {
        "mode": _labels(("crop", "inpaint"), (gen.random(nj) < 0.6).astype(np.int64)),
        "detected_platform": _labels(_PLATFORMS, platform),
        "watermark_confidence": np.round(
            np.where(unknown, gen.uniform(0.3, 0.7, nj), gen.uniform(0.75, 0.99, nj)), 3
        ),
        "watermark_position": _pick(gen, _POSITIONS, (0.3, 0.5, 0.1, 0.1), nj),
        "video_bytes": video_bytes,
        "duration_seconds": duration,
        "resolution": _labels(("1280x720", "1920x1080", "3840x2160"), res),
        "resolution_bucket": _labels(_RESOLUTIONS, res),
        "video_duration_bucket": _bucket_duration(duration),
        "file_size_bucket": _bucket_size(video_bytes),
        "audio_present": gen.random(nj) < 0.8,
        "job_id": hex_ids(gen, nj, "job_"),
        "upload_id": hex_ids(gen, nj, "upl_"),
    }


def _job_timeline(
    gen: np.random.Generator, jobs: dict[str, np.ndarray], config: CohortConfig
) -> dict[str, np.ndarray]:
    """Fill in processing time, failures and support, and return the timestamps of each job step."""
    nj = len(jobs["user"])
    slow = gen.random(nj) < config.churn.slow_rate  # the template's "slow job" share
    proc = np.where(
        slow, _lognormal_ms(gen, 200 * SECOND, 0.3, nj), _lognormal_ms(gen, 55 * SECOND, 0.35, nj)
    )
    proc = (proc * (1 + jobs["duration_seconds"] / 120)).astype(np.int64)
    jobs["processing_time_ms"] = proc
    jobs["queue_wait_ms"] = _lognormal_ms(gen, 8 * SECOND, 0.7, nj)
    jobs["status_poll_count"] = 1 + proc // 5000
    jobs["retry_count"] = np.where(jobs["success"], 0, gen.integers(0, 3, nj))
    reason = gen.choice(len(_FAILURES), size=nj, p=_FAILURE_P)
    failed = ~jobs["success"]
    jobs["failure_reason"] = _null_unless(failed, _labels(_FAILURES, reason))
    jobs["error_code"] = _null_unless(failed, _labels(tuple("E_" + r.upper() for r in _FAILURES), reason))
    jobs["support"] = (~jobs["success"]) & (gen.random(nj) < config.support_rate_per_failure)
    upload_ms = (jobs["video_bytes"] / 2e6 * 1000).astype(np.int64) + 500
    t: dict[str, np.ndarray] = {"upload_started": jobs["t0"]}
    t["upload_completed"] = t["upload_started"] + upload_ms
    t["created"] = t["upload_completed"] + 800
    t["detected"] = t["created"] + gen.integers(SECOND, 3 * SECOND, nj)
    t["started"] = t["detected"] + jobs["queue_wait_ms"]
    t["outcome"] = t["started"] + proc
    t["download"] = t["outcome"] + _lognormal_ms(gen, 20 * SECOND, 0.5, nj)
    return t


_JOB_PROPS = (
    "job_id",
    "mode",
    "detected_platform",
    "watermark_confidence",
    "video_bytes",
    "duration_seconds",
    "resolution",
    "credits_before",
    "credits_after",
)
_CONTENT_PROPS = (
    "watermark_position",
    "video_duration_bucket",
    "resolution_bucket",
    "file_size_bucket",
    "audio_present",
)


def _emit_jobs(
    B: _Blocks,
    gen: np.random.Generator,
    jobs: dict[str, np.ndarray],
    t: dict[str, np.ndarray],
    config: CohortConfig,
    returning: bool,
    session: pl.Series | None = None,
) -> None:
    """Emit upload, job, outcome, download, reliability and notification events of the given jobs."""
    nj = len(jobs["user"])
    if nj == 0:
        return
    sess = session if session is not None else jobs["session"]
    user = jobs["user"]
    base = {k: jobs[k] for k in _JOB_PROPS}
    content = {k: jobs[k] for k in _CONTENT_PROPS}
    if returning:
        B.add("upload_returning_user", user, t["upload_started"] - 200, sess, upload_id=jobs["upload_id"])
    B.add("upload_started", user, t["upload_started"], sess, page_path="/app", upload_id=jobs["upload_id"])
    B.add(
        "upload_completed",
        user,
        t["upload_completed"],
        sess,
        page_path="/app",
        upload_id=jobs["upload_id"],
        video_bytes=jobs["video_bytes"],
    )
    first = pl.Series(jobs["first"])
    B.add(
        "job_created",
        user,
        t["created"],
        sess,
        **base,
        **content,
        mode_selected=jobs["mode"],
        is_first_job=first,
    )
    B.add("watermark_detected", user, t["detected"], sess, **base, **content)
    B.add("processing_started", user, t["started"], sess, **base, queue_wait_ms=jobs["queue_wait_ms"])
    ok = jobs["success"]
    outcome = dict(
        base,
        **content,
        processing_time_ms=jobs["processing_time_ms"],
        success_bool=ok,
        success=ok,
        failure_reason=jobs["failure_reason"],
        failure_reason_code=jobs["failure_reason"],
        error_code=jobs["error_code"],
        queue_wait_ms=jobs["queue_wait_ms"],
        retry_count=jobs["retry_count"],
        status_poll_count=jobs["status_poll_count"],
        is_first_job=first,
    )

    def sub(mask: np.ndarray, values: dict[str, object]) -> dict[str, object]:
        return {k: _sel(v, mask) for k, v in values.items()}  # type: ignore[arg-type]

    fmask = pl.Series(~ok)
    okm = pl.Series(ok)
    B.add("processing_completed", user[ok], t["outcome"][ok], sess.filter(okm), **sub(ok, outcome))
    B.add("processing_failed", user[~ok], t["outcome"][~ok], sess.filter(fmask), **sub(~ok, outcome))
    lat = _latency_bucket(jobs["processing_time_ms"])
    B.add(
        "latency_bucket",
        user[ok],
        t["outcome"][ok] + 5,
        sess.filter(okm),
        job_id=_sel(jobs["job_id"], ok),
        latency_bucket=_sel(lat, ok),
        processing_time_ms=jobs["processing_time_ms"][ok],
    )
    if returning:
        B.add(
            "job_completed_returning_user",
            user[ok],
            t["outcome"][ok] + 10,
            sess.filter(okm),
            job_id=_sel(jobs["job_id"], ok),
        )
    notify = ok & (gen.random(nj) < 0.9)
    B.add(
        "notification_sent",
        user[notify],
        t["outcome"][notify] + SECOND,
        sess.filter(pl.Series(notify)),
        job_id=_sel(jobs["job_id"], notify),
    )
    clicked = notify & (gen.random(nj) < config.notification_click_rate) & ~jobs["download"]
    B.add(
        "notification_clicked",
        user[clicked],
        t["outcome"][clicked] + 10 * MINUTE,
        sess.filter(pl.Series(clicked)),
        job_id=_sel(jobs["job_id"], clicked),
    )
    # failures: refund, an error toast, reason-specific reliability events, sometimes a ticket
    fu, ft, fs = user[~ok], t["outcome"][~ok], sess.filter(fmask)
    after = jobs["credits_after"][~ok]
    B.add(
        "job_refunded",
        fu,
        ft + SECOND,
        fs,
        job_id=_sel(jobs["job_id"], ~ok),
        credits_before=after,
        credits_after=after + 1,
    )
    code = _sel(jobs["error_code"], ~ok)
    B.add(
        "error_shown",
        fu,
        ft + 2 * SECOND,
        fs,
        page_path="/app",
        error_code=code,
        job_id=_sel(jobs["job_id"], ~ok),
    )
    reason = _sel(jobs["failure_reason"], ~ok)
    to = (reason == "timeout").to_numpy()
    B.add(
        "job_timeout",
        fu[to],
        ft[to] - 10,
        fs.filter(pl.Series(to)),
        job_id=_sel(_sel(jobs["job_id"], ~ok), to),
    )
    st = (reason == "storage_error").to_numpy()
    B.add(
        "storage_error",
        fu[st],
        ft[st] - 10,
        fs.filter(pl.Series(st)),
        job_id=_sel(_sel(jobs["job_id"], ~ok), st),
        error_code=code.filter(pl.Series(st)),
    )
    B.add(
        "api_error",
        fu[st],
        ft[st] - 5,
        fs.filter(pl.Series(st)),
        error_code=code.filter(pl.Series(st)),
        endpoint="/api/jobs",
    )
    sup = jobs["support"][~ok]
    B.add(
        "support_contacted",
        fu[sup],
        ft[sup] + 15 * MINUTE,
        fs.filter(pl.Series(sup)),
        ticket_reason=_sel(reason, sup),
        job_id=_sel(_sel(jobs["job_id"], ~ok), sup),
    )
    # success: download (the aha moment the first time), share, low-credit warning
    dl = jobs["download"]
    dls = pl.Series(dl)
    B.add(
        "download_clicked",
        user[dl],
        t["download"][dl],
        sess.filter(dls),
        page_path="/app",
        job_id=_sel(jobs["job_id"], dl),
    )
    B.add(
        "download_completed",
        user[dl],
        t["download"][dl] + gen.integers(SECOND, 4 * SECOND, nj)[dl],
        sess.filter(dls),
        job_id=_sel(jobs["job_id"], dl),
    )
    share = dl & (gen.random(nj) < config.share_rate)
    B.add(
        "share_clicked",
        user[share],
        t["download"][share] + 10 * SECOND,
        sess.filter(pl.Series(share)),
        job_id=_sel(jobs["job_id"], share),
    )
    low = ok & (jobs["credits_after"] <= 1)
    B.add(
        "low_credits_warning_shown",
        user[low],
        t["outcome"][low] + 3 * SECOND,
        sess.filter(pl.Series(low)),
        page_path="/app",
        credits_after=jobs["credits_after"][low],
    )
    topc = low & (gen.random(nj) < 0.3)
    B.add(
        "low_credits_topup_clicked",
        user[topc],
        t["outcome"][topc] + 8 * SECOND,
        sess.filter(pl.Series(topc)),
        page_path="/app",
        credits_after=jobs["credits_after"][topc],
    )


def _emit_order(
    B: _Blocks,
    gen: np.random.Generator,
    event: str,
    user: np.ndarray,
    t_ms: np.ndarray,
    session: pl.Series,
    plan: Plan,
    ltv: np.ndarray | None,
    order_ids: pl.Series | None = None,
) -> np.ndarray:
    """Emit one monetization event per user for ``plan``; return the prices charged."""
    n = len(user)
    price = np.full(n, plan.price)
    B.add(
        event,
        user,
        t_ms,
        session,
        order_id=order_ids if order_ids is not None else hex_ids(gen, n, "ord_"),
        sku=plan.sku,
        plan=plan.plan,
        billing_period=plan.billing_period,
        price=price,
        currency="USD",
        credits_added=plan.credits,
        coupon=pl.Series([None] * n, dtype=pl.String),
        payment_provider="stripe",
        is_trial=False,
        ltv_to_date=price if ltv is None else ltv,
    )
    return price


def _emit_purchases(
    B: _Blocks,
    gen: np.random.Generator,
    config: CohortConfig,
    buyers: np.ndarray,
    t_buy: np.ndarray,
    plan_idx: np.ndarray,
    credits_left: np.ndarray,
    retained: np.ndarray,
    churned: np.ndarray,
    t_login: np.ndarray,
) -> None:
    """Emit the first-week purchase of each buyer and what follows it within the horizon."""
    for k, plan in enumerate(config.plans):
        m = plan_idx == k
        users, tb = buyers[m], t_buy[m]
        nb = len(users)
        if nb == 0:
            continue
        sess = hex_ids(gen, nb, "sess_")
        orders = hex_ids(gen, nb, "ord_")
        price = np.full(nb, plan.price)
        coupon = gen.random(nb) < 0.1
        paid = np.where(coupon, np.round(plan.price * 0.9, 2), plan.price)
        B.add(
            "pricing_view",
            users,
            tb - 2 * MINUTE,
            sess,
            page_path="/pricing",
            pricing_time_spent_ms=_lognormal_ms(gen, 20 * SECOND, 0.5, nb),
            selected_pack=plan.sku,
        )
        mon = dict(
            order_id=orders,
            sku=plan.sku,
            plan=plan.plan,
            billing_period=plan.billing_period,
            price=paid,
            currency="USD",
            credits_added=plan.credits,
            coupon=_null_unless(coupon, pl.Series(np.full(nb, "WELCOME10"))),
            payment_provider="stripe",
            is_trial=False,
            ltv_to_date=np.zeros(nb),
        )
        B.add(
            "checkout_started",
            users,
            tb - MINUTE,
            sess,
            **mon,
            credits_balance_at_checkout=credits_left[users],
        )
        B.add("checkout_step", users, tb - 30 * SECOND, sess, order_id=orders, step="payment_details")
        mon["ltv_to_date"] = paid
        B.add("purchase_completed", users, tb, sess, **mon)
        follow = "topup_purchased" if plan.billing_period == "one-time" else "subscription_started"
        B.add(follow, users, tb + SECOND, sess, **mon)
        refunded = gen.random(nb) < config.refund_rate
        rmon = {
            k2: (
                v.filter(pl.Series(refunded))
                if isinstance(v, pl.Series)
                else (v[refunded] if isinstance(v, np.ndarray) else v)
            )
            for k2, v in mon.items()
        }
        rmon["ltv_to_date"] = np.zeros(int(refunded.sum()))
        B.add(
            "refund_issued", users[refunded], tb[refunded] + 2 * DAY, sess.filter(pl.Series(refunded)), **rmon
        )
        keep = ~refunded
        ret = retained[users] & keep
        if plan.billing_period == "monthly":
            # retained subscribers renew at 30 and 60 days; churned ones cancel within the first month
            for months in (1, 2):
                rs = hex_ids(gen, nb, "sess_")
                fail = ret & (gen.random(nb) < config.invoice_fail_rate)
                t_renew = tb + months * 30 * DAY
                ltv = paid + months * plan.price
                B.add(
                    "invoice_failed",
                    users[fail],
                    t_renew[fail] - DAY,
                    rs.filter(pl.Series(fail)),
                    **_mask(mon, fail, ltv_to_date=(ltv - plan.price)[fail]),
                )
                B.add(
                    "subscription_renewed",
                    users[ret],
                    t_renew[ret],
                    rs.filter(pl.Series(ret)),
                    **_mask(mon, ret, ltv_to_date=ltv[ret], price=np.full(int(ret.sum()), plan.price)),
                )
        cancel = churned[users] & keep & (plan.billing_period != "one-time")
        t_cancel = t_login[users] + 8 * DAY + (gen.random(nb) * 20 * DAY).astype(np.int64)
        B.add(
            "subscription_canceled",
            users[cancel],
            t_cancel[cancel],
            hex_ids(gen, int(cancel.sum()), "sess_"),
            **_mask(mon, cancel, ltv_to_date=paid[cancel]),
        )
        if plan.billing_period == "one-time":
            # retained pack buyers often buy again in the second month (LTV 60/90)
            again = ret & (gen.random(nb) < config.topup_rate_of_retained)
            t_again = t_login[users] + 31 * DAY + (gen.random(nb) * 28 * DAY).astype(np.int64)
            _emit_order(
                B,
                gen,
                "topup_purchased",
                users[again],
                t_again[again],
                hex_ids(gen, int(again.sum()), "sess_"),
                plan,
                ltv=(paid + plan.price)[again],
            )
        del price


def _mask(mon: dict[str, object], m: np.ndarray, **override: object) -> dict[str, object]:
    out = {}
    for k, v in mon.items():
        if isinstance(v, pl.Series):
            out[k] = v.filter(pl.Series(m))
        elif isinstance(v, np.ndarray):
            out[k] = v[m]
        else:
            out[k] = v
    out.update(override)
    return out


def _assemble(
    B: _Blocks,
    users: pl.DataFrame,
    t_login: np.ndarray,
    logged: np.ndarray,
    config: CohortConfig,
    gen: np.random.Generator,
) -> pl.DataFrame:
    """Join per-user attribution onto the event blocks and apply the identity rule; return the events frame."""
    if not B.frames:
        return empty_events_frame()
    ev = pl.concat(B.frames, how="diagonal_relaxed")
    login = pl.Series(np.where(logged, t_login, np.iinfo(np.int64).max))
    # users row i is user i: a positional gather instead of a hash join
    ev = pl.concat([ev, users.drop("user").select(pl.all().gather(ev["user"]))], how="horizontal")
    after_login = login.gather(ev["user"]) <= ev["t_ms"]
    ev = ev.with_columns(
        after_login.alias("_after"),
    ).with_columns(
        pl.when(pl.col("_after")).then(pl.col("usr_id")).otherwise(None).alias("user_id"),
        pl.when(pl.col("_after") & (pl.col("source") != "web"))
        .then(pl.col("usr_id"))
        .otherwise(pl.col("anon_id"))
        .alias("distinct_id"),
        pl.from_epoch(pl.col("t_ms"), time_unit="ms").dt.replace_time_zone("UTC").alias("timestamp"),
        pl.lit(config.environment).alias("environment"),
    )
    # Rows stay grouped by event type (sorting ~80 mostly-null columns costs more than generating them).
    ev = ev.with_columns(hex_ids(gen, ev.height, "evt_").alias("event_id"))
    return conform(ev)


def event_columns() -> list[tuple[str, pl.DataType]]:
    """Return the columns of an events frame: the top-level fields, then every known property."""
    top: list[tuple[str, pl.DataType]] = [
        ("event", pl.String()),
        ("timestamp", pl.Datetime("ms", "UTC")),
        ("source", pl.String()),
        ("environment", pl.String()),
        ("distinct_id", pl.String()),
        ("user_id", pl.String()),
        ("session_id", pl.String()),
    ]
    return top + [(name, polars_type(spec)) for name, spec in sorted(PROPERTIES.items())]


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with exactly the events-frame columns, in order and typed (missing ones null)."""
    cols = []
    for name, dtype in event_columns():
        if name in frame.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(cols)


def empty_events_frame() -> pl.DataFrame:
    """Return an events frame with no rows."""
    return pl.DataFrame(schema=dict(event_columns()))


assert set(TOP_LEVEL_COLUMNS) <= {name for name, _ in event_columns()}
