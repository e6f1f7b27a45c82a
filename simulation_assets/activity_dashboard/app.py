"""The dashboard's web app: one HTML page that polls a JSON view of the store, and a monitor-check action.

Routes:
  GET  /              the page (plain HTML, CSS and JavaScript; no build step)
  GET  /api/state     customers, live metrics, recent ticks and events, open and closed interventions
  POST /api/monitor   run one monitor check now; returns what it opened and closed
  GET  /healthz       liveness and the last tick
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import polars as pl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from simulation_assets.activity_dashboard.ticker import Ticker
from simulation_assets.core.activity.config import ActivityConfig
from simulation_assets.sinks.activity_store import ActivityStore

_PAGE = "page.html"
# The feed shows the newest tick first and, within a tick, what a person acts on before routine calls.
_FEED_ORDER = {
    k: i
    for i, k in enumerate(
        [
            "error_spike",
            "new_customer",
            "first_api_call",
            "error_fix",
            "trend_change",
            "subscribed",
            "api_calls",
        ]
    )
}


def _iso(value: object) -> object:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _records(frame: pl.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    return [{k: _iso(v) for k, v in row.items()} for row in frame.select(columns).iter_rows(named=True)]


def state_payload(
    store: ActivityStore, cfg: ActivityConfig, seed: int, ticker: Ticker | None = None
) -> dict[str, Any]:
    """Return the dashboard's JSON view of the store (and of the ticker, when one runs)."""
    snap = store.snapshot(ticks=40, closed=25, event_ticks=3)
    customers, log, open_ = snap["customers"], snap["tick_log"], snap["open"]
    counts = {r["status"]: r["n"] for r in snap["counts"].to_dicts()}
    last = log.tail(1).to_dicts()[0] if log.height else {}
    stages = {r["stage"]: r["len"] for r in customers.group_by("stage").len().to_dicts()}
    active = customers.filter(pl.col("stage") == "ACTIVE")
    by_type = {r["type"]: r["len"] for r in open_.group_by("type").len().to_dicts()}
    flags = open_.group_by("customer_id").agg(pl.col("type").sort().alias("open_interventions"))
    table = (
        customers.join(flags, on="customer_id", how="left")
        .with_columns(pl.col("open_interventions").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .sort("customer_no")
    )
    checks = snap["checks"]
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "simulation": {
            "seed": seed,
            "store": store.location(),
            "tick": int(last.get("tick", 0)),
            "last_tick_at": _iso(last.get("applied_at")),
            "tick_seconds": cfg.tick_seconds,
            "error_threshold": cfg.error_rate_threshold,
            "ticker": ticker.status() if ticker else None,
        },
        "metrics": {
            "customers": customers.height,
            "stage_new": stages.get("NEW", 0),
            "stage_onboarding": stages.get("ONBOARDING", 0),
            "stage_active": stages.get("ACTIVE", 0),
            "total_api_calls": int(customers["total_api_calls"].sum()) if customers.height else 0,
            "api_calls_last_tick": int(last.get("api_calls", 0)),
            "mean_error_rate": float(active["error_rate"].mean()) if active.height else 0.0,
            "over_threshold": customers.filter(pl.col("error_rate") > cfg.error_rate_threshold).height,
            "open_interventions": counts.get("open", 0),
            "closed_interventions": counts.get("closed", 0),
            "open_by_type": by_type,
            "monitor_checks": int(checks["check_no"].max()) if checks.height else 0,
        },
        "series": _records(log, ["tick", "api_calls", "mean_error_rate", "customers"]),
        "customers": _records(
            table,
            [
                "name",
                "stage",
                "plan",
                "total_api_calls",
                "calls_last_tick",
                "last_api_call_at",
                "error_rate",
                "usage_trend",
                "created_tick",
                "open_interventions",
            ],
        ),
        "open": _records(open_, ["customer_name", "type", "reason", "opened_tick", "opened_at"]),
        "closed": _records(
            snap["closed"],
            ["customer_name", "type", "close_reason", "opened_tick", "closed_tick", "closed_at"],
        ),
        "events": _records(
            snap["events"]
            .with_columns(pl.col("kind").replace_strict(_FEED_ORDER, default=len(_FEED_ORDER)).alias("rank"))
            .sort(["tick", "rank", "seq"], descending=[True, False, False]),
            ["tick", "kind", "message"],
        ),
        "last_check": _records(checks.tail(1), list(checks.columns))[0] if checks.height else None,
    }


def create_app(
    store: ActivityStore,
    cfg: ActivityConfig,
    seed: int,
    ticker: Ticker | None = None,
    refresh_seconds: float = 2.0,
) -> Starlette:
    """Return the dashboard app over ``store``; ``ticker`` (optional) is stopped on shutdown."""
    page = resources.files(__package__).joinpath(_PAGE).read_text(encoding="utf-8")
    page = page.replace("__REFRESH_MS__", str(int(refresh_seconds * 1000)))

    def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    def api_state(request: Request) -> JSONResponse:
        return JSONResponse(state_payload(store, cfg, seed, ticker))

    def api_monitor(request: Request) -> JSONResponse:
        outcome = store.run_monitor(cfg, source="dashboard")
        return JSONResponse(
            {
                "check_no": outcome.check_no,
                "tick": outcome.tick,
                "opened": outcome.opened,
                "closed": outcome.closed,
                "open_after": outcome.open_after,
                "opened_rows": _records(outcome.result.opened, ["customer_name", "type", "reason"]),
                "closed_rows": _records(outcome.result.closed, ["customer_name", "type", "close_reason"]),
            }
        )

    def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "tick": store.last_tick()})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if ticker is not None:
            ticker.stop(timeout=5.0)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/state", api_state),
            Route("/api/monitor", api_monitor, methods=["POST"]),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )
