"""App usage: users' log-in sessions, the pages they view and the features they use inside them.

The three tables share their sessions: chunk ``k`` of page views and of feature usage falls inside
chunk ``k`` of the user sessions, so each chunk is built from the same session arrays.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulation_assets.core.warehouse import geography
from simulation_assets.core.warehouse.generators import health, iot
from simulation_assets.core.warehouse.generators.app import TIER_ORDER
from simulation_assets.core.warehouse.sampling import (
    DAY,
    HOUR,
    choice,
    cumulative_shares,
    labels,
    local_index,
    to_seconds,
    ts,
)

if TYPE_CHECKING:
    from simulation_assets.core.warehouse.generate import Warehouse

ERROR_CODES = ["timeout", "validation_error", "sync_failed"]
ERROR_CODE_SHARES = [0.5, 0.3, 0.2]


def user_weights(wh: Warehouse) -> dict[str, np.ndarray]:
    """Return each user's share of the sessions (role weight x active days), life span and account."""
    table = wh.whole("users")
    account = table["account_id"].to_numpy() - 1
    _, acc_end = wh.account_span
    created = to_seconds(table["created_at"])
    end = acc_end[account]
    role_weight = table["role"].replace_strict(wh.cfg.users.login_weight, return_dtype=pl.Float64).to_numpy()
    # sessions per day follow the account's monthly health: exp(engagement_sensitivity x health)
    monthly = np.exp(wh.cfg.health.engagement_sensitivity * wh.account_health.astype(np.float64))
    # and the calendar (season, weekday, holidays) at ``calendar.app_strength``: a month's mean day weight here,
    # the days inside a month in ``session_arrays``
    calendar = app_calendar(wh)
    edges = health.month_edges(wh)
    at = iot.calendar_position(calendar["cumulative"], calendar["origin"], edges)
    days = np.maximum(np.diff(np.minimum(edges, wh.history_end)) / DAY, 1e-9)
    monthly = monthly * (np.diff(at) / days)[None, :]
    engaged_days = (monthly[account] * health.exposure(wh, created, end)).sum(axis=1) / DAY
    weight = role_weight * engaged_days
    return {
        "p": weight / weight.sum(),
        "created": created,
        "end": end,
        "account": account,
        "cdf": health.month_cdf(wh, monthly),
    }


def app_calendar(wh: Warehouse) -> dict[str, np.ndarray]:
    """Return the cumulative day weights of the calendar damped to ``calendar.app_strength`` and its first day."""
    origin, weights = iot.calendar_weights(wh, wh.cfg.calendar.app_strength)
    return {"cumulative": np.concatenate([[0.0], np.cumsum(weights)]), "origin": np.int64(origin)}


def within_month_by_calendar(
    wh: Warehouse, calendar: dict[str, np.ndarray], when: np.ndarray, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """Move times drawn uniformly inside their health month (clipped to [low, high)) to the same quantile of
    the calendar's weight over that stretch: the month keeps its sessions, its days follow the calendar."""
    edges = health.month_edges(wh)
    m = health.month_of(wh, when)
    a, b = np.maximum(edges[m], low), np.minimum(edges[m + 1], high)
    frac = np.clip((when - a) / np.maximum(b - a, 1), 0.0, 1.0)
    cumulative, origin = calendar["cumulative"], int(calendar["origin"])
    ca, cb = iot.calendar_position(cumulative, origin, a), iot.calendar_position(cumulative, origin, b)
    return np.clip(iot.calendar_seconds(cumulative, origin, ca + frac * (cb - ca)), low, high - 1)


def session_arrays(wh: Warehouse, k: int) -> dict[str, np.ndarray]:
    """Return the arrays of user-session chunk ``k``: id, user, account, start, duration, device."""
    start, stop = wh.chunk_rows("user_sessions", k)
    rng, n = wh.rng("user_sessions", k), stop - start
    weights = wh.user_weights
    counts = rng.multinomial(n, weights["p"])
    user, _ = local_index(counts)
    low, high = weights["created"][user], weights["end"][user]
    # the day follows the account's health month by month, the hour the activity curve
    when = health.weighted_times(wh, weights["cdf"], weights["account"][user], low, high, rng.random(n))
    when = within_month_by_calendar(wh, wh.app_calendar, when, low, high)
    day = np.clip(when // DAY, low // DAY + 1, high // DAY - 1)
    hour_cdf = cumulative_shares(wh.cfg.activity.hour_weights)
    hour = np.searchsorted(hour_cdf, rng.random(n, dtype=np.float32), side="right").clip(0, 23)
    started = day * DAY + hour * HOUR + rng.integers(0, HOUR, n)
    minutes = np.exp(rng.normal(np.log(wh.cfg.activity.median_session_minutes), 0.8, n))
    duration = np.maximum((minutes * 60).astype(np.int64), 30)
    return {"id": np.arange(start + 1, stop + 1), "user": user, "account": weights["account"][user],
            "started": started, "duration": duration, "device": choice(rng, n, wh.cfg.activity.device_types)}  # fmt: skip


def user_sessions(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the log-in sessions (admins and managers log in more than staff)."""
    session = wh.sessions(k)
    # from the user's city, or (travel, phones on mobile data) from anywhere; the address lies in the city's block
    geo, n = wh.rng("user_sessions", k, "geo"), len(session["id"])
    devices = wh.cfg.activity.device_types
    away_share = np.array([wh.cfg.geography.away_session_share.get(d, 0.0) for d in devices])
    away = geo.random(n) < away_share[session["device"]]
    city = np.where(
        away, wh.cities.draw_anywhere(geo, wh.cfg.locations.states, n), wh.user_city[session["user"]]
    )
    return pl.DataFrame(
        {
            "session_id": session["id"],
            "user_id": session["user"] + 1,
            "account_id": session["account"] + 1,
            "started_at": ts(session["started"]),
            "ended_at": ts(session["started"] + session["duration"]),
            "duration_seconds": session["duration"].astype(np.int32),
            "device_type": labels(session["device"], wh.cfg.activity.device_types),
            "ip_address": geography.dotted(geography.addresses(geo, city)),
            "state": wh.cities.state_labels(city),
            "city": wh.cities.city_labels(city),
        }
    )


def page_graph(wh: Warehouse) -> dict[str, np.ndarray]:
    """Return the cumulative entry and transition tables of the page graph, per role: ``entry[role, page]`` and
    ``step[role, from, to]`` (each row cumulative, ending at 1)."""
    activity = wh.cfg.activity
    pages, roles = list(activity.pages), list(wh.cfg.users.roles)
    entry = np.array([activity.entry_pages.get(p, 0.0) for p in pages]) + 1e-3
    links = np.full((len(pages), len(pages)), activity.page_jump_weight)
    for source, targets in activity.page_links.items():
        for target, weight in targets.items():
            links[pages.index(source), pages.index(target)] += weight
    interest = np.array([[activity.role_page_interest.get(r, {}).get(p, 1.0) for p in pages] for r in roles])
    entry_by_role = entry[None, :] * interest
    # scale each target page so that the walk's long-run share of views matches ``pages`` (for the role mix)
    target = np.array([activity.pages[p] for p in pages])
    role_share = np.array(list(wh.cfg.users.roles.values()))
    scale = np.ones(len(pages))
    for _ in range(50):
        step = links[None, :, :] * interest[:, None, :] * scale[None, None, :]
        mixed = np.einsum("r,rij->ij", role_share, step / step.sum(axis=2, keepdims=True))
        visits = np.full(len(pages), 1 / len(pages))
        for _ in range(100):
            visits = visits @ mixed
        scale *= (target / visits) ** 0.8
    step = links[None, :, :] * interest[:, None, :] * scale[None, None, :]
    exit_weight = np.array([activity.page_exit_weight.get(p, 1.0) for p in pages])
    bounce_weight = np.array([activity.page_bounce_weight.get(p, 1.0) for p in pages])
    grid = (np.arange(65536) + 0.5) / 65536

    def cdf(weights: np.ndarray) -> np.ndarray:
        return np.cumsum(weights / weights.sum(axis=-1, keepdims=True), axis=-1)

    def lut(cdf: np.ndarray) -> np.ndarray:  # 65,536 quantiles of a distribution -> page index
        return np.minimum(np.searchsorted(cdf, grid, side="right"), len(pages) - 1).astype(np.int8)

    return {
        "entry": np.stack([lut(c) for c in cdf(entry_by_role)]),  # (role, 65536)
        "bounce": np.stack(
            [lut(c) for c in cdf(entry_by_role * bounce_weight[None, :])]
        ),  # one-page sessions
        "step": np.stack([lut(c) for c in cdf(step).reshape(-1, len(pages))]),  # (role x page, 65536)
        "exit": np.stack([lut(c) for c in cdf(step * exit_weight[None, None, :]).reshape(-1, len(pages))]),
        "pages": np.int64(len(pages)),
    }


def markov_pages(
    graph: dict[str, np.ndarray], role: np.ndarray, counts: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Return the page of every view, rows laid out session by session (``counts`` views each): the entry table
    for a session's first view (the bounce table when it is its only view), else the transition table of the
    previous view's page (the exit table for its last view), walked one position at a time for all sessions
    still that long. ``u`` are 16-bit uniforms (0..65535) indexing the tables."""
    page = np.zeros(len(u), dtype=np.int8)
    starts = np.cumsum(counts) - counts
    by_length = starts[np.argsort(-counts, kind="stable")]  # sessions, longest first
    longer_than = np.bincount(counts)[::-1].cumsum()[::-1]  # sessions with at least p views, p = 0, 1, ...

    def at_least(views: int) -> int:
        return int(longer_than[views]) if views < len(longer_than) else 0

    rows = by_length[: at_least(1)]
    page[rows] = graph["entry"][role[rows], u[rows]]
    only = rows[at_least(2) :]  # sessions of one view: they bounced
    page[only] = graph["bounce"][role[only], u[only]]
    step, leave, pages = graph["step"], graph["exit"], graph["pages"]
    for p in range(1, len(longer_than) - 1):
        rows = by_length[: at_least(p + 1)] + p
        going, last = (
            rows[: at_least(p + 2)],
            rows[at_least(p + 2) :],
        )  # longest first: the last views at the end
        page[going] = step[role[going] * pages + page[going - 1], u[going]]
        page[last] = leave[role[last] * pages + page[last - 1], u[last]]
    return page


def _views(wh: Warehouse, k: int, session: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the page views of session chunk ``k`` (session by session, in order) before features are tied."""
    start, stop = wh.chunk_rows("page_views", k)
    rng, n = wh.rng("page_views", k), stop - start
    n_sessions = len(session["id"])
    if n < n_sessions:
        raise ValueError("page_views needs at least one row per user session")
    duration = session["duration"].astype(np.float64)
    counts = 1 + rng.multinomial(n - n_sessions, duration / duration.sum())
    parent, position = local_index(counts)
    views_in_session = counts[parent]
    slot = session["duration"][parent] / views_in_session
    viewed = session["started"][parent] + ((position + rng.random(n)) * slot).astype(np.int64)
    role = wh.user_roles[session["user"][parent]]
    page = markov_pages(wh.page_graph, role, counts, rng.integers(0, 65536, n, dtype=np.int64))
    on_page = np.maximum(slot * (0.5 + rng.random(n)), 1).astype(np.int32)
    return {"parent": parent, "page": page, "viewed": viewed, "on_page": on_page, "position": position,
            "is_exit": position == views_in_session - 1, "id": np.arange(start + 1, stop + 1)}  # fmt: skip


def tie_features_to_pages(
    wh: Warehouse, views: dict[str, np.ndarray], events: dict[str, np.ndarray], u: np.ndarray
) -> np.ndarray:
    """Make every session that uses a feature view the feature's page (``activity.feature_page``) and move each
    feature event into a view of its page; return whether each event found one.

    A session missing a page its events need gets it on a view whose page none of its events needs (the
    n-th missing page on the n-th such view, middle views first, then the exit, the entry last, so entry and
    exit pages keep their patterns); an event then happens while a view of its page is open. Views and
    events are both laid out session by session. ``u`` are two uniforms per event.
    """
    activity = wh.cfg.activity
    pages = list(activity.pages)
    n_pages = len(pages)
    page_of = np.array([pages.index(activity.feature_page[f]) for f in activity.features])
    v_parent, v_page = views["parent"], views["page"]
    e_key = events["parent"] * n_pages + page_of[events["feature"]]
    needed = _sorted_unique(e_key)
    v_key = v_parent * n_pages + v_page
    missing = needed[~_contains(np.sort(v_key), needed)]
    free = np.flatnonzero(~_contains(needed, v_key))
    priority = np.where(views["position"][free] == 0, 2, np.where(views["is_exit"][free], 1, 0))
    free = free[np.argsort(v_parent[free] * 3 + priority, kind="stable")]

    def rank(parents: np.ndarray) -> np.ndarray:  # position among the rows of the same (sorted) parent
        return np.arange(len(parents)) - np.searchsorted(parents, parents, side="left")

    width = np.int64(max(len(v_parent), 1))
    free_key = v_parent[free] * width + rank(v_parent[free])
    m_parent = missing // n_pages
    m_key = m_parent * width + rank(m_parent)
    at = np.minimum(np.searchsorted(free_key, m_key), max(len(free_key) - 1, 0))
    found = (
        (len(free_key) > 0) & (free_key[at] == m_key) if len(free_key) else np.zeros(len(m_key), dtype=bool)
    )
    v_page[free[at[found]]] = (missing[found] % n_pages).astype(v_page.dtype)
    # each event happens while one of its session's views of its page is open
    v_key = v_parent * n_pages + v_page
    order = np.argsort(v_key, kind="stable")
    low = np.searchsorted(v_key[order], e_key, side="left")
    count = np.searchsorted(v_key[order], e_key, side="right") - low
    hit = count > 0
    view = order[np.minimum(low + (u[0] * count).astype(np.int64), len(order) - 1)]
    end = events["session_end"] - 1
    inside = views["viewed"][view] + (u[1] * views["on_page"][view]).astype(np.int64)
    events["used"] = np.where(hit, np.minimum(np.maximum(inside, views["viewed"][view]), end), events["used"])
    return hit


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Return the distinct values, sorted (a plain sort: faster than ``np.unique``'s hashing on big arrays)."""
    ordered = np.sort(values)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if len(ordered) else ordered


def _contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return whether each of ``values`` is in ``sorted_values``."""
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[at] == values


# The tables built from one session flow: chunk k of each comes from the same computation (``session_flow``), so
# whoever writes them (sinks, defs) writes chunk k of both in one process, one after the other.
SESSION_FLOW_TABLES = ("page_views", "feature_usage")


def session_flow(wh: Warehouse, k: int) -> dict[str, dict[str, np.ndarray]]:
    """Return the page views and feature events of session chunk ``k``, tied together (computed once per chunk,
    whichever of the two tables asks first, from their own streams)."""
    session = wh.sessions(k)
    if "flow" not in session:
        views = _views(wh, k, session)
        events = _events(wh, k, session)
        u = wh.rng("page_views", k, "features").random((2, len(events["feature"])))
        events["on_page"] = tie_features_to_pages(wh, views, events, u)
        session["flow"] = {"views": views, "events": events}  # type: ignore[assignment]
    return session["flow"]  # type: ignore[return-value]


def page_views(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the page views: at least one per session, more in longer sessions, in order; a feature's
    page is viewed in every session that uses the feature."""
    session = wh.sessions(k)
    views = session_flow(wh, k)["views"]
    parent = views["parent"]
    return pl.DataFrame(
        {
            "page_view_id": views["id"],
            "session_id": session["id"][parent],
            "user_id": session["user"][parent] + 1,
            "page_path": labels(views["page"], list(wh.cfg.activity.pages)),
            "viewed_at": ts(views["viewed"]),
            "time_on_page_seconds": views["on_page"],
            "is_exit": views["is_exit"],
        }
    )


def feature_adoption(wh: Warehouse) -> np.ndarray:
    """Return when every account adopts every feature (epoch seconds, accounts x features).

    A feature there from the start is adopted on the account's first day; a later one after its release (or
    the account's creation) plus a lognormal delay whose median is ``adoption_median_days`` x the tier factor,
    shortened by the account's health. Features above the account's tier are never adopted.
    """
    activity = wh.cfg.activity
    names = list(activity.features)
    rng = wh.rng("feature_usage", 0, "adoption")
    created, _ = wh.account_span
    n = len(created)
    release = wh.history_start + (np.array([activity.feature_release_years[f] for f in names]) * 365.25 * DAY)
    tier = wh.tier_codes
    factor = np.array([activity.adoption_tier_factor.get(t, 1.0) for t in TIER_ORDER])[tier]
    median = activity.adoption_median_days * factor * np.exp(-activity.adoption_health_speed * wh.life_health)
    delay = median[:, None] * np.exp(activity.adoption_spread * rng.standard_normal((n, len(names)))) * DAY
    core = np.array([activity.feature_release_years[f] <= 0 for f in names])
    adopt = np.maximum(release[None, :], created[:, None]) + np.where(core[None, :], 0.0, delay)
    allowed = np.array(
        [[TIER_ORDER.index(activity.feature_min_tier.get(f, "Basic")) <= t for f in names] for t in range(3)]
    )
    return np.where(allowed[tier], adopt, np.inf)


def feature_tables(wh: Warehouse) -> np.ndarray:
    """Return, per tier and role (row ``tier x roles + role``), 65,536 quantiles of the feature mix among the
    features the tier allows, each weighted by the role's interest in the feature's page (int16)."""
    activity = wh.cfg.activity
    names = list(activity.features)
    roles = list(wh.cfg.users.roles)
    grid = (np.arange(65536) + 0.5) / 65536
    out = np.zeros((len(TIER_ORDER) * len(roles), 65536), dtype=np.int16)
    for t in range(len(TIER_ORDER)):
        allowed = np.array([TIER_ORDER.index(activity.feature_min_tier.get(f, "Basic")) <= t for f in names])
        for r, role in enumerate(roles):
            interest = activity.role_page_interest.get(role, {})
            taste = np.array([interest.get(activity.feature_page[f], 1.0) for f in names])
            weights = np.fromiter(activity.features.values(), dtype=np.float64) * allowed * taste
            out[t * len(roles) + r] = np.searchsorted(
                np.cumsum(weights) / weights.sum(), grid, side="right"
            ).clip(0, len(names) - 1)
    return out


def in_incident(wh: Warehouse, seconds: np.ndarray) -> np.ndarray:
    """Return whether each epoch second falls inside a known incident."""
    out = np.zeros(len(seconds), dtype=bool)
    for start, days in wh.cfg.activity.incidents:
        begin = (start - dt.date(1970, 1, 1)).days * DAY
        out |= (seconds >= begin) & (seconds < begin + days * DAY)
    return out


def _events(wh: Warehouse, k: int, session: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the feature events of session chunk ``k`` before they are tied to the page views: each picks
    among the features its account has adopted by then (by the features' weights); calls fail more often
    during known incidents."""
    activity = wh.cfg.activity
    start, stop = wh.chunk_rows("feature_usage", k)
    rng, n = wh.rng("feature_usage", k), stop - start
    duration = session["duration"].astype(np.float64)
    counts = rng.multinomial(n, duration / duration.sum())
    parent, _ = local_index(counts)
    account = session["account"][parent]
    names = list(activity.features)
    used = session["started"][parent] + (rng.random(n) * session["duration"][parent]).astype(np.int64)
    # draw by the features' weights among those the tier allows, and draw again (a few rounds) where the
    # account had not adopted the drawn feature by then: a draw among the adopted ones; still none: the core one
    tier = wh.tier_codes[account] * len(wh.cfg.users.roles) + wh.user_roles[session["user"][parent]]
    feature = np.zeros(n, dtype=np.int16)
    pending = np.arange(n)
    for _ in range(12):
        feature[pending] = wh.feature_tables[
            tier[pending], (rng.random(len(pending)) * 65536).astype(np.int64)
        ]
        adopted = wh.feature_adoption_flat[account[pending] * len(names) + feature[pending]] <= used[pending]
        pending = pending[~adopted]
        if not len(pending):
            break
    core = [i for i, f in enumerate(names) if activity.feature_release_years[f] <= 0]
    feature[pending] = core[0]
    rate = np.where(in_incident(wh, used), activity.incident_error_rate, activity.error_rate)
    success = rng.random(n) >= rate
    errors = choice(rng, n, ERROR_CODE_SHARES)
    return {"id": np.arange(start + 1, stop + 1), "parent": parent, "account": account, "feature": feature,
            "used": used, "success": success, "error": errors,
            "session_end": session["started"][parent] + session["duration"][parent]}  # fmt: skip


def feature_usage(wh: Warehouse, k: int) -> pl.DataFrame:
    """Chunk ``k`` of the feature events inside sessions, each while a view of its feature's page is open."""
    activity = wh.cfg.activity
    session = wh.sessions(k)
    events = session_flow(wh, k)["events"]
    parent, feature, success = events["parent"], events["feature"], events["success"]
    names = list(activity.features)
    categories = sorted(set(activity.feature_category.values()))
    category = np.array([categories.index(activity.feature_category[f]) for f in names])[feature]
    return pl.DataFrame(
        {
            "feature_event_id": events["id"],
            "session_id": session["id"][parent],
            "user_id": session["user"][parent] + 1,
            "account_id": events["account"] + 1,
            "feature_name": labels(feature, names),
            "feature_category": labels(category, categories),
            "used_at": ts(events["used"]),
            "success": success,
            "error_code": labels(events["error"], ERROR_CODES).set(pl.Series(success), None),
        }
    )
