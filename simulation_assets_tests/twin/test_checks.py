"""Every twin check passes on the fitted twin and fails on a twin that is wrong on purpose."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.twin import checks
from simulation_assets.core.twin.config import Targets
from simulation_assets.core.twin.example import synthetic_events
from simulation_assets.core.twin.fidelity import (
    Comparison,
    FidelityReport,
    carried_values,
    carried_values_comparison,
    compare,
)
from simulation_assets.core.twin.fit import Prepared, prepare
from simulation_assets.core.twin.generate import as_export_rows
from simulation_assets.core.twin.privacy import copied_identifiers, dcr_test
from simulation_assets.sinks.twin_source import LoadedExport
from simulation_assets_tests.twin.conftest import CFG


@pytest.fixture(scope="module")
def report(loaded: LoadedExport, twin_prepared: Prepared) -> FidelityReport:
    return compare(loaded.prepared, twin_prepared)


def _twin(twin_frame: pl.DataFrame, change) -> Prepared:  # noqa: ANN001
    return prepare(change(as_export_rows(twin_frame)), CFG)


def test_the_fitted_twin_passes_every_fidelity_check(report: FidelityReport) -> None:
    outcomes = {
        "ks": checks.per_user_distributions_ks(report),
        "tv": checks.profiles_tv(report),
        "retention": checks.retention_within_points(report),
        "tstr": checks.tstr_auc_gap(report),
        "calendar": checks.calendar_days_followed(report),
    }
    assert {k: o.passed for k, o in outcomes.items()} == dict.fromkeys(outcomes, True), {
        k: o.metadata["failing"] for k, o in outcomes.items()
    }
    tstr = report.by_name("tstr_churn_auc").detail
    assert tstr["auc_real"] > 0.7 and abs(tstr["auc_twin"] - tstr["auc_real"]) <= 0.03


def test_shuffled_flows_fail_the_transition_and_path_distances(
    loaded: LoadedExport, twin_frame: pl.DataFrame
) -> None:
    g = np.random.default_rng(0)
    shuffled = _twin(
        twin_frame,
        lambda rows: rows.with_columns(pl.Series("event", g.permutation(rows["event"].to_numpy()))),
    )
    outcome = checks.profiles_tv(compare(loaded.prepared, shuffled))
    assert not outcome.passed
    assert {"top_transitions", "top_paths"} <= set(outcome.metadata["failing"])
    assert "event_mix" not in outcome.metadata["failing"]  # the mix itself is untouched


def test_a_twin_active_at_the_wrong_hours_fails_the_hour_of_week_profile(
    loaded: LoadedExport, twin_frame: pl.DataFrame
) -> None:
    late = _twin(twin_frame, lambda rows: rows.with_columns(pl.col("timestamp") + dt.timedelta(hours=9)))
    assert "hour_of_week" in checks.profiles_tv(compare(loaded.prepared, late)).metadata["failing"]


def test_sessions_cut_short_fail_the_per_user_distributions(
    loaded: LoadedExport, twin_frame: pl.DataFrame
) -> None:
    short = twin_frame.filter(pl.col("sequence") < 2)
    outcome = checks.per_user_distributions_ks(compare(loaded.prepared, _twin(short, lambda r: r)))
    assert not outcome.passed
    assert {"events_per_session", "session_duration"} <= set(outcome.metadata["failing"])


def test_a_twin_whose_users_leave_after_a_week_fails_retention(
    loaded: LoadedExport, twin_frame: pl.DataFrame
) -> None:
    first = twin_frame.group_by("user_number").agg(pl.col("timestamp").min().alias("first"))
    gone = twin_frame.join(first, on="user_number").filter(
        pl.col("timestamp") < pl.col("first") + dt.timedelta(days=7)
    )
    outcome = checks.retention_within_points(compare(loaded.prepared, _twin(gone.drop("first"), lambda r: r)))
    assert not outcome.passed and outcome.metadata["comparisons"]["retention_weeks_1_8"]["value"] > 0.3


def test_a_twin_whose_churn_is_unrelated_to_behaviour_fails_train_on_twin(
    loaded: LoadedExport, twin_frame: pl.DataFrame
) -> None:
    # After the classifier's cutoff, sessions belong to random users: who stays no longer follows from the past.
    # A classifier trained on such labels learns noise, and on ~100 test users (15 churned) the AUC of a noise
    # direction lands anywhere from 0.25 to 0.8 depending on the draws; so three relabelings, and the check must
    # fail on most of them.
    last = twin_frame["timestamp"].max()
    cut = last - dt.timedelta(days=23)
    users = twin_frame["user_number"].unique().sort().to_numpy()
    late = pl.col("timestamp") >= cut
    failed, gaps = 0, []
    for seed in (1, 2, 3):
        relabel = dict(zip(users.tolist(), np.random.default_rng(seed).permutation(users).tolist()))
        mixed = twin_frame.with_columns(
            pl.when(late)
            .then(pl.col("user_number").replace_strict(relabel))
            .otherwise(pl.col("user_number"))
            .alias("user_number")
        ).with_columns(
            pl.when(late)
            .then(pl.format("moved-{}", pl.col("user_number")))
            .otherwise(pl.col("distinct_id"))
            .alias("distinct_id")
        )
        # Tie a moved user's late sessions back to them through an $identify-free person id.
        rows = as_export_rows(mixed).with_columns(mixed["user_number"].cast(pl.String).alias("person_id"))
        report = compare(loaded.prepared, prepare(rows, CFG))
        detail = report.by_name("tstr_churn_auc").detail
        failed += not checks.tstr_auc_gap(report).passed
        gaps.append(detail["auc_real"] - detail["auc_twin"])
    assert failed >= 2 and np.mean(gaps) > 0.1, gaps


def test_the_fitted_twin_is_not_closer_to_its_training_users(
    loaded: LoadedExport, twin_prepared: Prepared
) -> None:
    report = dcr_test(loaded.prepared, twin_prepared)
    assert checks.dcr_not_closer_than_holdout(report).passed, report
    assert report.exact_copies == 0
    assert 0.4 <= report.closer_to_training_share <= report.bound
    assert report.too_close_share <= 0.10


def _own_rows(twin_frame: pl.DataFrame) -> pl.DataFrame:
    """The twin's own events as export rows, in the columns :func:`_copies` gives."""
    return as_export_rows(twin_frame).select(
        "uuid", "event", "distinct_id", "person_id", "timestamp", "session_id"
    )


def _copies(real: Prepared) -> pl.DataFrame:
    """The training users' own events under new names, as export rows."""
    train_keys = real.users.filter(~pl.col("holdout"))["user_key"]
    copied = real.events.join(real.users.select("user", "user_key"), on="user").filter(
        pl.col("user_key").is_in(train_keys)
    )
    return copied.select(
        pl.lit(None, pl.String).alias("uuid"),
        "event",
        pl.format("copy-{}", pl.col("user")).alias("distinct_id"),
        pl.lit(None, pl.String).alias("person_id"),
        pl.from_epoch("t_ms", time_unit="ms")
        .dt.replace_time_zone("UTC")
        .cast(pl.Datetime("us", "UTC"))
        .alias("timestamp"),
        pl.format("s-{}", pl.col("session")).alias("session_id"),
    )


def test_a_twin_copied_from_its_training_users_fails_the_distance_test(
    loaded: LoadedExport, synthetic_frame: pl.DataFrame
) -> None:
    real = loaded.prepared
    rows = _copies(real)
    report = dcr_test(real, prepare(rows, CFG))
    outcome = checks.dcr_not_closer_than_holdout(report)
    assert not outcome.passed and report.exact_copies > 0.9 * report.twin_users
    # Beside the holdout's own matches (users never fitted, identical to a training user by chance): few here.
    assert report.holdout_exact_matches < 0.05 * report.holdout_users
    # Both halves of the test see it: nearer the (subsampled) training users, and far too close to them.
    assert report.closer_to_training_share > report.bound and report.too_close_share > 0.9


def test_a_twin_hiding_a_few_copied_users_among_its_own_fails_the_distance_test(
    loaded: LoadedExport, twin_frame: pl.DataFrame
) -> None:
    real = loaded.prepared
    own = _own_rows(twin_frame)
    ids = own["distinct_id"].unique().sort()
    copies = _copies(real)
    copy_ids = copies["distinct_id"].unique().sort()
    g = np.random.default_rng(3)
    n = int(0.05 * ids.len())  # one twin user in twenty is a real one
    rows = pl.concat(
        [
            own.filter(~pl.col("distinct_id").is_in(g.choice(ids.to_numpy(), n, replace=False).tolist())),
            copies.filter(
                pl.col("distinct_id").is_in(g.choice(copy_ids.to_numpy(), n, replace=False).tolist())
            ),
        ]
    )
    report = dcr_test(real, prepare(rows, CFG))
    # The share nearer the training users and the too-close share hardly move (5 % of users) ...
    assert report.too_close_share <= 0.10 and report.closer_to_training_share <= report.bound
    # ... but twin users identical to a training user far more often than users never fitted are: copies.
    assert report.exact_copies >= 0.04 * report.twin_users
    assert not checks.dcr_not_closer_than_holdout(report).passed, report


def test_real_identifiers_in_a_twin_fail_the_identifier_check(
    loaded: LoadedExport, twin_frame: pl.DataFrame
) -> None:
    real_rows = loaded.export.frame("none")
    twin_rows = as_export_rows(twin_frame)
    clean = copied_identifiers(real_rows, twin_rows)
    assert checks.no_identifiers_copied(clean).passed and sum(clean.values()) == 0
    leaked = twin_rows.with_columns(pl.lit(real_rows["distinct_id"][0]).alias("distinct_id"))
    outcome = checks.no_identifiers_copied(copied_identifiers(real_rows, leaked))
    assert not outcome.passed and outcome.metadata["distinct_id"] == 1


def test_an_export_too_short_to_measure_retention_or_churn_fails_those_checks(
    loaded: LoadedExport, twin_frame: pl.DataFrame
) -> None:
    first = twin_frame["timestamp"].min().replace(hour=0, minute=0, second=0, microsecond=0)  # type: ignore[union-attr]
    short = _twin(twin_frame, lambda r: r.filter(pl.col("timestamp") < first + dt.timedelta(days=10)))  # type: ignore[operator]
    report = compare(loaded.prepared, short)
    assert report.days == 10
    for check, name in (
        (checks.retention_within_points, "retention_weeks_1_8"),
        (checks.tstr_auc_gap, "tstr_churn_auc"),
    ):
        outcome = check(report)  # not measured is not passed
        assert not outcome.passed
        assert outcome.metadata["comparisons"][name]["note"].startswith("not measured: 10 days")


def test_the_report_does_not_name_real_events_of_fewer_than_k_users(
    loaded: LoadedExport, twin_prepared: Prepared
) -> None:
    real = loaded.prepared
    users = real.events["user"].unique().sort().to_list()
    first = pl.col("seq") == 0
    renamed = real.events.with_columns(
        pl.when(first & (pl.col("user") == users[0]))
        .then(pl.lit("Exported data for jane@corp.example"))
        .when(first & pl.col("user").is_in(users[1:5]))
        .then(pl.lit("secret_beta"))  # four users (k - 1), every session
        .otherwise(pl.col("event"))
        .alias("event")
    )
    report = compare(Prepared(renamed, *[getattr(real, f) for f in ("users", "sessions", "user_stats", "window",
                                                                     "rebuilt", "rows")]), twin_prepared)  # fmt: skip
    text = str(report.as_dict())
    assert "jane@" not in text and "secret_beta" not in text
    mix = dict(zip(report.event_mix["event"], report.event_mix["real"]))
    assert mix["other"] > 0 and "other" not in set(twin_prepared.events["event"])


def test_a_twin_that_misses_the_exports_holiday_fails_the_calendar_check(
    loaded: LoadedExport, twin_prepared: Prepared, report: FidelityReport
) -> None:
    # The export with a holiday on its 30th day (85 % of its returning users away): the twin, fitted on the
    # export without it, keeps the day's usual traffic and fails; on the export as it is there is no
    # calendar day to miss.
    real = loaded.prepared
    assert report.by_name("calendar_days").detail["days"] == 0  # nothing to miss, and the report says so
    assert report.by_name("calendar_days").detail["note"].startswith("not applicable")
    holiday = real.window.first + 30
    first = real.sessions.group_by("user").agg(pl.col("day").min().alias("first"))
    sessions = real.sessions.join(first, on="user")
    away = (pl.col("day") == holiday) & (pl.col("first") < holiday) & (pl.col("user").hash(7) % 100 < 85)
    quiet = Prepared(real.events, real.users, sessions.filter(~away).drop("first"), real.user_stats, real.window,
                     real.rebuilt, real.rows)  # fmt: skip
    outcome = checks.calendar_days_followed(compare(quiet, twin_prepared))
    detail = outcome.metadata["comparisons"]["calendar_days"]
    assert (
        not outcome.passed and detail["days"] >= 1 and detail["value"] > 1.0
    )  # the twin: twice the day's users


def _perturbed(real: Prepared, rows: pl.DataFrame, g: np.random.Generator) -> pl.DataFrame:
    """``rows`` (copies of ``real``'s users) moved in time: each user by up to an hour either way, each session's
    start by up to a tenth of its nearer gap to a neighbouring session, each session's events stretched or
    shrunk by up to a tenth about its start."""
    s = real.sessions.sort("user", "start_ms").with_columns(
        (pl.col("start_ms") - pl.col("start_ms").shift(1).over("user")).alias("before"),
        (pl.col("start_ms").shift(-1).over("user") - pl.col("start_ms")).alias("after"),
    )
    near = s.select(pl.min_horizontal("before", "after").fill_null(0))["before"].to_numpy()
    users = s["user"].unique().sort()
    hour = pl.DataFrame({"user": users, "shift": g.uniform(-3.6e6, 3.6e6, users.len())})
    moves = s.select(
        pl.format("s-{}", pl.col("session")).alias("session_id"),
        "user",
        pl.col("start_ms").alias("s0"),
        pl.Series("move", g.uniform(-0.1, 0.1, s.height) * near),
        pl.Series("stretch", g.uniform(0.9, 1.1, s.height)),
    ).join(hour, on="user")
    t_ms = pl.col("timestamp").dt.epoch("ms")
    moved = pl.col("s0") + pl.col("shift") + pl.col("move") + (t_ms - pl.col("s0")) * pl.col("stretch")
    return (
        rows.join(moves, on="session_id")
        .with_columns(
            pl.from_epoch(moved.cast(pl.Int64), time_unit="ms")
            .dt.replace_time_zone("UTC")
            .cast(rows["timestamp"].dtype)
            .alias("timestamp")
        )
        .select(rows.columns)
    )


def _hide(own: pl.DataFrame, copies: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """``own`` with ``share`` of its users replaced by as many users of ``copies``."""
    g = np.random.default_rng(seed)
    ids, copy_ids = own["distinct_id"].unique().sort(), copies["distinct_id"].unique().sort()
    n = int(share * ids.len())
    gone = g.choice(ids.to_numpy(), n, replace=False).tolist()
    taken = g.choice(copy_ids.to_numpy(), n, replace=False).tolist()
    return pl.concat(
        [
            own.filter(~pl.col("distinct_id").is_in(gone)),
            copies.filter(pl.col("distinct_id").is_in(taken)).with_columns(
                pl.col("timestamp").cast(own["timestamp"].dtype)
            ),
        ]
    )


def _rows(frame: pl.DataFrame, prefix: str) -> pl.DataFrame:
    """The synthetic product's events as export rows (sessions found by inactivity), ids prefixed."""
    return frame.select(
        pl.lit(None, pl.String).alias("uuid"),
        "event",
        (prefix + pl.col("distinct_id")).alias("distinct_id"),
        pl.lit(None, pl.String).alias("person_id"),
        "timestamp",
        pl.lit(None, pl.String).alias("session_id"),
    )


@pytest.fixture(scope="module")
def product_and_sample() -> tuple[Prepared, pl.DataFrame]:
    """2,000 users of the synthetic product, and as a twin that copies nobody, 2,000 other users of it."""
    real = prepare(_rows(synthetic_events(users=2000, days=42, seed=7), ""), CFG)
    return real, _rows(synthetic_events(users=2000, days=42, seed=8), "twin-")


def test_a_twin_hiding_copies_moved_in_time_fails_the_membership_half(
    product_and_sample: tuple[Prepared, pl.DataFrame],
) -> None:
    real, sample = product_and_sample
    honest = dcr_test(real, prepare(sample, CFG))
    assert checks.dcr_not_closer_than_holdout(honest).passed, honest
    moved = _perturbed(real, _copies(real), np.random.default_rng(5))
    report = dcr_test(real, prepare(_hide(sample, moved, 0.10, 3), CFG))
    # Moved copies are identical to nobody, and too few to move the share nearer the training users ...
    assert report.exact_copies <= 0.01 * report.twin_users and report.closer_to_training_share <= report.bound
    # ... but each singles its original out: far more training users than holdout users have one twin user
    # much nearer than any other.
    assert report.training_singled_out_share > report.singled_out_share_max, report
    assert not checks.dcr_not_closer_than_holdout(report).passed


def test_copies_in_a_twin_run_longer_than_the_export_are_still_copies(
    loaded: LoadedExport, twin_frame: pl.DataFrame
) -> None:
    real = loaded.prepared
    own = _own_rows(twin_frame)
    days = dt.timedelta(days=real.window.days)
    # The twin's own users go on for as many days again past the export's last day.
    longer = pl.concat([own, own.with_columns(pl.col("timestamp") + days, pl.col("session_id") + "-later")])
    report = dcr_test(real, prepare(_hide(longer, _copies(real), 0.05, 3), CFG))
    assert report.exact_copies >= 0.04 * report.twin_users, report
    assert not checks.dcr_not_closer_than_holdout(report).passed


def _judged_once_and_by_many(
    one: pl.DataFrame, keys: pl.DataFrame, twin_share: float
) -> tuple[Comparison, Comparison]:
    """Return the carried-values check of ``one`` (a session of one row with a previous value, whose share is
    ``twin_share``) and of 400 users each doing the same."""
    table = carried_values(one, keys, top=None)
    assert table["rows"].to_list() == [1] and table["twin"].to_list() == [twin_share]
    many = pl.concat([
        one.with_columns(pl.lit(f"s{u}").alias("$session_id"), pl.lit(u).alias("user_number")) for u in range(400)
    ])  # fmt: skip
    return (carried_values_comparison(table, 300, 1_000, Targets()),
            carried_values_comparison(carried_values(many, keys, top=None), 300, 1_000, Targets()))  # fmt: skip


def test_a_carried_value_seen_on_one_twin_row_is_not_judged_without_noise() -> None:
    # A rare purchase: one twin session buys twice at the same price (its share 1.0), the export's sample
    # repeated the price on a third of its few such rows. The twin's spread over its one user is nil; a
    # comparison of one row is noise, not a miss (it failed the check with a bound of 0).
    keys = pl.DataFrame({"event": ["buy"], "key": ["price"], "same_share": [1 / 3]})
    t0 = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)
    one = pl.DataFrame({
        "$session_id": ["s1", "s1"], "timestamp": [t0, t0 + dt.timedelta(seconds=30)],
        "user_number": [1, 1], "event": ["buy", "buy"], "price": [4.99, 4.99],
    })  # fmt: skip
    check, many = _judged_once_and_by_many(one, keys, 1.0)
    assert check.passed, check.detail
    # Many users repeating it every time is a miss: the floor is one row's noise, not a free pass.
    assert not many.passed and many.value > 0.6, many.detail
    # An export's sample that always repeated it (share 1.0: no spread at that share) and one twin row that
    # does not: still one row's noise (a page before a rare plan change failed the check with a bound of 0.05).
    always = keys.with_columns(pl.lit(1.0).alias("same_share"))
    check, many = _judged_once_and_by_many(one.with_columns(pl.Series("price", [4.99, 5.99])), always, 0.0)
    assert check.passed, check.detail
    assert not many.passed and many.value > 0.9, many.detail
