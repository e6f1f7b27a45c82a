"""The twin at scale: fit a HogFlix export of ~10M events, generate its twin, compare them; DuckDB alongside.

Side by side in one run, on one export: by default a PostHog batch export (Parquet, JSON ``properties``, as
S3 batch exports write it) of HogFlix's own events; with ``--export`` any shape the twin reads (a batch-export
folder of Parquet or JSON lines, the UI's CSV, a generic table with ``--map``):
  duckdb      DuckDB reading the same export: a scan that counts users and days, and a read of the
              event, distinct id, timestamp and properties columns into Arrow (the floor of any import)
  fit         ``simulate twin fit``'s work (read the export, stitch users, sessions, every estimator,
              write the spec) in its own process: wall seconds, CPU seconds, peak resident memory
  generate    the twin's users and events for the export's users and days, events per CPU-second
  report      fidelity and privacy of that twin against the export (the fixed targets apply from 5,000 users)

Run: .venv/bin/python benchmarks/twin.py [--pool 10000] [--days 63] [--export PATH [--map MAPPING]] [--work DIR]
     [--skip-report]
The export is built once and kept (default: a folder of weekly files, $TMPDIR/twin-bench/hogflix-POOL-DAYS/).
Writes benchmarks/results/twin.json (twin-NAME.json for an --export NAME).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _stage(name: str, args: argparse.Namespace) -> dict:
    """Run one stage in a fresh process (so its peak memory is its own) and return its JSON report."""
    cmd = [sys.executable, __file__, "--stage", name, "--export", str(args.export), "--work", str(args.work)]
    cmd += ["--map", args.map] if args.map else []
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        raise SystemExit(f"stage {name} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure(fn) -> tuple[object, dict]:  # noqa: ANN001
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out, {"seconds": round(time.perf_counter() - wall, 2), "cpu_seconds": round(time.process_time() - cpu, 2),
                 "peak_rss_mib": round(peak_kib / 1024, 1)}  # fmt: skip


def stage_duckdb(export: Path, mapping: str | None) -> dict:
    """DuckDB alone on the export's files: a scan counting rows, users and days, then the event, user, timestamp
    and properties columns (the JSON column, or every property column) read into Arrow."""
    import duckdb

    from simulation_assets.sinks.posthog_export import open_export

    source = open_export(export, _mapping(mapping))
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    src = source._scan_sql()  # the same files, format and options the reader scans
    q = lambda name: '"' + str(source.fields[name]).replace('"', '""') + '"'  # noqa: E731
    kind = source.raw_columns.get(str(source.fields["timestamp"]), "VARCHAR").upper()
    day = (
        f"CAST({q('timestamp')} AS DATE)"
        if kind.startswith(("TIMESTAMP", "DATE"))
        else f"left(CAST({q('timestamp')} AS VARCHAR), 10)"
    )
    props = [source.json_properties] if source.json_properties else list(source.property_columns.values())
    columns = ", ".join(
        [q("event"), q("distinct_id"), q("timestamp"), *('"' + c.replace('"', '""') + '"' for c in props)]
    )
    scan, t1 = _measure(lambda: con.sql(
        f"SELECT count(*), count(DISTINCT {q('distinct_id')}), count(DISTINCT {day}) FROM {src}").fetchall()[0])  # fmt: skip
    table, t2 = _measure(lambda: con.sql(f"SELECT {columns} FROM {src}").to_arrow_table())
    rows = int(scan[0])  # type: ignore[index]
    return {"shape": f"{source.shape} ({source.file_format}, {len(source.files)} file(s))", "rows": rows,
            "users": int(scan[1]), "days": int(scan[2]),  # type: ignore[index]
            "scan": t1, "read_with_properties": {**t2, "rows_per_second": round(rows / max(t2["seconds"], 1e-9))}}  # fmt: skip


def _mapping(text: str | None):  # noqa: ANN202
    from simulation_assets.sinks.posthog_export import ColumnMapping

    return ColumnMapping.parse(text) if text else None


def stage_fit(export: Path, work: Path, mapping: str | None) -> dict:
    from simulation_assets.core.twin.config import FitConfig
    from simulation_assets.core.twin.fit import fit
    from simulation_assets.sinks.twin_source import load_for_fit
    from simulation_assets.sinks.twin_spec_store import save_spec

    cfg = FitConfig()
    loaded, t_load = _measure(lambda: load_for_fit(export, _mapping(mapping), cfg))
    spec, t_fit = _measure(
        lambda: fit(loaded.prepared, loaded.property_sample, loaded.key_stats, cfg, export.name)
    )  # type: ignore[union-attr]
    _, t_save = _measure(lambda: save_spec(spec, work / "spec"))  # type: ignore[arg-type]
    rows = loaded.prepared.rows  # type: ignore[union-attr]
    total = round(t_load["seconds"] + t_fit["seconds"] + t_save["seconds"], 2)
    return {"rows": rows, "users": loaded.prepared.users.height, "classes": len(spec.document.classes),  # type: ignore[union-attr]
            "read": t_load, "estimate": t_fit, "write_spec": t_save, "seconds": total,
            "cpu_seconds": round(t_load["cpu_seconds"] + t_fit["cpu_seconds"] + t_save["cpu_seconds"], 2),
            "rows_per_second": round(rows / max(total, 1e-9)), "peak_rss_mib": t_save["peak_rss_mib"]}  # fmt: skip


def stage_generate(work: Path) -> dict:
    import polars as pl

    from simulation_assets.core.twin.generate import Generator
    from simulation_assets.sinks.memory import tune_generator_memory
    from simulation_assets.sinks.twin_spec_store import load_spec

    tune_generator_memory()  # as the twin_events asset does
    spec = load_spec(work / "spec")
    gen = Generator(spec)
    g = spec.document.generation
    out = work / "twin"
    out.mkdir(exist_ok=True)
    _, t_plan = _measure(lambda: gen.active_by_day)
    wall, rows = time.perf_counter(), 0
    gen_cpu = 0.0
    for i in range(g.days):
        c = time.process_time()
        frame = gen.day(g.start + dt.timedelta(days=i))
        gen_cpu += time.process_time() - c
        rows += frame.height
        frame.write_parquet(out / f"{(g.start + dt.timedelta(days=i)).isoformat()}.parquet")
    seconds = time.perf_counter() - wall
    columns = len(pl.read_parquet_schema(out / f"{g.start.isoformat()}.parquet"))
    return {"users": g.users, "days": g.days, "events": rows, "columns": columns, "plan": t_plan,
            "seconds_with_parquet": round(seconds, 2), "generate_cpu_seconds": round(gen_cpu, 2),
            "events_per_cpu_second": round(rows / max(gen_cpu, 1e-9)),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # fmt: skip


def stage_report(export: Path, work: Path, mapping: str | None) -> dict:
    import polars as pl

    from simulation_assets.core.twin.fidelity import compare
    from simulation_assets.core.twin.fit import prepare
    from simulation_assets.core.twin.generate import as_export_rows
    from simulation_assets.core.twin.privacy import dcr_test
    from simulation_assets.sinks.twin_source import load_real
    from simulation_assets.sinks.twin_spec_store import load_spec

    spec = load_spec(work / "spec")
    from simulation_assets.core.twin.config import FitConfig

    cfg = FitConfig(**spec.document.fit)
    _, real = load_real(export, _mapping(mapping), cfg)
    twin_rows = pl.concat(
        [pl.read_parquet(f) for f in sorted((work / "twin").glob("*.parquet"))], how="diagonal_relaxed"
    )
    twin = prepare(as_export_rows(twin_rows), cfg)
    report, t_fid = _measure(lambda: compare(real, twin))
    privacy = dcr_test(real, twin)
    return {"real_users": report.real_users, "twin_users": report.twin_users, "seconds": t_fid["seconds"],  # type: ignore[union-attr]
            "comparisons": [{"name": c.name, "kind": c.kind, "value": c.value, "bound": c.bound, "passed": c.passed,
                             **({k: v for k, v in c.detail.items() if k.startswith("auc")})}
                            for c in report.comparisons],  # type: ignore[union-attr]
            "retention": report.retention.to_dicts(), "dau_wau": report.dau_wau,  # type: ignore[union-attr]
            "privacy": {"closer_to_training_share": privacy.closer_to_training_share, "bound": privacy.bound,
                        "too_close_share": privacy.too_close_share, "exact_copies": privacy.exact_copies}}  # fmt: skip


def build_export(pool: int, days: int, path: Path) -> dict:
    from simulation_assets.sinks.twin_hogflix_export import write_hogflix_export_folder

    partial = path.with_name(path.name + ".partial")  # renamed when whole: a killed build is not reused
    (_, rows), t = _measure(lambda: write_hogflix_export_folder(pool, days, partial))  # type: ignore[misc]
    partial.rename(path)
    size = sum(f.stat().st_size for f in path.glob("*.parquet"))
    return {"pool": pool, "days": days, "rows": rows, "simulate_and_write": t, "bytes": size}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--pool", type=int, default=10_000, help="HogFlix persona pool (10,000 x 63 days ~ 10M events)"
    )
    p.add_argument("--days", type=int, default=63)
    p.add_argument(
        "--export", type=Path, default=None, help="an export of any shape (default: HogFlix's, built once)"
    )
    p.add_argument(
        "--map", default=None, help="column mapping of a generic table, as simulate twin fit --map takes it"
    )
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--skip-report", action="store_true")
    p.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.stage:
        work = Path(args.work)
        result = {
            "duckdb": lambda: stage_duckdb(args.export, args.map),
            "fit": lambda: stage_fit(args.export, work, args.map),
            "generate": lambda: stage_generate(work),
            "report": lambda: stage_report(args.export, work, args.map),
        }[args.stage]()
        print(json.dumps(result, default=str))
        return
    base = Path(tempfile.gettempdir()) / "twin-bench"
    base.mkdir(exist_ok=True)
    default_export = args.export is None
    args.export = args.export or base / f"hogflix-{args.pool}-{args.days}"
    args.work = args.work or base / f"work-{args.pool}-{args.days}"
    args.work.mkdir(exist_ok=True)
    results: dict = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count()}
    if not args.export.exists():
        print(f"building the export {args.export} ...", flush=True)
        results["export"] = build_export(args.pool, args.days, args.export)
    for name in ("duckdb", "fit", "generate") + (() if args.skip_report else ("report",)):
        print(f"{name} ...", flush=True)
        results[name] = _stage(name, args)
        print(json.dumps(results[name], default=str)[:600], flush=True)
    results["load_average_end"] = os.getloadavg()
    fit, duck = results["fit"], results["duckdb"]
    results["summary"] = {
        "export": str(args.export), "shape": duck["shape"], "rows": fit["rows"], "users": fit["users"],
        "fit_seconds": fit["seconds"], "fit_cpu_seconds": fit["cpu_seconds"], "fit_peak_rss_mib": fit["peak_rss_mib"],
        "fit_read_cpu_seconds": fit["read"]["cpu_seconds"], "fit_estimate_cpu_seconds": fit["estimate"]["cpu_seconds"],
        "fit_seconds_per_10m_rows": round(fit["seconds"] * 1e7 / max(fit["rows"], 1), 1),
        "fit_rows_per_second": fit["rows_per_second"],
        "duckdb_read_rows_per_second": duck["read_with_properties"]["rows_per_second"],
        "fit_vs_duckdb_read": round(fit["seconds"] / max(duck["read_with_properties"]["seconds"], 1e-9), 2),
        "generate_events_per_cpu_second": results["generate"]["events_per_cpu_second"],
        "load_average_start_end": [results["load_average_start"][0], results["load_average_end"][0]],
    }  # fmt: skip
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = "twin.json" if default_export else f"twin-{args.export.name.split('.')[0]}.json"
    (out / name).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
