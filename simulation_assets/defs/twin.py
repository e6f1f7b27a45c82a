"""The twin of a real product as Dagster assets: fit a spec to an export, generate days, prove fidelity and privacy.

Thin by design: the fit, the generator, the reports and the checks are
``core/twin``; reading the export and the spec files are ``sinks/``; this module
wires them to partitions, the store and the UI.
"""

import datetime as dt
import json
import os
from pathlib import Path
from typing import ClassVar

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from simulation_assets.core.charts import Series, chart_svg
from simulation_assets.core.twin import checks
from simulation_assets.core.twin.checks import Outcome
from simulation_assets.core.twin.config import FitConfig
from simulation_assets.core.twin.features import extreme_users, heavy_users
from simulation_assets.core.twin.fidelity import (
    FidelityReport,
    compare,
    dau_by_day_summary,
    session_value_comparisons,
)
from simulation_assets.core.twin.fit import Prepared, fit, prepare
from simulation_assets.core.twin.generate import Generator, as_export_rows
from simulation_assets.core.twin.privacy import TOO_CLOSE_MAX, copied_identifiers, dcr_test
from simulation_assets.core.twin.spec import TwinSpec
from simulation_assets.defs.metadata import md_table, svg_markdown, table_metadata
from simulation_assets.defs.partitions import DEFAULT_START_DATE, daily_partitions
from simulation_assets.sinks.config_files import from_env
from simulation_assets.sinks.local_store import LocalParquetStore, atomic_write_parquet
from simulation_assets.sinks.memory import tune_generator_memory
from simulation_assets.sinks.posthog_export import ColumnMapping
from simulation_assets.sinks.twin_source import load_for_fit, load_real
from simulation_assets.sinks.twin_spec_store import load_spec, save_spec

GROUP = "twin"
SINGLE_RUN = dg.BackfillPolicy.single_run()
FIDELITY_CHECKS = {
    "per_user_distributions_ks": (checks.per_user_distributions_ks, "Sessions per week, active days, events per session, "
                                  "session duration and gap between sessions: KS within 0.05 (5,000+ users)."),
    "profiles_tv": (checks.profiles_tv, "Hour-of-week profile, event mix, top transitions and top paths: total "
                    "variation within 0.05 (5,000+ users)."),
    "retention_weeks_1_8": (checks.retention_within_points, "Weekly retention by cohort within 3 points, weeks 1-8 "
                            "(5,000+ users)."),
    "tstr_churn_auc": (checks.tstr_auc_gap, "A churn classifier trained on the twin and tested on real holdout users "
                       "within 0.03 AUC of one trained on real users."),
    "calendar_days": (checks.calendar_days_followed, "On the export's calendar days (days whose newcomers or returning "
                      "users depart clearly from their weekday's level) the twin's active users within a quarter."),
    "carried_values": (checks.carried_values_kept, "Values sessions carry on (a page-leave's URL, a video's id, a "
                       "referrer that is the URL before): each event's share of rows equal to their source within "
                       "0.05 of the export's (or the two-sample noise)."),
    "version_mix": (checks.version_mix_followed, "Versions that roll out: each week's mix of a version key within 0.05 "
                    "total variation of the export's (or the two-sample noise), and their mean."),
}  # fmt: skip
PRIVACY_CHECKS = {
    "twin_not_closer_than_holdout": "Distance to closest record: twin users are no nearer the training users than "
    "to real users the fit never saw, and training users are no more often singled out by one twin user.",
    "no_identifiers_copied": "No event uuid, distinct id or session id of the export appears in the twin.",
}


def twin_start_date() -> str:
    """Return ``$TWIN_START_DATE`` (the twin's first partition; the export's first day is a good choice)."""
    value = os.environ.get("TWIN_START_DATE") or DEFAULT_START_DATE
    dt.date.fromisoformat(value)
    return value


class TwinSettings(dg.ConfigurableResource):
    """Which export the twin is fitted to, where its spec lives, and what a run generates."""

    ENV: ClassVar[dict[str, str]] = {
        "export_path": "TWIN_EXPORT",
        "column_mapping": "TWIN_COLUMN_MAPPING",
        "spec_dir": "TWIN_SPEC_DIR",
        "seed": "SIMULATION_SEED",
    }

    export_path: str = Field(
        default="", description="The event export to fit (a file, folder or glob; TWIN_EXPORT)."
    )
    column_mapping: str = Field(
        default="",
        description="For a generic table: FIELD=COLUMN pairs, e.g. user_id=uid,timestamp=ts,event=name.",
    )
    spec_dir: str = Field(
        default="", description="Folder of the twin spec (TWIN_SPEC_DIR; default: the store's twin/spec)."
    )
    events_dir: str = Field(
        default="", description="Write generated days here instead of the store (one file a day)."
    )
    report_dir: str = Field(default="", description="Write the fidelity and privacy reports here too.")
    seed: int = Field(default=42, description="Seed of the fit's samples and of the generator.")
    k_anonymity: int = Field(default=5, description="Values seen for fewer users are never copied.")
    holdout_share: float = Field(default=0.2, description="Share of real users kept out of the fit.")
    max_classes: int = Field(default=8, description="Most latent classes BIC may choose.")
    users: int = Field(default=0, description="Users to generate (0: the spec's generation.users).")
    days: int = Field(default=0, description="Days the twin covers (0: the spec's generation.days).")
    churn_multiplier: float = Field(
        default=-1.0, description="x the churn hazard (negative: the spec's value)."
    )
    drop_events: str = Field(default="", description="Comma-separated event names the twin must not emit.")

    def fit_config(self) -> FitConfig:
        return FitConfig(seed=self.seed, k_anonymity=self.k_anonymity, holdout_share=self.holdout_share,
                         max_classes=self.max_classes)  # fmt: skip

    def mapping(self) -> ColumnMapping | None:
        return ColumnMapping.parse(self.column_mapping) if self.column_mapping else None

    def spec_path(self, store: LocalParquetStore) -> Path:
        return Path(self.spec_dir).expanduser() if self.spec_dir else store.root() / "twin" / "spec"

    def spec(self, store: LocalParquetStore, start: dt.date) -> TwinSpec:
        """Return the stored spec with this run's generation settings applied (first day ``start``)."""
        spec = load_spec(self.spec_path(store))
        drop = [e.strip() for e in self.drop_events.split(",") if e.strip()]
        return spec.with_generation(
            start=start,
            users=self.users or None,
            days=self.days or None,
            seed=self.seed,
            churn_multiplier=self.churn_multiplier if self.churn_multiplier >= 0 else None,
            drop_events=drop or None,
        )

    def dataset(self, spec: TwinSpec) -> str:
        return f"twin/{spec.key()}/events"


def _table_or_note(table: pl.DataFrame, judged: list, name: str) -> dg.MetadataValue:
    """Return ``table`` as Markdown, or the check's note ("not applicable: ...") when it has no row to show."""
    if not table.is_empty():
        return md_table(table, max_rows=20)
    note = next((c.detail.get("note", "") for c in judged if c.name == name), "")
    return dg.MetadataValue.text(note or "no rows")


def _dropped_table(rows: list) -> dg.MetadataValue:
    """Return what the fit dropped (key or event, and why) as a Markdown table; "none" when nothing was."""
    return md_table(pl.DataFrame(rows), max_rows=50) if rows else dg.MetadataValue.text("none")


def _events_path(settings: TwinSettings, store: LocalParquetStore, spec: TwinSpec, day: str) -> Path:
    if settings.events_dir:
        return Path(settings.events_dir).expanduser() / f"{day}.parquet"
    return store.path(settings.dataset(spec), day)


def read_twin_events(settings: TwinSettings, store: LocalParquetStore, spec: TwinSpec) -> pl.DataFrame:
    """Return every generated day of this twin (raises Failure when none is)."""
    folder = (
        Path(settings.events_dir).expanduser()
        if settings.events_dir
        else store.root() / settings.dataset(spec)
    )
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if not files:
        raise dg.Failure(f"no twin_events partitions in {folder}: materialize twin_events first")
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")


def _outcome_result(name: str, outcome: Outcome) -> dg.AssetCheckResult:
    meta = {}
    for key, value in outcome.metadata.items():
        plain = json.loads(json.dumps(value, default=_json_default))  # numpy scalars -> JSON types
        meta[key] = plain if isinstance(plain, int | float | str | bool) else dg.MetadataValue.json(plain)
    return dg.AssetCheckResult(check_name=name, passed=bool(outcome.passed), metadata=meta)


def _write_report(
    settings: TwinSettings, store: LocalParquetStore, spec: TwinSpec, name: str, doc: dict
) -> Path:
    folder = (
        Path(settings.report_dir).expanduser() if settings.report_dir else store.root() / f"twin/{spec.key()}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    tmp.replace(path)
    return path


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        value = value.item()
        return None if isinstance(value, float) and not np.isfinite(value) else value
    return str(value)


def _prepared_pair(
    settings: TwinSettings, store: LocalParquetStore, start: dt.date
) -> tuple[TwinSpec, Prepared, Prepared, pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """Return (spec, real import, twin import, real rows, twin rows, twin events, the users left out of the real
    import as machines and their events) for the reports; the twin is moved onto the export's days when its first
    partition differs (so the same days are compared)."""
    spec = settings.spec(store, start)
    cfg = FitConfig(**spec.document.fit) if spec.document.fit else settings.fit_config()
    export, real = load_real(settings.export_path, settings.mapping(), cfg)
    machines = extreme_users(real.user_stats)  # left out as the fit leaves them out: people beside people
    left_out = {"machine_users": machines.len(), "machine_events": int(
        real.user_stats.filter(pl.col("user").is_in(machines.implode()))["total_events"].sum())}  # fmt: skip
    real = real.without(machines)
    real_rows = export.frame("none")
    twin_events = read_twin_events(settings, store, spec)
    shift = (spec.document.source.first_day - start).days
    rows = as_export_rows(twin_events)
    if shift:
        rows = rows.with_columns(pl.col("timestamp") + dt.timedelta(days=shift))
    return spec, real, prepare(rows, cfg), real_rows, rows, twin_events, left_out


def _retention_plot(report: FidelityReport) -> dg.MarkdownMetadataValue:
    r = report.retention
    chart = chart_svg(
        r["week"].to_list(),
        [
            Series("real", r["real"].to_list(), markers=True),
            Series("twin", r["twin"].to_list(), markers=True),
        ],
        x_label="weeks after first seen",
        y_label="retained share",
        y_range=(0, 1),
        width=560,
    )
    return svg_markdown(chart, "weekly retention, real vs twin")


def _dau_plot(report: FidelityReport) -> dg.MarkdownMetadataValue:
    d = report.daily_active
    chart = chart_svg(
        list(range(d.height)),
        [Series("real", d["real"].cast(pl.Float64).to_list()), Series("twin", d["twin"].to_list())],
        y_label="daily active users (twin scaled to the export's users)",
        x_ticks=[(i, str(d["day"][i])[5:]) for i in range(0, d.height, 7)],
    )
    return svg_markdown(chart, "daily active users by date, real vs twin")


def _hour_plot(report: FidelityReport) -> dg.MarkdownMetadataValue:
    h = report.hour_of_week
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    chart = chart_svg(
        h["hour_of_week"].to_list(),
        [Series("real", h["real"].to_list()), Series("twin", h["twin"].to_list())],
        y_label="share of session starts",
        x_ticks=[(24 * i + 12, day) for i, day in enumerate(days)],
    )
    return svg_markdown(chart, "hour-of-week profile, real vs twin")


def build_defs(start_date: str | None = None, end_date: str | None = None) -> dg.Definitions:
    """Return the twin's definitions with daily partitions from ``start_date`` (default ``$TWIN_START_DATE``)."""
    partitions = daily_partitions(start_date or twin_start_date(), end_date)
    first_day = partitions.start.date()

    @dg.asset(
        name="twin_spec",
        group_name=GROUP,
        kinds={"duckdb", "polars", "yaml"},
        description=(
            "A behavioural model fitted to a real event export (TWIN_EXPORT; TWIN_COLUMN_MAPPING for a generic table): "
            "arrivals, latent activity classes chosen by BIC, lifetimes and returns, session times, second-order event "
            "flows with end hazards and inter-event times, identity, and private property distributions; written as "
            "twin.yaml plus Parquet tables (TWIN_SPEC_DIR), which may be edited before twin_events runs. "
            "20 % of the export's users are held out (not fitted) for the privacy and churn checks."
        ),
    )
    def twin_spec(
        context: dg.AssetExecutionContext, twin_settings: TwinSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        if not twin_settings.export_path:
            raise dg.Failure("set TWIN_EXPORT (or twin_settings.export_path) to the event export to fit")
        cfg = twin_settings.fit_config()
        loaded = load_for_fit(twin_settings.export_path, twin_settings.mapping(), cfg)
        spec = fit(loaded.prepared, loaded.property_sample, loaded.key_stats, cfg, loaded.name)
        folder = save_spec(spec, twin_settings.spec_path(store))
        doc = spec.document
        classes = pl.DataFrame([
            {"class": c.id, "training_users": c.training_users, "share_new": round(c.share_new, 3),
             "share_backlog": round(c.share_backlog, 3), "next_day_return_x": round(c.return_by_recency[0], 3),
             "return_mean_new": round(c.return_beta["new"][0] / sum(c.return_beta["new"]), 3)}
            for c in doc.classes
        ])  # fmt: skip
        context.log.info(
            "fitted %d classes on %d training users", len(doc.classes), doc.source.training_users
        )
        if loaded.stray_rows:
            context.log.warning(
                "left out %d rows dated far outside the export's days (%s .. %s)",
                loaded.stray_rows, doc.source.first_day, doc.source.last_day,
            )  # fmt: skip
        return dg.MaterializeResult(
            metadata={
                "export": doc.source.export,
                "rows": doc.source.rows,
                "rows_left_out": loaded.stray_rows,
                "rows_repeated": loaded.repeated_rows,
                "heavy_users": dg.MetadataValue.json(heavy_users(loaded.prepared.user_stats) or {}),
                "users": doc.source.users,
                "training_users": doc.source.training_users,
                "days": doc.source.days,
                "sessions_rebuilt": doc.source.sessions_rebuilt,
                "classes": md_table(classes, max_rows=20),
                "class_selection": md_table(pl.DataFrame(doc.class_selection["candidates"]), max_rows=20),
                "events_modelled": len(doc.flow["events"]),
                "dropped_properties": _dropped_table(doc.privacy["dropped_properties"]),
                "dropped_events": _dropped_table(doc.privacy["dropped_events"]),
                "spec": dg.MetadataValue.path(str(folder / "twin.yaml")),
                "spec_key": spec.key(),
            }
        )

    @dg.asset(
        name="twin_events",
        group_name=GROUP,
        deps=[twin_spec],
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        kinds={"numpy", "polars", "parquet"},
        description=(
            "One UTC day of the twin's users and events (PostHog event shape, same columns as HogFlix's), "
            "generated from the spec: deterministic for a seed and day, whether run alone or in a backfill."
        ),
    )
    def twin_events(
        context: dg.AssetExecutionContext, twin_settings: TwinSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        spec = twin_settings.spec(store, first_day)
        gen = spec.document.generation
        tune_generator_memory()  # big per-day arrays: no huge-page compaction stalls (sinks.memory)
        generator = Generator(spec)
        last = gen.start + dt.timedelta(days=gen.days - 1)
        rows = 0
        frame = pl.DataFrame()
        for key in context.partition_keys:
            day = dt.date.fromisoformat(key)
            if day > last:
                raise dg.Failure(f"{key} is after the twin's last day {last} ({gen.days} days from {gen.start}); "
                                 "raise generation.days in the spec or set twin_settings.days")  # fmt: skip
            frame = generator.day(day)
            atomic_write_parquet(frame, _events_path(twin_settings, store, spec, key))
            rows += frame.height
            # Each day's own row count (the run's total on every day read as that day's size in the UI).
            context.add_asset_metadata(table_metadata(rows=frame.height), partition_key=key)
        return dg.MaterializeResult(
            metadata={
                **table_metadata(schema=frame.schema),
                "rows_in_run": rows,
                "days": len(context.partition_keys),
                "users_planned": gen.users,
                "active_users_last_day": int(frame["user_number"].n_unique()) if frame.height else 0,
                "spec_key": spec.key(),
                "path": dg.MetadataValue.path(
                    str(_events_path(twin_settings, store, spec, context.partition_keys[-1]))
                ),
                "preview": md_table(
                    frame.select("timestamp", "event", "distinct_id", "$session_id", "twin_class")
                ),
            }
        )

    @dg.asset(
        name="twin_fidelity",
        group_name=GROUP,
        deps=[twin_events],
        kinds={"scikitlearn", "polars"},
        check_specs=[
            dg.AssetCheckSpec(name, asset="twin_fidelity", description=text)
            for name, (_, text) in FIDELITY_CHECKS.items()
        ],
        description=(
            "The twin beside the real export on the same days: per-user distributions (KS), hour-of-week, event mix, "
            "transitions and paths (TV), weekly retention, DAU/WAU, train-on-twin vs train-on-real churn AUC, the "
            "export's calendar days, the values sessions carry on and the weekly mix of versions that roll out. Each "
            "figure is judged against its bound: the target, or on exports under 5,000 users the larger "
            "two-sample noise (comparisons: value, bound, passed; retention as a share, 0.03 = 3 points)."
        ),
    )
    def twin_fidelity(
        context: dg.AssetExecutionContext, twin_settings: TwinSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        spec, real, twin, _, _, events, left_out = _prepared_pair(twin_settings, store, first_day)
        report = compare(real, twin, seed=twin_settings.seed, k=int(spec.document.privacy.get("k", 5)))
        doc = spec.document
        carried, versions, judged = session_value_comparisons(
            events, spec.tables, int(doc.properties.get("sample_users", 0)), doc.generation.start, doc.source.days,
            seed=twin_settings.seed,
        )  # fmt: skip
        report.comparisons.extend(judged)
        path = _write_report(twin_settings, store, spec, "fidelity.json",
                             {**report.as_dict(), "carried_values": carried.to_dicts(),
                              "version_mix": versions.to_dicts(), **left_out})  # fmt: skip
        table = pl.DataFrame([{"measure": c.name, "kind": c.kind, "value": c.value, "bound": c.bound, "passed": c.passed}
                              for c in report.comparisons])  # fmt: skip
        return dg.MaterializeResult(
            metadata={
                "real_users": report.real_users,
                "twin_users": report.twin_users,
                "days": report.days,
                "comparisons": md_table(table, max_rows=20),
                "dau_wau": dg.MetadataValue.json(report.dau_wau),
                "dau_by_day": dg.MetadataValue.json(dau_by_day_summary(report.daily_active)),
                "daily_active_users": _dau_plot(report),
                "retention": _retention_plot(report),
                "hour_of_week": _hour_plot(report),
                "top_paths": md_table(report.paths, max_rows=12),
                "carried_values": _table_or_note(carried.head(12), judged, "carried_values"),
                "version_mix": _table_or_note(versions, judged, "version_mix"),
                "path": dg.MetadataValue.path(str(path)),
            },
            check_results=[_outcome_result(name, fn(report)) for name, (fn, _) in FIDELITY_CHECKS.items()],
        )

    @dg.asset(
        name="twin_privacy",
        group_name=GROUP,
        deps=[twin_events],
        kinds={"scikitlearn", "polars"},
        check_specs=[
            dg.AssetCheckSpec(name, asset="twin_privacy", description=text)
            for name, text in PRIVACY_CHECKS.items()
        ],
        description=(
            "Distance to closest record of every twin user to the training users and to the holdout users, and a scan "
            "for any real identifier in the twin; the spec's privacy section lists what the fit dropped."
        ),
    )
    def twin_privacy(
        context: dg.AssetExecutionContext, twin_settings: TwinSettings, store: LocalParquetStore
    ) -> dg.MaterializeResult:
        spec, real, twin, real_rows, twin_rows, _, _ = _prepared_pair(twin_settings, store, first_day)
        report = dcr_test(real, twin, seed=twin_settings.seed)
        copied = copied_identifiers(real_rows, twin_rows)
        path = _write_report(twin_settings, store, spec, "privacy.json", {**report.as_dict(), "copied_identifiers": copied,
                                                                          "spec_privacy": spec.document.privacy})  # fmt: skip
        return dg.MaterializeResult(
            metadata={
                "closer_to_training_share": report.closer_to_training_share,
                "closer_to_training_share_max": report.bound,
                "too_close_share": report.too_close_share,
                "too_close_share_max": TOO_CLOSE_MAX,
                "twin_users_identical_to_a_training_user": report.exact_copies,
                "holdout_users_identical_to_a_training_user": report.holdout_exact_matches,
                "training_singled_out_share": report.training_singled_out_share,
                "holdout_singled_out_share": report.holdout_singled_out_share,
                "singled_out_share_max": report.singled_out_share_max,
                "dcr_quantiles": dg.MetadataValue.json(report.dcr_quantiles),
                "copied_identifiers": dg.MetadataValue.json(copied),
                "dropped_properties": _dropped_table(spec.document.privacy["dropped_properties"]),
                "path": dg.MetadataValue.path(str(path)),
            },
            check_results=[
                _outcome_result("twin_not_closer_than_holdout", checks.dcr_not_closer_than_holdout(report)),
                _outcome_result("no_identifiers_copied", checks.no_identifiers_copied(copied)),
            ],
        )

    generate_job = dg.define_asset_job(
        "twin_generate",
        selection=dg.AssetSelection.assets(twin_events),
        description="Generate days of the twin.",
    )
    evaluate_job = dg.define_asset_job(
        "twin_evaluate",
        selection=dg.AssetSelection.assets(twin_fidelity, twin_privacy),
        description="Compare the generated twin with the real export: fidelity and privacy.",
    )
    return dg.Definitions(
        assets=[twin_spec, twin_events, twin_fidelity, twin_privacy],
        jobs=[generate_job, evaluate_job],
        resources={"twin_settings": from_env(TwinSettings)},
    )


defs = build_defs()
