"""``simulate twin fit / run / report``: the assets run in-process and are recorded; bad input exits 2 and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from simulation_assets.cli import main
from simulation_assets.core.twin.example import synthetic_events
from simulation_assets.sinks.posthog_export import write_export
from simulation_assets.sinks.twin_spec_store import load_spec


@pytest.fixture(scope="module")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PostHog batch export (JSON lines) of the synthetic product: 400 users over 63 days."""
    frame = synthetic_events(users=400, days=63, seed=11)
    return write_export(frame, tmp_path_factory.mktemp("cli") / "export.jsonl", "batch-jsonl")


def test_fit_run_report_end_to_end_is_recorded_in_the_instance(
    small_export: Path, tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    spec_dir, run_dir, report_dir = tmp_path / "spec", tmp_path / "run", tmp_path / "report"
    assert main(["twin", "fit", "--events", str(small_export), "--output", str(spec_dir)]) == 0
    spec = load_spec(spec_dir)
    assert spec.document.source.users == 400 and spec.document.source.sessions_rebuilt
    gen = spec.document.generation
    # Without --users / --days the run makes what twin.yaml's generation section says (its header says so).
    assert main(["twin", "run", "--spec", str(spec_dir), "--output", str(run_dir), "--single-file"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["users"], summary["days"]) == (gen.users, gen.days)
    files = sorted((run_dir / "events").glob("*.parquet"))
    assert len(files) == gen.days and files[0].stem == gen.start.isoformat()
    assert summary["events"] == pl.read_parquet(run_dir / "events.parquet").height > 50_000
    assert main(["twin", "report", "--spec", str(spec_dir), "--events", str(small_export), "--twin", str(run_dir),
                 "--output", str(report_dir)]) == 0  # fmt: skip
    checks = json.loads((report_dir / "checks.json").read_text())
    assert set(checks) == {"per_user_distributions_ks", "profiles_tv", "retention_weeks_1_8", "tstr_churn_auc",
                           "calendar_days", "carried_values", "version_mix", "twin_not_closer_than_holdout",
                           "no_identifiers_copied"}  # fmt: skip
    # The check results are the reports' verdicts (on 400 users some fidelity bounds are tight: the
    # round-trip tests hold the targets on larger exports); the privacy checks hold here too.
    fidelity = json.loads((report_dir / "fidelity.json").read_text())
    kinds = {"ks": "per_user_distributions_ks", "tv": "profiles_tv", "retention": "retention_weeks_1_8",
             "auc": "tstr_churn_auc", "calendar": "calendar_days", "carried": "carried_values",
             "versions": "version_mix"}  # fmt: skip
    for kind, check in kinds.items():
        assert checks[check] == all(c["passed"] for c in fidelity["comparisons"] if c["kind"] == kind)
    assert checks["twin_not_closer_than_holdout"] and checks["no_identifiers_copied"]
    assert "| sessions_per_week | ks |" in (report_dir / "report.md").read_text()
    # This product carries no value on within sessions and rolls out no version: those checks pass and say so.
    for name in ("carried_values", "version_mix"):
        judged = next(c for c in fidelity["comparisons"] if c["name"] == name)
        assert checks[name] and judged["detail"]["note"].startswith("not applicable"), judged
        assert f"- {name}: not applicable" in (report_dir / "report.md").read_text()  # said beside the table
    # What the CLI ran is what the UI shows: three runs with the twin's assets and the checks' results.
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    assert len(runs) == 3 and all(r.is_success for r in runs)
    for key in ("twin_spec", "twin_fidelity", "twin_privacy"):
        assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None
    # The UI says why a table is empty (it showed "| | |" for the versions of an export that rolls out none).
    shown = instance.get_latest_materialization_event(
        dg.AssetKey("twin_fidelity")
    ).asset_materialization.metadata
    for name in ("carried_values", "version_mix"):
        assert shown[name].value.startswith("not applicable"), shown[name]
    assert len(instance.get_materialized_partitions(dg.AssetKey("twin_events"))) == gen.days
    for asset, check in (("twin_fidelity", "profiles_tv"), ("twin_privacy", "no_identifiers_copied")):
        key = dg.AssetCheckKey(dg.AssetKey(asset), check)
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        assert record.status.value == ("SUCCEEDED" if checks[check] else "FAILED")
    out = capsys.readouterr().out
    assert "classes (BIC)" in out and "checks passed" in out
    assert "sessions rebuilt" in out  # the export has no $session_id: the fit says so


@pytest.fixture(scope="module")
def bad_input_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the bad-input cases name: small exports, a file without the needed columns and a spec that loads
    (fitted by the command once, in a Dagster home of its own), to reach the later checks."""
    root = tmp_path_factory.mktemp("bad_input")
    csv = write_export(synthetic_events(users=30, days=7, seed=3), root / "in" / "e.csv", "csv")
    bad = root / "in" / "bad.csv"
    bad.write_text("user,ts,name\nu,2026-01-01T00:00:00Z,e\n")
    tiny = write_export(synthetic_events(users=8, days=7, seed=3), root / "tiny" / "e.csv", "csv")
    short = write_export(synthetic_events(users=30, days=3, seed=3), root / "short" / "e.csv", "csv")
    spec = root / "spec"
    with pytest.MonkeyPatch.context() as env:
        for name, folder in (("DAGSTER_HOME", "dagster_home"), ("SIMULATION_DATA_DIR", "data")):
            (root / folder).mkdir()
            env.setenv(name, str(root / folder))
        assert main(["twin", "fit", "--events", str(csv), "--output", str(spec)]) == 0
    return {
        "{csv}": str(csv),
        "{bad}": str(bad),
        "{csv_dir}": str(csv.parent),
        "{spec}": str(spec),
        "{tiny}": str(tiny),
        "{short}": str(short),
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "--events", "/nonexistent/export.parquet"], "no such file or folder"),
        (["fit", "--events", "{csv}", "--map", "who=user"], "unknown field 'who'"),
        (["fit", "--events", "{bad}"], "no event / distinct_id / timestamp column"),
        (["fit", "--events", "{csv}", "--k", "1"], "--k must be at least 2"),
        (["fit", "--events", "{tiny}"], "a twin needs at least 10 (2 x k)"),
        (
            ["fit", "--events", "{short}"],
            "the export covers 3 day(s) (2026-02-02..2026-02-04); a twin needs at least 7",
        ),
        (["run", "--spec", "/nonexistent", "--users", "10", "--days", "3"], "no such spec folder"),
        (["run", "--spec", "{csv_dir}", "--users", "10", "--days", "3"], "no twin.yaml in this folder"),
        (["run", "--spec", "{spec}", "--users", "0", "--days", "3"], "--users must be a positive integer"),
        (
            ["run", "--spec", "{spec}", "--users", "10", "--days", "3", "--start", "2026-13-01"],
            "--start must be a date",
        ),
        (
            ["run", "--spec", "{spec}", "--users", "10", "--days", "3", "--drop-event", "nope"],
            "not an event of this twin",
        ),
        (
            ["report", "--spec", "{spec}", "--events", "{csv}", "--twin", "{csv_dir}"],
            "no events/<day>.parquet",
        ),
    ],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(
    bad_input_files: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list,
    message: str,
) -> None:
    out = tmp_path / "out"
    argv = ["twin", *[bad_input_files.get(a, a) for a in args], "--output", str(out)]
    assert main(argv) == 2
    said = capsys.readouterr()
    assert message in said.out
    # One error line: a problem found during the run is not also logged as a step failure with a traceback.
    assert "Traceback" not in said.out + said.err and "STEP_FAILURE" not in said.out + said.err
    assert not out.exists()  # not even an empty folder


def test_the_report_puts_identical_users_beside_the_holdouts_and_leaves_unmeasured_weeks_out() -> None:
    from simulation_assets.commands.twin import _markdown

    fidelity = {"real_users": 15000, "twin_users": 15070, "days": 43, "comparisons": [
                    {"name": "retention_weeks_1_8", "kind": "retention", "value": 0.0704, "bound": 0.0666,
                     "passed": False, "detail": {}}],
                "retention": [{"week": 1, "real": 0.152, "twin": 0.1519}, {"week": 6, "real": None, "twin": None},
                              {"week": 7, "real": None, "twin": None}],
                "dau_wau": {"real": 0.25, "twin": 0.23}}  # fmt: skip
    privacy = {"closer_to_training_share": 0.505, "bound": 0.55, "too_close_share": 0.04, "twin_users": 15070,
               "holdout_users": 2950, "exact_copies": 1024, "holdout_exact_matches": 210, "singled_out_cut": 0.51,
               "training_singled_out_share": 0.052, "holdout_singled_out_share": 0.05, "singled_out_share_max": 0.063,
               "copied_identifiers": {"uuid": 0, "distinct_id": 0, "session_id": 0}}  # fmt: skip
    text = _markdown(fidelity, privacy, {"twin_not_closer_than_holdout": True})
    assert "| 1 | 0.152 | 0.152 |" in text and "| 6 |" not in text and "None" not in text
    assert "Weeks 6, 7: not measured" in text
    assert (
        "| retention_weeks_1_8 | retention | 7.0 points | 6.7 points | NO |" in text
    )  # as its target is said
    assert (
        "1,024 of 15,070 (6.8 %); holdout users, never fitted, identical to one: 210 of 2,950 (7.1 %)" in text
    )
    assert "Real identifiers found in the twin: none" in text
    assert "training users 5.2%, holdout users 5.0% (bound 6.3%" in text


def test_the_report_names_the_figure_a_failing_check_missed() -> None:
    from simulation_assets.commands.twin import _missed_measures

    # The summary line names a check (per_user_distributions_ks); the lines under it name which figure missed.
    fidelity = {"comparisons": [
        {"name": "sessions_per_week", "kind": "ks", "value": 0.02, "bound": 0.05, "passed": True, "detail": {}},
        {"name": "gap_hours", "kind": "ks", "value": 0.0825, "bound": 0.05, "passed": False, "detail": {}},
        {"name": "carried_values", "kind": "carried", "value": 0.73, "bound": 0.163, "passed": False, "detail": {
            "worst": {"event": "iap_purchase", "key": "screen", "export": 0.98, "twin": 0.25}}},
        {"name": "retention_weeks_1_8", "kind": "retention", "value": float("nan"), "bound": 0.03, "passed": False,
         "detail": {"note": "not measured: 10 days hold no full week after a first week"}},
        {"name": "retention_weeks_1_8", "kind": "retention", "value": 0.0704, "bound": 0.0666, "passed": False,
         "detail": {}},
    ]}  # fmt: skip
    assert _missed_measures(fidelity) == [
        "missed: gap_hours (ks) 0.0825, bound 0.05",
        "missed: carried_values (carried) 0.73, bound 0.163: iap_purchase screen, export 0.98 vs twin 0.25",
        "missed: retention_weeks_1_8 (retention) nan, bound 0.03: not measured: 10 days hold no full week after a"
        " first week",
        # A share printed as 0.0704 read as 0.07 points to someone told the target is 3 points.
        "missed: retention_weeks_1_8 (retention) 7.0 points, bound 6.7 points",
    ]


def test_the_fit_names_the_properties_it_dropped() -> None:
    from simulation_assets.commands.twin import _dropped

    # "6 properties dropped" left a newcomer looking for $groups in the twin; "1 properties" read oddly.
    rows = [{"key": k, "reason": "identifier or personal data"} for k in ("$session_id", "$groups", "$set")]
    assert _dropped(rows) == "3 properties dropped ($session_id, $groups, $set: see privacy in twin.yaml)"
    assert _dropped(rows[:1]) == "1 property dropped ($session_id: see privacy in twin.yaml)"
    many = [{"key": f"k{i}"} for i in range(7)]
    assert _dropped(many) == "7 properties dropped (k0, k1, k2, k3, k4 and 2 more: see privacy in twin.yaml)"
    assert _dropped([]) == "no property dropped"
