"""``simulate twin``: fit a twin to a real event export, generate look-alike users, report fidelity and privacy.

Each sub-command materializes the twin's assets in-process (recorded in the local
Dagster instance, so the UI shows the runs and their checks):

    simulate twin fit    --events EXPORT --output SPEC_DIR [--map FIELD=COL,...]
    simulate twin run    --spec SPEC_DIR [--users N] [--days D] [--start YYYY-MM-DD] --output DIR
    simulate twin report --spec SPEC_DIR --events EXPORT --twin DIR --output DIR
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shutil
import time
from pathlib import Path

from simulation_assets.commands.common import (
    UsageError,
    console,
    dagster_instance,
    iso_date,
    materialize_range,
    positive_int,
    prepare_output,
    run_resources,
    write_json,
)

DEMO_ORDER = 90


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``twin`` sub-command and its ``fit``, ``run`` and ``report`` actions."""
    p = sub.add_parser(
        "twin", help="fit a twin to a real event export, generate look-alike users, report fidelity"
    )
    actions = p.add_subparsers(dest="twin_action", required=True, metavar="ACTION")

    f = actions.add_parser("fit", help="fit a twin spec to an event export")
    f.add_argument(
        "--events",
        required=True,
        help="the export: a file, a folder of files or a glob (Parquet, JSON lines, CSV)",
    )
    f.add_argument("--output", required=True, help="folder for the spec (twin.yaml + tables)")
    f.add_argument(
        "--map",
        default="",
        help="column mapping of a generic table, e.g. user_id=uid,timestamp=ts,event=name,session_id=sid",
    )
    f.add_argument(
        "--seed", type=int, default=42, help="seed of the fit's samples and of later runs (default 42)"
    )
    f.add_argument(
        "--k",
        type=int,
        default=5,
        help="k-anonymity: values seen for fewer users are never copied (default 5)",
    )
    f.add_argument(
        "--holdout", type=float, default=0.2, help="share of users kept out of the fit (default 0.2)"
    )
    f.add_argument(
        "--max-classes", type=int, default=8, help="most latent classes BIC may choose (default 8)"
    )
    f.set_defaults(handler=run_fit)

    r = actions.add_parser("run", help="generate the twin's users and events from a spec")
    r.add_argument("--spec", required=True, help="spec folder written by `simulate twin fit`")
    r.add_argument(
        "--users",
        type=int,
        default=None,
        help="users to generate (> 0; default: the spec's generation.users)",
    )
    r.add_argument(
        "--days", type=int, default=None, help="days to generate (> 0; default: the spec's generation.days)"
    )
    r.add_argument(
        "--start",
        default=None,
        help="first day YYYY-MM-DD (default: the spec's generation.start, the export's first)",
    )
    r.add_argument("--output", required=True, help="folder for events/<day>.parquet and summary.json")
    r.add_argument("--seed", type=int, default=None, help="generator seed (default: the spec's)")
    r.add_argument(
        "--churn-multiplier", type=float, default=None, help="x the churn hazard (default: the spec's)"
    )
    r.add_argument(
        "--drop-event", action="append", default=[], help="an event name the twin must not emit (repeatable)"
    )
    r.add_argument("--single-file", action="store_true", help="also write all days as one events.parquet")
    r.set_defaults(handler=run_generate)

    e = actions.add_parser("report", help="compare a generated twin with the export: fidelity and privacy")
    e.add_argument("--spec", required=True, help="spec folder written by `simulate twin fit`")
    e.add_argument("--events", required=True, help="the real export the spec was fitted to")
    e.add_argument("--twin", required=True, help="output folder of `simulate twin run`")
    e.add_argument("--output", required=True, help="folder for fidelity.json, privacy.json and report.md")
    e.add_argument("--map", default="", help="column mapping of a generic table (as given to fit)")
    e.set_defaults(handler=run_report)


# ---- validation (before anything is written) -----------------------------------------------------------------------


def _mapping(text: str):  # noqa: ANN202
    from simulation_assets.sinks.posthog_export import ColumnMapping

    if not text:
        return None
    try:
        return ColumnMapping.parse(text)
    except ValueError as exc:
        raise UsageError(f"--map: {exc}") from None


def _open_export(path: str, mapping_text: str):  # noqa: ANN202
    from simulation_assets.sinks.posthog_export import ExportError, open_export

    try:
        return open_export(path, _mapping(mapping_text))
    except ExportError as exc:
        raise UsageError(f"--events {exc}") from None


def _load_spec(path: str):  # noqa: ANN202
    from simulation_assets.core.twin.spec import SpecError
    from simulation_assets.sinks.twin_spec_store import load_spec

    try:
        return load_spec(path)
    except SpecError as exc:
        raise UsageError(f"--spec {exc}") from None


def _asset(defs, name: str):  # noqa: ANN001, ANN202
    """Return the asset ``name`` of a twin ``defs`` (the store resource is bound at materialization)."""
    return next(a for a in defs.assets if a.key.to_user_string() == name)


def _resources(settings: object) -> dict[str, object]:
    from simulation_assets.sinks.local_store import LocalParquetStore

    return {"twin_settings": settings, "store": LocalParquetStore()}


def _materialize(assets: list, resources: dict, tags: dict | None = None, created: Path | None = None):  # noqa: ANN001, ANN202
    """Run ``assets`` in-process, recorded in the local instance; map input problems found late to UsageError."""
    import dagster as dg

    from simulation_assets.core.twin.fit import FitError
    from simulation_assets.core.twin.spec import SpecError
    from simulation_assets.sinks.posthog_export import ExportError

    try:
        return dg.materialize(assets, resources=run_resources(resources), instance=dagster_instance(),
                              run_config=_RUN_CONFIG, tags=tags or {}, raise_on_error=True)  # fmt: skip
    except (ExportError, SpecError, FitError) as exc:
        _remove_if_new(created)
        raise UsageError(str(exc)) from None
    except dg.DagsterExecutionStepExecutionError as exc:
        cause = exc.__cause__
        if isinstance(cause, ExportError | SpecError | FitError):
            _remove_if_new(created)
            raise UsageError(str(cause)) from None
        raise


# The run's own console log stays quiet: an input problem found during the run is reported once, as the
# command's error line, not also as a step failure with a stack trace (the run and its failure are still
# recorded in the instance); an unexpected error still raises with its traceback.
_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _new_output(path: str) -> tuple[Path, Path | None]:
    """Return the output folder (made and proven writable) and itself again when this command created it."""
    existed = Path(path).expanduser().exists()
    out = prepare_output(path)
    return out, None if existed else out


def _remove_if_new(created: Path | None) -> None:
    """Remove a folder this command created when it failed before writing anything into it."""
    if created is not None and created.is_dir() and not any(created.iterdir()):
        created.rmdir()


# ---- fit ----------------------------------------------------------------------------------------------------------


def run_fit(args: argparse.Namespace) -> int:
    """Handle ``simulate twin fit``."""
    from simulation_assets.defs.twin import TwinSettings, build_defs

    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.k < 2:
        raise UsageError(f"--k must be at least 2, got {args.k}")
    if not 0.0 <= args.holdout < 0.9:
        raise UsageError(f"--holdout must be a share in [0, 0.9), got {args.holdout}")
    if not 1 <= args.max_classes <= 20:
        raise UsageError(f"--max-classes must be between 1 and 20, got {args.max_classes}")
    export = _open_export(args.events, args.map)
    out, created = _new_output(args.output)
    settings = TwinSettings(export_path=args.events,
                            column_mapping=args.map, spec_dir=str(out.resolve()), seed=args.seed, k_anonymity=args.k,
                            holdout_share=args.holdout, max_classes=args.max_classes)  # fmt: skip
    defs = build_defs()
    started = time.perf_counter()
    result = _materialize([_asset(defs, "twin_spec")], _resources(settings), created=created)
    seconds = time.perf_counter() - started
    spec = _load_spec(str(out))
    doc = spec.document
    left_out = _metadata_value(result, "twin_spec", "rows_left_out")
    console.print(
        f"Twin fitted to {export.source} ({doc.source.rows:,} events, {doc.source.users:,} users over {doc.source.days} days "
        f"from {doc.source.first_day}; {doc.source.holdout_users:,} held out; {_sessions(doc.source.sessions_rebuilt)}) "
        f"in {seconds:.1f} s: {len(doc.classes)} classes (BIC), "
        f"{len(doc.flow['events'])} events modelled, {_dropped(doc.privacy['dropped_properties'])}. "
        f"Spec: {out / 'twin.yaml'}"
    )
    repeated = _metadata_value(result, "twin_spec", "rows_repeated")
    if repeated:
        console.print(
            f"Note: {repeated:,} rows repeated an event uuid already read (a batch delivered twice) and were "
            "read once, as PostHog keeps one."
        )
    if left_out:
        console.print(
            f"Note: {left_out:,} rows dated far outside {doc.source.first_day}..{doc.source.last_day} (a device clock "
            "at 1970, a date years ahead) were left out of the fit."
        )
    heavy = _metadata_json(result, "twin_spec", "heavy_users")
    if heavy and heavy.get("left_out"):
        console.print(
            f"Note: {_count(heavy['users'], 'user')} ({heavy['user_share']:.2%} of users) made "
            f"{heavy['event_share']:.0%} of the events, up to {heavy['events_per_day']:,.0f} a day (bots, a load "
            f"test?). {heavy['left_out']:,} of them, each busier than ten times the other users' 99th "
            "percentile, were left out of the fit as machines, and `twin report` leaves them out of the export's "
            "side too: the twin and the report are of the other users."
        )
    elif heavy:
        console.print(
            f"Note: {_count(heavy['users'], 'user')} ({heavy['user_share']:.2%} of users) made "
            f"{heavy['event_share']:.0%} of the events, up to {heavy['events_per_day']:,.0f} a day. The twin models "
            "users by classes of many and copies nothing fewer than k users did, so its event mix and transitions "
            "will follow the other users."
        )
    return 0


# ---- run ----------------------------------------------------------------------------------------------------------


def run_generate(args: argparse.Namespace) -> int:
    """Handle ``simulate twin run``."""
    from simulation_assets.defs.twin import TwinSettings, build_defs

    for flag, value in (("--users", args.users), ("--days", args.days)):
        if value is not None:
            positive_int(flag, value)
    if args.days is not None and args.days > 3660:
        raise UsageError(f"--days must be at most 3660, got {args.days}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.churn_multiplier is not None and args.churn_multiplier < 0:
        raise UsageError(f"--churn-multiplier must be >= 0, got {args.churn_multiplier}")
    spec = _load_spec(args.spec)
    # Without --users / --days the run makes what twin.yaml's generation section says (as its header tells an editor).
    args.users = args.users if args.users is not None else spec.document.generation.users
    args.days = args.days if args.days is not None else spec.document.generation.days
    unknown = [e for e in args.drop_event if e not in spec.events]
    if unknown:
        raise UsageError(
            f"--drop-event {', '.join(unknown)}: not an event of this twin; events are {', '.join(spec.events)}"
        )
    start = iso_date("--start", args.start) if args.start else spec.document.generation.start
    out = prepare_output(args.output)
    events_dir = out / "events"
    if events_dir.exists():
        shutil.rmtree(events_dir)  # a new run replaces the previous one's days
    events_dir.mkdir(parents=True)
    last = start + dt.timedelta(days=args.days - 1)
    settings = TwinSettings(spec_dir=str(Path(args.spec).expanduser().resolve()), events_dir=str(events_dir),
                            users=args.users, days=args.days, seed=args.seed if args.seed is not None else spec.document.generation.seed,
                            churn_multiplier=-1.0 if args.churn_multiplier is None else args.churn_multiplier,
                            drop_events=",".join(args.drop_event))  # fmt: skip
    defs = build_defs(start.isoformat(), (last + dt.timedelta(days=1)).isoformat())
    started, cpu = time.perf_counter(), time.process_time()
    try:
        materialize_range([_asset(defs, "twin_events")], _resources(settings), start.isoformat(),
                          last.isoformat(), dagster_instance())  # fmt: skip
    except Exception as exc:
        from simulation_assets.core.twin.spec import SpecError

        if isinstance(exc.__cause__, SpecError):
            raise UsageError(str(exc.__cause__)) from None
        raise
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    import polars as pl

    files = sorted(events_dir.glob("*.parquet"))
    rows = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in files)
    if args.single_file:
        pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed").write_parquet(
            out / "events.parquet", compression="zstd"
        )
    summary = {
        "command": "twin run",
        "spec": str(Path(args.spec).resolve()),
        "users": args.users,
        "days": args.days,
        "start": start.isoformat(),
        "end": last.isoformat(),
        "events": rows,
        "seconds": round(seconds, 3),
        "events_per_cpu_second": round(rows / max(cpu_seconds, 1e-9)),
        "files": [f"events/{f.name}" for f in files] + (["events.parquet"] if args.single_file else []),
    }
    write_json(out / "summary.json", summary)
    console.print(
        f"Twin: {rows:,} events of {args.users:,} users over {args.days} days from {start} in {seconds:.1f} s -> {events_dir}"
    )
    return 0


# ---- report -------------------------------------------------------------------------------------------------------


def run_report(args: argparse.Namespace) -> int:
    """Handle ``simulate twin report``."""
    from simulation_assets.defs.twin import TwinSettings, build_defs

    spec = _load_spec(args.spec)
    _open_export(args.events, args.map)
    twin_dir = Path(args.twin).expanduser()
    events_dir = twin_dir / "events" if (twin_dir / "events").is_dir() else twin_dir
    files = sorted(events_dir.glob("*.parquet"))
    if not files:
        raise UsageError(
            f"--twin {args.twin}: no events/<day>.parquet files (the output folder of `simulate twin run`)"
        )
    summary_path = twin_dir / "summary.json"
    first = (
        dt.date.fromisoformat(files[0].stem) if _is_date(files[0].stem) else spec.document.generation.start
    )
    days = len(files)
    users = spec.document.generation.users
    if summary_path.exists():
        info = json.loads(summary_path.read_text())
        users, days, first = (
            int(info.get("users", users)),
            int(info.get("days", days)),
            dt.date.fromisoformat(info.get("start", first.isoformat())),
        )
    out, created = _new_output(args.output)
    settings = TwinSettings(export_path=args.events, column_mapping=args.map, spec_dir=str(Path(args.spec).expanduser().resolve()),
                            events_dir=str(events_dir.resolve()), report_dir=str(out), users=users, days=days,
                            seed=spec.document.generation.seed)  # fmt: skip
    defs = build_defs(first.isoformat(), (first + dt.timedelta(days=days)).isoformat())
    result = _materialize(
        [_asset(defs, "twin_fidelity"), _asset(defs, "twin_privacy")],
        _resources(settings),
        created=created,
    )
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    fidelity = json.loads((out / "fidelity.json").read_text())
    privacy = json.loads((out / "privacy.json").read_text())
    (out / "report.md").write_text(_markdown(fidelity, privacy, checks))
    write_json(out / "checks.json", checks)
    failed = [k for k, v in checks.items() if not v]
    console.print(
        f"Twin report: {fidelity['real_users']:,} real vs {fidelity['twin_users']:,} twin users over {fidelity['days']} days; "
        f"checks passed {len(checks) - len(failed)}/{len(checks)}"
        + (f" (failing: {', '.join(failed)})" if failed else "")
        + f". Wrote {out}/report.md, fidelity.json, privacy.json"
    )
    for line in _missed_measures(fidelity):
        console.print(f"  {line}")
    if fidelity.get("machine_users"):
        console.print(
            f"  The export's side leaves out {_count(fidelity['machine_users'], 'user')} the fit took for machines "
            f"({fidelity['machine_events']:,} events), as the fit leaves such users out."
        )
    return 0


def _sessions(rebuilt: bool) -> str:
    """Return where the fit's sessions came from: a newcomer's export without ``$session_id`` gets them rebuilt."""
    return "sessions rebuilt: 30 minutes without events ends one" if rebuilt else "sessions from $session_id"


def _dropped(rows: list[dict]) -> str:
    """Return how many properties the fit dropped and the first five by name (a newcomer's ``$groups`` gone
    from the twin, with the reasons in the spec's ``privacy.dropped_properties``)."""
    if not rows:
        return "no property dropped"
    names = [str(r["key"]) for r in rows]
    listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{len(names)} {'property' if len(names) == 1 else 'properties'} dropped ({listed}: see privacy in twin.yaml)"


def _shown(c: dict) -> tuple[object, object]:
    """Return a comparison's value and bound as the report shows them: retention, a share in fidelity.json, in
    points (its target is "within 3 points"; 0.0704 read as 0.07 points)."""
    if c["kind"] == "retention" and math.isfinite(c["value"]):
        return f"{c['value'] * 100:.1f} points", f"{c['bound'] * 100:.1f} points"
    return c["value"], c["bound"]


def _missed_measures(fidelity: dict) -> list[str]:
    """Return one line per fidelity measure over its bound: which figure a failing check failed on, and by how much.

    A check's name alone (``per_user_distributions_ks``) does not say which of its five distributions missed.
    """
    lines = []
    for c in fidelity["comparisons"]:
        if c["passed"]:
            continue
        detail = c.get("detail") or {}
        if detail.get("note"):
            where = f": {detail['note']}"
        elif detail.get("worst"):
            worst = detail["worst"]
            where = f": {worst['event']} {worst['key']}, export {worst['export']} vs twin {worst['twin']}"
        elif detail.get("worst_key"):
            where = f": {detail['worst_key']} in week {detail['worst_week']}"
        else:
            where = ""
        value, bound = _shown(c)
        lines.append(f"missed: {c['name']} ({c['kind']}) {value}, bound {bound}{where}")
    return lines


def _metadata_value(result, asset: str, key: str) -> int:  # noqa: ANN001
    """Return an integer metadata entry of ``asset``'s materialization in ``result`` (0 when absent)."""
    for mat in result.asset_materializations_for_node(asset):
        if key in mat.metadata:
            return int(mat.metadata[key].value)
    return 0


def _metadata_json(result, asset: str, key: str) -> dict:  # noqa: ANN001
    """Return a JSON metadata entry of ``asset``'s materialization in ``result`` ({} when absent)."""
    for mat in result.asset_materializations_for_node(asset):
        if key in mat.metadata:
            return dict(mat.metadata[key].value or {})
    return {}


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _markdown(fidelity: dict, privacy: dict, checks: dict[str, bool]) -> str:
    lines = [
        "# Twin report",
        "",
        f"{fidelity['real_users']:,} real users beside {fidelity['twin_users']:,} twin users, {fidelity['days']} days"
        + (
            f" ({fidelity['machine_users']:,} users the fit took for machines, {fidelity['machine_events']:,} events, "
            "left out of the real side)."
            if fidelity.get("machine_users")
            else "."
        ),
        "",
        "| measure | kind | value | bound | passed |",
        "|---|---|---|---|---|",
    ]
    for c in fidelity["comparisons"]:
        value, bound = _shown(c)
        lines.append(f"| {c['name']} | {c['kind']} | {value} | {bound} | {'yes' if c['passed'] else 'NO'} |")
    notes = [
        f"- {c['name']}: {c['detail']['note']}"
        for c in fidelity["comparisons"]
        if c.get("detail", {}).get("note")
    ]
    lines += ["", *notes] if notes else []
    lines += ["", "## Weekly retention", "", "| week | real | twin |", "|---|---|---|"]
    unmeasured = []
    for r in fidelity["retention"]:
        real, twin = r.get("real"), r.get("twin")
        if real is None and twin is None:
            unmeasured.append(str(r["week"]))
            continue
        lines.append(f"| {r['week']} | {_share(real)} | {_share(twin)} |")
    if unmeasured:
        lines += [
            "",
            f"{'Weeks ' + ', '.join(unmeasured) if len(unmeasured) > 1 else 'Week ' + unmeasured[0]}: not measured "
            "(no cohort of the export's days is that old).",
        ]
    lines += [
        "",
        f"DAU/WAU: real {fidelity['dau_wau']['real']}, twin {fidelity['dau_wau']['twin']}.",
        *_dau_lines(fidelity.get("dau_by_day") or {}),
        *_carried_lines(fidelity.get("carried_values") or []),
        *_version_lines(fidelity.get("version_mix") or []),
        "",
        "## Privacy",
        "",
    ]
    lines += _privacy_lines(privacy)
    lines += ["", "## Checks", ""] + [
        f"- {k}: {'passed' if v else 'FAILED'}" for k, v in sorted(checks.items())
    ]
    return "\n".join(lines) + "\n"


def _dau_lines(summary: dict) -> list[str]:
    if not summary:
        return []
    return [
        "",
        f"Daily active users by date (the twin scaled to the export's users): mean absolute difference "
        f"{100 * summary['mean_abs_difference_share']:.1f} % of the export's mean; largest on {summary['worst_day']} "
        f"(real {summary['worst_real']:,}, twin {summary['worst_twin']:,.0f}). Days that depart clearly from their "
        "weekday (a holiday, a launch) are modelled and judged by the calendar_days check; every day is in "
        "fidelity.json `daily_active_users`.",
    ]


CARRIED_ROWS_SHOWN = 12  # the rows with the most twin rows; every row is in fidelity.json and judged


def _carried_lines(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = [
        "",
        "## Values carried within sessions",
        "",
        "Share of an event's rows whose value of the key is the source's: the same row's (lag 0) or the "
        "session's last before it (lag 1; a page-leave's URL is the page's); the fit's sample of the export "
        "beside the twin.",
        "",
        "| event | key | source | lag | export | twin |",
        "|---|---|---|---|---|---|",
    ]
    shown = rows[:CARRIED_ROWS_SHOWN]
    more = (
        ["", f"{len(rows) - len(shown)} more rows (fewer twin rows each) in fidelity.json `carried_values`."]
        if len(rows) > len(shown)
        else []
    )
    return (
        lines
        + [
            f"| {r['event']} | {r['key']} | {r.get('source', r['key'])} | {r.get('lag', 1)} | {_share(r['export'])} "
            f"| {_share(r['twin'])} |"
            for r in shown
        ]
        + more
    )


def _version_lines(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = [
        "",
        "## Versions that roll out",
        "",
        "Per week of the run, the share of sessions on the newest version (the fit's sample of the export "
        "beside the twin) and the total-variation distance between the two mixes.",
        "",
        "| key | week | export newest | twin newest | TV |",
        "|---|---|---|---|---|",
    ]
    return lines + [
        f"| {r['key']} | {r['week']} | {_share(r['export'])} | {_share(r['twin'])} | {r['tv']:.3f} |"
        for r in rows
    ]


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _privacy_lines(privacy: dict) -> list[str]:
    """The privacy section of report.md: the DCR test, identical users beside the holdout's, identifiers."""
    from simulation_assets.core.twin.privacy import TOO_CLOSE_MAX

    twin_n, hold_n = privacy.get("twin_users", 0), privacy.get("holdout_users", 0)
    same, hold_same = privacy.get("exact_copies", 0), privacy.get("holdout_exact_matches")
    copied = privacy.get("copied_identifiers", {})
    lines = [
        f"- Twin users nearer a training user than a holdout user: {privacy['closer_to_training_share']} (bound "
        f"{privacy['bound']}).",
        f"- Twin users nearer a training user than 95 % of holdout users are: {privacy.get('too_close_share')} "
        f"(bound {TOO_CLOSE_MAX}).",
        f"- Twin users identical to a training user in every feature: {same:,} of {twin_n:,} ({_percent(same, twin_n)})"
        + (
            f"; holdout users, never fitted, identical to one: {hold_same:,} of {hold_n:,} ({_percent(hold_same, hold_n)}): "
            "users with the same short history match without being copied."
            if hold_same is not None
            else "."
        )
        + (
            f" Bound: {privacy['exact_share_max']:.1%} of twin users (the holdout's share, one point and noise above)."
            if privacy.get("exact_share_max") is not None
            else ""
        ),
        *(
            [
                f"- Real users singled out by one twin user (nearest much nearer than the second nearest, a ratio at "
                f"or below the holdout's 5th percentile, {privacy['singled_out_cut']}): training users "
                f"{privacy['training_singled_out_share']:.1%}, holdout users {privacy['holdout_singled_out_share']:.1%} "
                f"(bound {privacy['singled_out_share_max']:.1%}: a copy, even moved in time, singles its original out)."
            ]
            if privacy.get("singled_out_share_max") is not None
            else []
        ),
        "- Real identifiers found in the twin: "
        + (", ".join(f"{k} {v}" for k, v in copied.items()) if any(copied.values()) else "none")
        + " (event uuids, distinct ids, session ids checked).",
    ]
    return lines


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "—"


DEMO_USERS, DEMO_DAYS, DEMO_SEED = 700, 56, 23  # the example export the round-trip test holds to every target


def run_demo(root: Path) -> None:
    """Demo step: fit a twin to an example product's export (a warehouse table, read through a column
    mapping), generate as many users over the same days, and report fidelity and privacy.

    The example (``core/twin/example.py``: a B2B tool with three kinds of users and no session ids) spans
    eight weeks, enough for weekly retention and a churn classifier; docs/twin.md runs the same steps on
    HogFlix's own events and shows what the twin misses there.
    """
    import polars as pl

    from simulation_assets.cli import main
    from simulation_assets.core.twin.example import synthetic_events

    base = prepare_output(root / "twin")
    table = (
        synthetic_events(users=DEMO_USERS, days=DEMO_DAYS, seed=DEMO_SEED)
        .drop("uuid")
        .with_columns(pl.col("timestamp").dt.epoch("ms"))
        .rename({"distinct_id": "account", "timestamp": "at_ms", "event": "action"})
    )
    export = base / "export.parquet"
    table.write_parquet(export)
    console.print(
        f"Twin demo: an example product's table of {table.height:,} events over {DEMO_DAYS} days -> {export}"
    )
    spec = base / "spec"
    main(
        [
            "twin",
            "fit",
            "--events",
            str(export),
            "--output",
            str(spec),
            "--map",
            "user_id=account,timestamp=at_ms,event=action",
        ]
    )
    gen = _load_spec(str(spec)).document.generation
    main(["twin", "run", "--spec", str(spec), "--users", str(gen.users), "--days", str(gen.days),
          "--output", str(base / "run")])  # fmt: skip
    main(["twin", "report", "--spec", str(spec), "--events", str(export), "--twin", str(base / "run"),
          "--output", str(base / "report"), "--map", "user_id=account,timestamp=at_ms,event=action"])  # fmt: skip
