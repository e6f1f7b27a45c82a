"""``simulate funnel``: daily ad-click cohorts as events, rates learned back, a Monte Carlo forecast, three models."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from simulation_assets.commands.common import (
    UsageError,
    console,
    dagster_instance,
    iso_date,
    materialize_range,
    positive_int,
    prepare_output,
    progress,
    write_json,
)

if TYPE_CHECKING:
    import polars as pl

# Module-level imports stay in the standard library so `simulate --help` and argument errors are fast;
# the rest is imported once the arguments are known to be good.

DEMO_ORDER = 30
# The fields of core.funnel.config.TransitionRates (a test keeps the two equal), named here so the
# parser is built without importing pydantic.
RATE_NAMES: tuple[str, ...] = (
    "ctr",
    "p_land",
    "p_cta",
    "p_signup",
    "p_login",
    "p_credits",
    "p_upload",
    "p_job_success",
    "p_download",
    "p_purchase",
    "p_repeat_30d",
)
# Event-level cohorts grow with impressions (~0.16 events each); the forecast does not. Beyond this,
# the events are simulated at this size unless --cohort-impressions says otherwise.
COHORT_CAP = 2_000_000


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``funnel`` sub-command."""
    p = sub.add_parser(
        "funnel",
        help="simulate ad-click cohorts through the S0-S11 funnel, learn rates, forecast and train models; "
        "or audit a real event export against the tracking plan ('funnel audit')",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("forecast", "audit"),
        default="forecast",
        help="forecast (default): simulate, learn, forecast, train; audit: check --events EXPORT against the plan",
    )
    p.add_argument(
        "--impressions",
        type=int,
        default=None,
        help="ad impressions in the forecast cohort and in each daily event-level cohort (>= 0; required "
        "for forecast)",
    )
    p.add_argument(
        "--events",
        default=None,
        metavar="EXPORT",
        help="a PostHog event export (batch Parquet/JSON lines, the UI's CSV, or a table with --mapping): what "
        "'audit' checks, and where '--rates learned' learns the rates",
    )
    p.add_argument(
        "--mapping",
        default="",
        metavar="FIELD=COLUMN,...",
        help="columns of a generic export table, e.g. user_id=uid,timestamp=ts,event=name",
    )
    p.add_argument(
        "--cohort-impressions",
        type=int,
        default=None,
        help=f"impressions per daily event-level cohort (default: --impressions, at most {COHORT_CAP:,})",
    )
    p.add_argument(
        "--replicates", type=int, default=10_000, help="Monte Carlo cohorts in the forecast (default 10000)"
    )
    p.add_argument("--days", type=int, default=7, help="daily cohorts to simulate as events (default 7)")
    p.add_argument("--seed", type=int, default=42, help="global random seed (default 42)")
    p.add_argument(
        "--start",
        default=None,
        help="first cohort day YYYY-MM-DD (default: the project's first simulated day, 2026-01-01)",
    )
    p.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="NAME=P",
        help="override a transition rate, e.g. --rate p_purchase=0.12 (repeatable; names: "
        + ", ".join(RATE_NAMES)
        + ")",
    )
    p.add_argument(
        "--rates",
        default="",
        metavar="JSON|FILE",
        help='transition rates as JSON (inline or a .json/.yaml file), e.g. \'{"ctr": 0.03, "p_cta": 0.25}\', '
        "or 'learned' to learn them from --events EXPORT",
    )
    for name in RATE_NAMES:
        p.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"rate_{name}",
            type=float,
            default=None,
            metavar="P",
            help=argparse.SUPPRESS,
        )
    p.add_argument(
        "--config", default="", help="YAML file with CohortConfig overrides (rates, churn, hazard, ...)"
    )
    p.add_argument(
        "--app-db-dsn",
        default=None,
        metavar="DSN",
        help="also write users, credit ledger and purchases rows to this PostgreSQL database (schema funnel_app; "
        "default: $FUNNEL_APP_DB and $FUNNEL_APP_DB_DSN, or none)",
    )
    p.add_argument(
        "--posthog",
        action="store_true",
        help="also post the events to PostHog ($PH_HOST, $PH_PROJECT_API_KEY; default: $FUNNEL_EVENTS_SINK)",
    )
    p.add_argument(
        "--output",
        required=True,
        help="folder for forecast.json, events.parquet, rates.json, models.json (audit: audit.json, audit.md)",
    )
    p.set_defaults(handler=run)


def _rates_document(text: str) -> dict[str, object]:
    """Return the mapping in ``--rates``: inline JSON or a JSON/YAML file."""
    import yaml

    path = Path(text)
    try:
        source = path.read_text() if path.suffix in (".json", ".yaml", ".yml") else text
    except OSError as exc:
        raise UsageError(f"--rates {text!r}: cannot read the file ({exc.strerror})") from None
    try:
        loaded = yaml.safe_load(source)  # JSON is YAML
    except yaml.YAMLError:
        loaded = None
    if not isinstance(loaded, dict):
        raise UsageError(
            f"--rates {text!r}: expected a mapping of rate names to probabilities, e.g. '{{\"ctr\": 0.02}}'"
        )
    return loaded


def parse_rates(
    pairs: list[str], document: str = "", flags: dict[str, float | None] | None = None
) -> dict[str, float]:
    """Return ``{name: probability}`` from ``--rates``, ``NAME=P`` strings and ``--NAME P`` flags (later wins).

    Every name must be a :class:`TransitionRates` field and every value a probability in [0, 1].
    """
    rates: dict[str, float] = {}
    if document:
        for name, value in _rates_document(document).items():
            pairs = [f"{name}={value}", *pairs]
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or name not in RATE_NAMES:
            raise UsageError(f"--rate {pair!r}: expected NAME=P with NAME one of {', '.join(RATE_NAMES)}")
        try:
            rates[name] = float(value)
        except ValueError:
            raise UsageError(
                f"--rate {pair!r}: {value!r} is not a number (a probability between 0 and 1)"
            ) from None
    for name, value in (flags or {}).items():
        if value is not None:
            rates[name] = value
    from pydantic import ValidationError

    from simulation_assets.core.funnel.config import TransitionRates

    try:
        TransitionRates(**rates)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = err["loc"][0]
        raise UsageError(
            f"rate {field}={rates.get(str(field))} is invalid: rates are probabilities and must be between 0 and 1"
        ) from None
    return rates


def validate(args: argparse.Namespace) -> tuple[dict[str, float], dt.date]:
    """Check every input before anything is written; return the rate overrides and the first day."""
    if args.rates == "learned" and not args.events:
        raise UsageError("--rates learned needs --events EXPORT: the event export to learn the rates from")
    if args.events and args.rates != "learned":
        raise UsageError("--events EXPORT is read by 'simulate funnel audit' and by --rates learned")
    if args.impressions is None or args.impressions < 0:
        raise UsageError(f"--impressions must be a non-negative integer, got {args.impressions}")
    if args.cohort_impressions is not None and not 0 <= args.cohort_impressions <= 50_000_000:
        raise UsageError(
            f"--cohort-impressions must be between 0 and 50000000, got {args.cohort_impressions}"
        )
    positive_int("--replicates", args.replicates)
    positive_int("--days", args.days)
    if args.replicates > 1_000_000:
        raise UsageError(f"--replicates must be at most 1000000, got {args.replicates}")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.days > 366:
        raise UsageError(f"--days must be at most 366, got {args.days}")
    flags = {name: getattr(args, f"rate_{name}", None) for name in RATE_NAMES}
    learned = learned_rates(args.events, args.mapping) if args.rates == "learned" else {}
    rates = {**learned, **parse_rates(args.rate, "" if args.rates == "learned" else args.rates, flags)}
    start = iso_date("--start", args.start) if args.start is not None else None
    if args.config and not Path(args.config).is_file():
        raise UsageError(f"--config {args.config!r}: file not found")
    if args.app_db_dsn is not None and not args.app_db_dsn.startswith(
        ("postgresql://", "postgres://", "host=")
    ):
        raise UsageError(
            f"--app-db-dsn {args.app_db_dsn!r}: expected a PostgreSQL connection string (postgresql://...)"
        )
    if args.posthog and not os.environ.get("PH_PROJECT_API_KEY"):
        raise UsageError("--posthog needs the project API key in $PH_PROJECT_API_KEY (and $PH_HOST)")
    if start is None:
        start = dt.date.fromisoformat(_default_start())
    return rates, start


def learned_rates(path: str, mapping: str = "") -> dict[str, float]:
    """Return the transition rates learned from the event export at ``path`` (those it has data for)."""
    from simulation_assets.core.funnel.learn import RATE_FIELDS, learn_rates
    from simulation_assets.sinks.funnel_export import canonical_events

    try:
        learned = learn_rates(canonical_events(path, mapping))
    except ValueError as exc:  # ExportError and bad mappings: the message names the file and the problem
        raise UsageError(f"--events: {exc}") from None
    rates = {field: learned.transitions[step].rate for step, field in RATE_FIELDS.items()}
    rates["p_repeat_30d"] = learned.transitions["S10|S8"].rate
    return {k: float(v) for k, v in rates.items() if v is not None}


def run_audit(args: argparse.Namespace) -> int:
    """Handle ``simulate funnel audit --events EXPORT --output DIR``."""
    from simulation_assets.sinks.funnel_export import audit_export, write_audit

    if not args.events:
        raise UsageError("funnel audit needs --events EXPORT (a PostHog export file, folder or glob)")
    try:
        report = audit_export(args.events, args.mapping)
    except ValueError as exc:
        raise UsageError(f"--events: {exc}") from None
    output = prepare_output(args.output)
    json_path, md_path = write_audit(report, output)
    console.print(
        f"Audit of {report.rows:,} events: {report.events_present}/{report.events_in_plan} plan events present, "
        f"{report.problems} problem(s); absent: {', '.join(report.absent_events) or 'none'}"
    )
    console.print(f"Wrote {json_path} and {md_path}")
    return 0


def _default_start() -> str:
    from simulation_assets.core.calendar import DEFAULT_START_DATE

    return DEFAULT_START_DATE


def simulate(
    impressions: int,
    replicates: int,
    days: int,
    seed: int,
    start: dt.date,
    output: Path,
    rates: dict[str, float] | None = None,
    config_path: str = "",
    quiet: bool = False,
    cohort_impressions: int | None = None,
    events_sink: str | None = None,
    app_db_dsn: str | None = None,
    rates_learned_from: str | None = None,
) -> dict:
    """Materialize the funnel assets for ``days`` cohorts from ``start``; write the four outputs; return the summary."""
    from pydantic import ValidationError

    from simulation_assets.core.funnel.config import CohortConfig
    from simulation_assets.defs.funnel import POSTHOG_ENV, build_defs
    from simulation_assets.sinks.config_files import from_env
    from simulation_assets.sinks.funnel_app_db import FunnelAppDatabase
    from simulation_assets.sinks.funnel_store import FunnelSettings
    from simulation_assets.sinks.funnel_stripe import StripeWebhookSink
    from simulation_assets.sinks.local_store import LocalParquetStore
    from simulation_assets.sinks.meta_capi import MetaCapiSink
    from simulation_assets.sinks.posthog_events import PostHogEvents

    last = start + dt.timedelta(days=days - 1)
    settings = from_env(
        FunnelSettings,
        seed=seed,
        impressions_per_day=min(impressions, COHORT_CAP)
        if cohort_impressions is None
        else cohort_impressions,
        forecast_impressions=impressions,
        replicates=replicates,
        config_path=config_path,
        overrides_json=json.dumps({"rates": rates}) if rates else "",
        first_day=start.isoformat(),
        last_day=last.isoformat(),
        window_days=days,
    )
    try:
        cfg: CohortConfig = settings.cohort_config()
    except (ValidationError, ValueError) as exc:
        raise UsageError(f"invalid funnel configuration: {exc}") from None
    store = LocalParquetStore()
    defs = build_defs(start.isoformat(), (last + dt.timedelta(days=1)).isoformat(), audit=False)
    posthog = from_env(PostHogEvents, POSTHOG_ENV, **({"mode": events_sink} if events_sink else {}))
    app_db = from_env(
        FunnelAppDatabase, None, **({"mode": "postgres", "dsn": app_db_dsn} if app_db_dsn else {})
    )
    stripe = from_env(StripeWebhookSink)
    # The simulation's assets, and deliveries only to destinations that are configured (never the audit,
    # which reads a real export): every asset is a step with its own fixed cost in the run. The settings
    # are read from the same variables the resources bind (resolving the resources here cost ~1 s).
    env = os.environ.get
    skipped: set[str] = set()
    if (events_sink or env("FUNNEL_EVENTS_SINK") or "parquet") != "posthog":
        skipped.add("funnel_posthog_events")
    if not app_db_dsn and (env("FUNNEL_APP_DB") or "off") == "off":
        skipped.add("funnel_app_rows")
    if not (env("FUNNEL_STRIPE_WEBHOOK_URL") and env("FUNNEL_STRIPE_WEBHOOK_SECRET")):
        skipped.add("funnel_stripe_events")
    if not (env("META_CAPI_ENDPOINT") and env("META_CAPI_ACCESS_TOKEN")):
        skipped.add("funnel_capi_events")
    assets = {a.key.to_user_string(): a for a in defs.assets or [] if a.key.to_user_string() not in skipped}
    resources = {
        "funnel_settings": settings,
        "store": store,
        "funnel_capi": from_env(MetaCapiSink),
        "funnel_posthog": posthog,
        "funnel_app_db": app_db,
        "funnel_stripe": stripe,
    }
    instance = dagster_instance()
    started = time.perf_counter()
    with progress() as bar:
        task = bar.add_task(
            f"funnel: {days} daily cohorts of {cfg.impressions_per_day:,} impressions, forecast, models",
            total=1,
            visible=not quiet,
        )
        # One run: the daily cohorts over the range, then rates, forecast, models and CAPI payloads.
        materialize_range(list(assets.values()), resources, start.isoformat(), last.isoformat(), instance)
        bar.advance(task)
    seconds = time.perf_counter() - started

    keys = [(start + dt.timedelta(days=i)).isoformat() for i in range(days)]
    events = store.read_many(settings.dataset("cohort_events"), keys)
    events.write_parquet(output / "events.parquet", compression="zstd")
    root = store.root()
    shutil.copyfile(root / settings.dataset("forecast.json"), output / "forecast.json")
    shutil.copyfile(root / settings.dataset("transition_rates.json"), output / "rates.json")
    shutil.copyfile(root / settings.dataset("models.json"), output / "models.json")
    forecast = json.loads((output / "forecast.json").read_text())
    learned = json.loads((output / "rates.json").read_text())
    models = json.loads((output / "models.json").read_text())
    summary = {
        "command": "funnel",
        "seed": seed,
        "impressions_forecast": impressions,
        "impressions_per_cohort": cfg.impressions_per_day,
        "replicates": replicates,
        "days": days,
        "start": keys[0],
        "end": keys[-1],
        "scenario": settings.scenario(),
        "seconds": round(seconds, 3),
        "events": events.height,
        "configured_rates": cfg.rates.model_dump(),
        "rates_learned_from": rates_learned_from,
        "purchasers_forecast": forecast["percentiles"]["purchasers"],
        "learned_within_tolerance": all(v["within"] is not False for v in learned["comparison"].values()),
        "purchase_auc": models["signal"]["purchase"]["roc_auc"],
        "churn_auc": models["signal"]["churn"]["roc_auc"],
        "models_passed": all(
            [
                models["signal"]["purchase"]["passed"],
                models["signal"]["churn"]["passed"],
                *[m["passed"] for m in models["signal"]["ltv"]],
            ]
        ),
        "files": ["forecast.json", "events.parquet", "rates.json", "models.json"],
    }
    write_json(output / "summary.json", summary)
    return summary


def run(args: argparse.Namespace) -> int:
    """Handle ``simulate funnel`` and ``simulate funnel audit``."""
    if args.action == "audit":
        return run_audit(args)
    rates, start = validate(args)
    output = prepare_output(args.output)
    summary = simulate(
        args.impressions,
        args.replicates,
        args.days,
        args.seed,
        start,
        output,
        rates,
        args.config,
        cohort_impressions=args.cohort_impressions,
        events_sink="posthog" if args.posthog else None,
        rates_learned_from=args.events if args.rates == "learned" else None,
        app_db_dsn=args.app_db_dsn,
    )
    p = summary["purchasers_forecast"]
    console.print(
        f"Funnel: {summary['days']} cohorts, {summary['events']:,} events in {summary['seconds']} s; "
        f"forecast purchasers per {summary['impressions_forecast']:,} impressions: mean {p['mean']:.1f} "
        f"(5-95 %: {p['p5']:.0f}-{p['p95']:.0f}); learned rates within tolerance: {summary['learned_within_tolerance']}; "
        f"purchase AUC {summary['purchase_auc']}, churn AUC {summary['churn_auc']}"
    )
    console.print(f"Wrote {output}/forecast.json, events.parquet, rates.json, models.json, summary.json")
    return 0


def run_demo(root: Path) -> None:
    """Demo step: 7 daily cohorts of 300,000 impressions, 10,000 forecast replicates."""
    out = prepare_output(root / "funnel")
    summary = simulate(300_000, 10_000, 7, 42, dt.date.fromisoformat(_default_start()), out)
    console.print(
        f"Funnel demo: {summary['events']:,} events, models passed: {summary['models_passed']} -> {out}"
    )


def read_events(path: Path) -> pl.DataFrame:
    """Return the events written by ``simulate funnel``."""
    import polars as pl

    return pl.read_parquet(path)
