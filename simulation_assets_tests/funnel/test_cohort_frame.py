"""The events frame of a cohort, built column by column, holds exactly what its blocks said; the
calibration's shortcuts leave its bytes alone."""

from __future__ import annotations

import numpy as np
import polars as pl

from simulation_assets.core.funnel.cohort.draws import hex_ids
from simulation_assets.core.funnel.cohort.frame import EventBlocks, assemble
from simulation_assets.core.funnel.hazard import calibrated_probability, logistic
from simulation_assets.core.funnel.schema import EVENT_SCHEMA

LOGIN_MS = 1_000


def _blocks() -> EventBlocks:
    """Blocks with every kind of property value: scalars (None too), arrays, Series with nulls."""
    blocks = EventBlocks()
    sess = pl.Series(["s0", "s1", "s2"])
    blocks.add("ad_click", np.array([0, 1, 2]), np.array([10, 20, 30]), sess, page_path="/")
    blocks.add(
        "login_success", np.array([0]), np.array([LOGIN_MS]), sess[:1], page_path="/auth/callback", coupon="C"
    )
    blocks.add("ad_click", np.array([2]), np.array([5]), np.array(["s9"], dtype=object), page_path=None)
    blocks.add(
        "job_created",
        np.array([0, 1]),
        np.array([LOGIN_MS + 1, LOGIN_MS + 2]),
        sess[:2],
        job_id=pl.Series(["job_a", None]),
        credits_after=np.array([True, False]),  # booleans into an integer column
        price=np.array([3, 4]),  # integers into a number column
        is_first_job=pl.Series([None, True]),
        coupon=np.array(["X", "Y"], dtype=object),
    )
    blocks.add(
        "processing_completed",
        np.array([0, 1]),
        np.array([LOGIN_MS + 5, LOGIN_MS - 5]),
        sess[:2],
        job_id=pl.Series(["job_a", "job_b"]),
        success=True,
        credits_after=7,
        price=2.5,
        failure_reason=None,
    )
    return blocks


def _reference(blocks: EventBlocks, users: pl.DataFrame, login: np.ndarray) -> pl.DataFrame:
    """The frame built row by row in Python: what each block said, its attribution, the identity rule."""
    rows = []
    for b in blocks.blocks:
        source = {"ad_click": "web", "login_success": "web", "job_created": "server"}.get(b.event, "worker")
        for i, (who, t) in enumerate(zip(b.user.tolist(), b.t_ms.tolist(), strict=True)):
            after = bool(t >= login[who])
            row = {
                "event": b.event,
                "t": t,
                "environment": "simulation",
                "session_id": b.session[i],
                "user_id": users["usr_id"][who] if after else None,
                "distinct_id": users["usr_id"][who] if after and source != "web" else users["anon_id"][who],
                "utm_source": users["utm_source"][who],
            }
            for name, value in b.props.items():
                value = value[i] if isinstance(value, pl.Series | np.ndarray) else value
                row[name] = value.item() if isinstance(value, np.generic) else value
            rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def test_assembled_frame_holds_each_blocks_values_and_the_identity_rule() -> None:
    users = pl.DataFrame(
        {
            "user": [0, 1, 2],
            "anon_id": ["anon_a", "anon_b", "anon_c"],
            "usr_id": ["usr_a", "usr_b", "usr_c"],
            "utm_source": ["google", "facebook", None],
        }
    )
    login = np.array([LOGIN_MS, LOGIN_MS, 10**15])
    blocks = _blocks()
    frame = assemble(
        blocks, users, login, np.array([True, True, False]), "simulation", np.random.default_rng(3)
    )
    assert frame.schema == pl.Schema(EVENT_SCHEMA)
    want = _reference(blocks, users, login)
    assert frame.height == want.height == 9
    assert frame["timestamp"].dt.epoch("ms").to_list() == want["t"].to_list()
    assert frame["source"].to_list() == ["web"] * 5 + ["server"] * 2 + ["worker"] * 2
    for name in want.columns:
        if name != "t":
            assert frame[name].cast(pl.String).to_list() == want[name].cast(pl.String).to_list(), name
    assert frame["credits_after"].to_list() == [None] * 5 + [1, 0, 7, 7]
    assert frame["price"].to_list() == [None] * 5 + [3.0, 4.0, 2.5, 2.5]
    # columns no block carries are null throughout, with the frame's type
    assert frame["plan"].null_count() == frame.height and frame["plan"].dtype == pl.String
    assert frame["event_id"].str.contains(r"^evt_[0-9a-f]{24}$").all() and frame["event_id"].n_unique() == 9


def test_hex_ids_are_the_hex_of_the_streams_bytes() -> None:
    for prefix, nbytes in (("evt_", 12), ("sess_", 12), ("usr_", 8), ("", 16), ("x", 3)):
        ids = hex_ids(np.random.default_rng(11), 257, prefix, nbytes)
        raw = np.random.default_rng(11).integers(0, 256, size=(257, nbytes), dtype=np.uint8)
        raw[:, -1] |= 1
        assert ids.dtype == pl.String
        assert ids.to_list() == [prefix + bytes(row).hex() for row in raw]
    assert hex_ids(np.random.default_rng(1), 0, "evt_").to_list() == []


def _plain_bisection(mean_probability: float, score: np.ndarray) -> np.ndarray:
    """The calibration solved the plain way: 60 bisection steps, each on one exponential per person."""
    low, high = -40.0 - score.max(), 40.0 - score.min()
    for _ in range(60):
        mid = (low + high) / 2
        if logistic(mid + score).mean() < mean_probability:
            low = mid
        else:
            high = mid
    return logistic((low + high) / 2 + score)


def test_calibrated_probability_takes_the_plain_bisections_steps_bit_for_bit() -> None:
    gen = np.random.default_rng(0)
    for case in range(300):
        n = int(gen.choice([1, 100, 256, 3000]))
        score = (
            2.0 * (gen.random(n) < 0.5)  # a yes/no signal: few distinct scores
            if case % 3 == 0
            else gen.normal(0.0, 1.0, n) * gen.choice([0.1, 1.0, 10.0, 50.0])
        )
        target = float(gen.choice([1e-6, 0.05, 0.5, 0.999, gen.random()]))
        got = calibrated_probability(target, score)
        assert np.array_equal(got, _plain_bisection(target, score)), (case, n, target)
