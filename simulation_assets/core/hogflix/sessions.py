"""Sessions: one per persona visit, expanded from the day's persona table.

The persona table decides who visits, when (``session_start_at``) and how much
(videos, completion, ratings, watchlist adds, FlixBuddy); this module adds what
a visit needs to become events: a UUIDv7 session id, the device, the entry
point, how many titles were opened and listing pages seen around the videos
watched, and support tickets. Draws come from one stream per day, so a
30-minute window is a plain filter of its day's sessions.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from simulation_assets.core import rng as rng_mod
from simulation_assets.core.hogflix.catalog import GENRES
from simulation_assets.core.hogflix.config import TraitsConfig
from simulation_assets.core.hogflix.ids import hash_unit, uuid7s
from simulation_assets.core.hogflix.traffic_config import ENTRY_POINTS, TrafficConfig
from simulation_assets.core.hogflix.traits import REGIONS, genre_affinity
from simulation_assets.core.hogflix.traits import region as traits_region

MS_PER_MINUTE = 60_000
WINDOW_MS = 30 * MS_PER_MINUTE

# Device mix Desktop/Mobile/Tablet 5/3/1 (PostHog's streaming demo); OS and browser per device.
DEVICES = (
    # device_type, $os, $browser, screen width, screen height, weight
    ("Desktop", "Windows", "Chrome", 1920, 1080, 2.6),
    ("Desktop", "Mac OS X", "Safari", 1512, 982, 1.4),
    ("Desktop", "Mac OS X", "Chrome", 1728, 1117, 0.6),
    ("Desktop", "Linux", "Firefox", 1920, 1080, 0.4),
    ("Mobile", "iOS", "Mobile Safari", 390, 844, 1.7),
    ("Mobile", "Android", "Chrome", 412, 915, 1.3),
    ("Tablet", "iOS", "Mobile Safari", 820, 1180, 0.7),
    ("Tablet", "Android", "Chrome", 800, 1280, 0.3),
)

SESSION_SCHEMA: dict[str, pl.DataType] = {
    "session_id": pl.String(),
    "partition_key": pl.String(),
    "session_start_at": pl.Datetime("ms", "UTC"),
    "persona_number": pl.Int64(),
    "distinct_id": pl.String(),
    "anon_distinct_id": pl.String(),
    "device_id": pl.String(),
    "user_id": pl.String(),
    "profile_id": pl.String(),
    "email": pl.String(),
    "signed_up_at": pl.Datetime("ms", "UTC"),
    "plan": pl.String(),
    "source": pl.String(),
    "state": pl.String(),
    "activity_pattern": pl.String(),
    "is_signup": pl.Boolean(),
    "entry_point": pl.String(),
    "genre": pl.String(),
    "videos": pl.Int32(),
    "autoplay_videos": pl.Int32(),  # of ``videos``, those started from the previous watch page
    "titles_opened": pl.Int32(),
    "listing_pages": pl.Int32(),
    "completion_percent": pl.Float64(),
    "ratings": pl.Int32(),
    "avg_rating": pl.Float32(),  # the persona-day's mean stars (from the lifecycle)
    "watchlist_adds": pl.Int32(),
    "flixbuddy": pl.Boolean(),
    "conversation_id": pl.String(),
    "binge_mode": pl.Boolean(),
    "plan_change": pl.Int8(),  # +1 upgrade, -1 downgrade on this visit, 0 none
    "previous_plan": pl.String(),
    "support_tickets": pl.Int32(),
    "device_type": pl.String(),
    "os": pl.String(),
    "browser": pl.String(),
    "screen_width": pl.Int32(),
    "screen_height": pl.Int32(),
    "country": pl.String(),
    "timezone": pl.String(),  # IANA name of the persona's region
    "second_device": pl.Boolean(),  # the session used the persona's second device
    "is_synthetic": pl.Boolean(),
}


def window_key(start_ms: int) -> str:
    """Return the half-hourly partition key (``YYYY-MM-DD-HH:MM``) of a window start."""
    return dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC).strftime("%Y-%m-%d-%H:%M")


def window_start_ms(key: str) -> int:
    """Return the start (ms since epoch, UTC) of a half-hourly partition key."""
    moment = dt.datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _negative_binomial(g: np.random.Generator, successes: np.ndarray, p: float) -> np.ndarray:
    """Failures before ``successes`` successes with success probability ``p`` (0 where successes is 0)."""
    if p >= 1.0:
        return np.zeros_like(successes)
    return np.where(successes > 0, g.negative_binomial(np.maximum(successes, 1), p), 0).astype(np.int32)


def day_sessions(
    personas: pl.DataFrame, seed: int, cfg: TrafficConfig, traits: TraitsConfig | None = None
) -> pl.DataFrame:
    """Return one session per active persona of one day's persona table (``SESSION_SCHEMA``).

    ``videos``, ``completion_percent``, ``ratings``, ``watchlist_adds`` and
    ``flixbuddy`` are the persona table's numbers for the day, unchanged. The genre a
    session browses follows the persona's genre affinity (``traits``); device and
    region belong to the persona: a primary device, and a second one for a share of
    sessions.
    """
    traits = traits or TraitsConfig()
    active = personas.filter(pl.col("active_today") & pl.col("session_start_at").is_not_null())
    if active.is_empty():
        return pl.DataFrame(schema=SESSION_SCHEMA)
    day = active["snapshot_date"][0]
    g = rng_mod.stream(seed, "hogflix", "sessions", day.isoformat())
    n = active.height
    number = active["persona_number"].to_numpy().astype(np.int64)
    start_ms = active["session_start_at"].dt.epoch("ms").to_numpy().astype(np.int64)
    created_ms = active["created_at"].dt.epoch("ms").to_numpy().astype(np.int64)
    videos = active["videos_today"].to_numpy().astype(np.int32)
    u = g.random((5, n))

    # Entry point: FlixBuddy exactly when the persona asks FlixBuddy today (10 % of active users,
    # matching the 10 % entry share); the others by their relative weights.
    flix = active["flixbuddy_today"].to_numpy()
    others = [e for e in ENTRY_POINTS if e != "flixbuddy"]
    w = np.array([cfg.entry_weights[e] for e in others])
    other_idx = np.searchsorted(np.cumsum(w) / w.sum(), u[0], side="right").clip(0, len(others) - 1)
    entry = np.where(flix, "flixbuddy", np.asarray(others, dtype=object)[other_idx])
    if traits.enabled:  # the genre a session browses follows the persona's taste
        cdf = np.cumsum(genre_affinity(seed, number, traits.genre_concentration), axis=1)
        genre_idx = (u[1][:, None] >= cdf).sum(axis=1).clip(0, len(GENRES) - 1)
    else:
        genre_idx = np.floor(u[1] * len(GENRES)).astype(int)
    genre = np.asarray(GENRES, dtype=object)[genre_idx]

    # Videos played straight from the previous watch page (next episode); the others are browsed:
    # titles opened but not played, and listing pages left without a click, around them.
    autoplay = g.binomial(np.maximum(videos - 1, 0), cfg.autoplay_next_probability).astype(np.int32)
    browsed = videos - autoplay
    not_started = _negative_binomial(g, browsed, cfg.start_probability)
    opened = browsed + not_started
    skipped = _negative_binomial(g, opened, cfg.open_probability)
    tickets = np.where(
        u[2] < cfg.support_ticket_probability,
        1 + (u[3] < cfg.extra_ticket_probability) * (1 + g.geometric(0.5, n)),
        0,
    )
    tickets = np.minimum(tickets, cfg.support_tickets_per_user_hour).astype(np.int32)

    # Devices and region belong to the persona, not the day: hashes of the persona number. A share of
    # sessions uses the persona's second device (another type: a phone beside the laptop).
    dev_w = np.array([d[5] for d in DEVICES])
    cum = np.cumsum(dev_w) / dev_w.sum()
    first = np.searchsorted(cum, hash_unit(seed, 11, number), side="right").clip(0, len(DEVICES) - 1)
    second = np.searchsorted(cum, hash_unit(seed, 16, number), side="right").clip(0, len(DEVICES) - 1)
    types = np.array([d[0] for d in DEVICES], dtype=object)
    second = np.where(
        types[second] == types[first], (second + 4) % len(DEVICES), second
    )  # desktops 0-3, others 4-7
    signup = active["signed_up_today"].to_numpy()
    on_second = (u[4] < cfg.second_device_share) & ~signup  # a signup's first visit is on its first device
    dev = np.where(on_second, second, first)
    region = traits_region(seed, number)
    device_id = pl.Series(
        np.where(
            on_second,
            uuid7s(created_ms - 50_000, seed, 17, number).to_numpy(),
            uuid7s(created_ms - 60_000, seed, 13, number).to_numpy(),
        ),
        dtype=pl.String,
    )

    out = active.select(
        "persona_number",
        "distinct_id",
        "user_id",
        "profile_id",
        "email",
        "source",
        "session_start_at",
        pl.col("created_at").alias("signed_up_at"),
        pl.col("plan").cast(pl.String),
        pl.col("state").cast(pl.String),
        pl.col("activity_pattern").cast(pl.String),
        pl.col("videos_today").alias("videos"),
        pl.col("completion_today").alias("completion_percent"),
        pl.col("ratings_today").alias("ratings"),
        pl.col("avg_rating_today").alias("avg_rating"),
        pl.col("watchlist_adds_today").alias("watchlist_adds"),
        pl.col("flixbuddy_today").alias("flixbuddy"),
        pl.col("binge_mode_today").alias("binge_mode"),
        pl.col("plan_changed_today").alias("plan_change"),
        pl.col("previous_plan").cast(pl.String),
    ).with_columns(
        uuid7s(start_ms, seed, 14, number).alias("session_id"),
        pl.when(pl.Series(flix))
        .then(uuid7s(start_ms, seed, 15, number))
        .otherwise(None)
        .alias("conversation_id"),
        pl.Series("partition_key", [window_key(int(m) - int(m) % WINDOW_MS) for m in start_ms.tolist()]),
        # Before signing up a visitor is anonymous: posthog-js uses the device id as distinct id.
        pl.when(pl.Series(signup)).then(device_id).otherwise(None).alias("anon_distinct_id"),
        device_id.alias("device_id"),
        pl.Series("is_signup", signup),
        pl.Series("entry_point", entry.tolist(), dtype=pl.String),
        pl.Series("genre", genre.tolist(), dtype=pl.String),
        pl.Series("autoplay_videos", autoplay),
        pl.Series("titles_opened", opened),
        pl.Series("listing_pages", opened + skipped),
        pl.Series("support_tickets", tickets),
        pl.Series("device_type", [DEVICES[i][0] for i in dev.tolist()]),
        pl.Series("os", [DEVICES[i][1] for i in dev.tolist()]),
        pl.Series("browser", [DEVICES[i][2] for i in dev.tolist()]),
        pl.Series("screen_width", np.array([d[3] for d in DEVICES])[dev].astype(np.int32)),
        pl.Series("screen_height", np.array([d[4] for d in DEVICES])[dev].astype(np.int32)),
        pl.Series("country", [REGIONS[i][0] for i in region.tolist()]),
        pl.Series("timezone", [REGIONS[i][3] for i in region.tolist()]),
        pl.Series("second_device", on_second),
        pl.lit(True).alias("is_synthetic"),
    )
    return out.select([pl.col(k).cast(t) for k, t in SESSION_SCHEMA.items()]).sort("session_start_at")


def window_sessions(day_frames: list[pl.DataFrame], start_ms: int, end_ms: int) -> pl.DataFrame:
    """Return the sessions of ``day_frames`` (outputs of ``day_sessions``) that start in [start_ms, end_ms)."""
    frames = [f for f in day_frames if not f.is_empty()]
    if not frames:
        return pl.DataFrame(schema=SESSION_SCHEMA)
    start = pl.col("session_start_at").dt.epoch("ms")
    return pl.concat(frames).filter((start >= start_ms) & (start < end_ms)).sort("session_start_at")


def day_window_keys(date: dt.date) -> list[str]:
    """Return the 48 half-hourly partition keys of a UTC day, in order."""
    start = int(dt.datetime.combine(date, dt.time(), dt.UTC).timestamp() * 1000)
    return [window_key(start + i * WINDOW_MS) for i in range(48)]
