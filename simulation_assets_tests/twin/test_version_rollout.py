"""A version that rolls out keeps rolling out in the twin: each week's mix is the export's week's.

The synthetic export's users run an app whose new versions come out on days 14, 35 and 56; each user
takes each one a few days after its release (an exponential delay per user and version, one in ten
never updates), so the mix of versions moves week by week and a user never goes back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl
import pytest

from simulation_assets.core.twin import checks
from simulation_assets.core.twin.fidelity import FidelityReport, session_value_comparisons, version_mix
from simulation_assets.core.twin.fit import fit
from simulation_assets.core.twin.generate import Generator
from simulation_assets.core.twin.spec import TwinSpec
from simulation_assets.sinks.twin_source import LoadedExport
from simulation_assets_tests.twin.conftest import CFG, with_keys

VERSIONS = ["3.0.2", "3.1.0", "3.2.0", "3.3.1"]
RELEASED = [0, 14, 35, 56]  # days of the window


def app_versions(distinct_id: pl.Series, day: np.ndarray, seed: int = 3) -> np.ndarray:
    """Each row's app version: the newest one its user had taken by that day."""
    ids, user = np.unique(distinct_id.to_numpy(), return_inverse=True)
    g = np.random.default_rng(seed)
    delay = g.exponential(5.0, (ids.size, len(VERSIONS)))
    delay[:, 0] = 0.0  # the first is everyone's at the start
    delay[g.random(ids.size) < 0.1, 1:] = np.inf  # never updates
    taken = (np.array(RELEASED)[None, :] + delay)[user] <= day[:, None]
    newest = len(VERSIONS) - 1 - np.argmax(taken[:, ::-1], axis=1)
    return np.array(VERSIONS)[newest]


def with_versions(loaded: LoadedExport) -> LoadedExport:
    sample = loaded.property_sample
    first = sample["timestamp"].dt.date().min()
    day = (sample["timestamp"].dt.date() - first).dt.total_days().to_numpy()  # type: ignore[operator]
    sample = sample.with_columns(pl.Series("$app_version", app_versions(sample["distinct_id"], day)))
    return with_keys(loaded, sample, {"$app_version": "VARCHAR"})


def weekly_mix(frame: pl.DataFrame, day: pl.Expr, key: str = "$app_version") -> np.ndarray:
    """Rows: weeks; columns: VERSIONS; each row's shares of the week's rows with the key."""
    counts = (
        frame.drop_nulls(key)
        .group_by((day // 7).alias("week"), pl.col(key).cast(pl.String).alias("v"))
        .agg(pl.len().alias("n"))
    )
    weeks = int(counts["week"].max()) + 1  # type: ignore[arg-type]
    table = np.zeros((weeks, len(VERSIONS)))
    for w, v, n in counts.iter_rows():
        table[w, VERSIONS.index(v)] += n
    return table / np.maximum(table.sum(axis=1, keepdims=True), 1)


@pytest.fixture(scope="module")
def version_spec(loaded: LoadedExport) -> TwinSpec:
    extra = with_versions(loaded)
    return fit(extra.prepared, extra.property_sample, extra.key_stats, CFG, "events.csv")


def _twin(spec: TwinSpec) -> pl.DataFrame:
    gen = Generator(spec)
    start = spec.document.generation.start
    return pl.concat([gen.day(start + dt.timedelta(days=d)) for d in range(spec.document.generation.days)])


@pytest.fixture(scope="module")
def rolled(version_spec: TwinSpec) -> pl.DataFrame:
    """The twin of the export whose versions roll out."""
    return _twin(version_spec)


@pytest.fixture(scope="module")
def flat(version_spec: TwinSpec) -> pl.DataFrame:
    """The same twin drawing its versions from one mix for the whole window (the spec without its trends)."""
    still = dataclasses.replace(version_spec, tables={**version_spec.tables,
                                "property_trends": version_spec.tables["property_trends"].head(0)})  # fmt: skip
    return _twin(still)


def test_a_version_that_rolls_out_keeps_its_weekly_mix_and_users_never_go_back(
    loaded: LoadedExport, version_spec: TwinSpec, rolled: pl.DataFrame, flat: pl.DataFrame
) -> None:
    trends = version_spec.tables["property_trends"]
    assert set(trends["key"]) == {"$app_version"}  # plan, country, browser: one mix for the whole window
    newest = trends.filter(pl.col("rank") == 0)["value"].unique().to_list()
    assert newest == [VERSIONS[-1]]
    extra = with_versions(loaded)
    real = weekly_mix(
        extra.property_sample,
        (pl.col("timestamp").dt.date() - pl.col("timestamp").dt.date().min()).dt.total_days(),
    )
    twin = rolled
    start = version_spec.document.generation.start
    twin_day = (pl.col("timestamp").dt.date() - pl.lit(start)).dt.total_days()
    mixed = weekly_mix(twin, twin_day)
    weeks = min(real.shape[0], mixed.shape[0]) - 1  # the last, partial week aside
    tv = 0.5 * np.abs(real[:weeks] - mixed[:weeks]).sum(axis=1)
    assert tv.max() < 0.12, tv
    # One mix for the window (the spec without its trends) is far from every week but the middle ones.
    one_mix = weekly_mix(flat, twin_day)
    assert (0.5 * np.abs(real[:weeks] - one_mix[:weeks]).sum(axis=1)).mean() > 0.3
    # The report's figure says the same.
    assert version_mix(twin, trends, start)["tv"].max() < 0.12
    assert version_mix(flat, trends, start)["tv"].mean() > 0.3
    # Users move to newer versions only.
    order = pl.col("$app_version").cast(pl.String).replace_strict(VERSIONS, list(range(len(VERSIONS))))
    steps = (
        twin.drop_nulls("$app_version")
        .sort("user_number", "timestamp")
        .select("user_number", order.alias("v"))
        .with_columns(pl.col("v").diff().over("user_number").alias("step"))
    )
    assert (steps["step"].drop_nulls() >= 0).all()
    assert (steps["step"].drop_nulls() > 0).sum() > 100


def test_a_week_s_share_of_a_version_counts_only_where_k_users_had_it() -> None:
    from simulation_assets.core.twin.properties import _version_trends

    # 40 users, one session a day for 14 days: "1.0.0" until day 7, "2.0.0" after; one user had "2.0.0" on day 1.
    user = np.repeat(np.arange(40), 14)
    day = np.tile(np.arange(14), 40)
    version = np.where(day < 7, "1.0.0", "2.0.0")
    version[(user == 3) & (day == 1)] = "2.0.0"
    rows = pl.DataFrame({"user": user, "session": np.arange(user.size), "day": day, "$app_version": version})
    trends = _version_trends(rows, ["$app_version"], days=14, k=5)
    first = dict(trends.filter(pl.col("block") == 0).select("value", "share").iter_rows())
    assert first == {"1.0.0": 1.0, "2.0.0": 0.0}  # one user's early update is not a share of its week
    assert dict(trends.filter(pl.col("block") == 1).select("value", "share").iter_rows())["2.0.0"] == 1.0
    assert (
        _version_trends(rows, ["$app_version"], days=14, k=1)
        .filter((pl.col("block") == 0) & (pl.col("value") == "2.0.0"))["share"]
        .item()
        > 0
    )


def test_the_version_check_fails_a_twin_whose_versions_come_from_one_mix(
    version_spec: TwinSpec, rolled: pl.DataFrame, flat: pl.DataFrame, spec: TwinSpec, twin_frame: pl.DataFrame
) -> None:
    doc = version_spec.document
    users, start, days = doc.properties["sample_users"], doc.generation.start, doc.source.days
    _, versions, (_, check) = session_value_comparisons(rolled, version_spec.tables, users, start, days)
    assert check.name == "version_mix" and check.passed, check.detail
    assert (
        check.detail["weeks_judged"] == versions.height >= 9
        and check.detail["mean"]["$app_version"]["mean_tv"] < 0.05
    )
    _, _, (_, failed) = session_value_comparisons(flat, version_spec.tables, users, start, days)
    assert not failed.passed and failed.value > 0.3, failed.detail
    assert failed.detail["mean"]["$app_version"]["mean_tv"] > failed.detail["mean"]["$app_version"]["bound"]
    report = FidelityReport(0, 0, 0, [failed], *[pl.DataFrame()] * 4, {})
    assert not checks.version_mix_followed(report).passed
    # An export without a version that rolls out (nor values carried on): nothing to miss, both pass and say so.
    plain = spec.document
    _, _, judged = session_value_comparisons(twin_frame, spec.tables, plain.properties["sample_users"],
                                             plain.generation.start, plain.source.days)  # fmt: skip
    assert [c.passed for c in judged] == [True, True]
    assert all(c.detail["note"].startswith("not applicable") for c in judged), judged
