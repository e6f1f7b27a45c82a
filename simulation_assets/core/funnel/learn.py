"""Transition rates learned back from an events table, in DuckDB SQL (tracking plan section 13).

The same SQL runs on simulated events (a polars frame or Parquet files) and on an
export of real events with the canonical columns, so forecasts from simulated and
real data go through one pipeline. Identities are stitched first (anonymous id ->
user id on login), so a person's browser and server events count once.
"""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import polars as pl
from pydantic import BaseModel

from simulation_assets.core.funnel.config import STATE_EVENTS, State, TransitionRates

# person_id: user id when known, else the user id the anonymous id logged in as, else the anonymous id.
STITCHED_SQL = """
CREATE OR REPLACE TEMP VIEW stitched AS
WITH ids AS (
  SELECT distinct_id, arg_min(user_id, "timestamp") AS login_user_id
  FROM events WHERE event = 'login_success' AND user_id IS NOT NULL
  GROUP BY distinct_id
)
SELECT e.*, COALESCE(e.user_id, ids.login_user_id, e.distinct_id) AS person_id
FROM events e LEFT JOIN ids USING (distinct_id)
"""

# One row per person: whether they reached each state (the first event that defines it).
REACHED_SQL = """
CREATE OR REPLACE TEMP TABLE reached AS
SELECT person_id,
{flags}
FROM stitched GROUP BY person_id
"""

# Section 13, adapted: person ids instead of raw distinct ids, an explicit as-of time instead of now().
ACTIVATION_SQL = """
SELECT COUNT(DISTINCT CASE WHEN event = 'login_success' THEN person_id END) * 1.0 /
       NULLIF(COUNT(DISTINCT CASE WHEN event = 'signup_start' THEN person_id END), 0)
FROM stitched
"""
AHA_SQL = """
SELECT COUNT(DISTINCT CASE WHEN event = 'download_clicked' THEN person_id END) * 1.0 /
       NULLIF(COUNT(DISTINCT CASE WHEN event = 'activation_complete' THEN person_id END), 0)
FROM stitched
"""
PURCHASE_SQL = """
SELECT COUNT(DISTINCT CASE WHEN event = 'purchase_completed' THEN person_id END) * 1.0 /
       NULLIF(COUNT(DISTINCT CASE WHEN event = 'download_clicked' THEN person_id END), 0)
FROM stitched
"""
CHURN_30D_SQL = """
WITH jobs AS (
  SELECT person_id, MIN("timestamp") AS first_job_at, MAX("timestamp") AS last_job_at
  FROM stitched WHERE event IN ('processing_completed') GROUP BY person_id
)
SELECT COUNT(CASE WHEN last_job_at < $as_of - INTERVAL 30 DAY THEN 1 END) * 1.0 / NULLIF(COUNT(*), 0),
       COUNT(*)
FROM jobs WHERE first_job_at < $as_of - INTERVAL 30 DAY
"""
# Cohort-relative variant: no returning job within 30 days of the first completed job.
CHURN_COHORT_SQL = """
WITH first_job AS (
  SELECT person_id, MIN("timestamp") AS first_job_at
  FROM stitched WHERE event = 'processing_completed' GROUP BY person_id
), returned AS (
  SELECT DISTINCT f.person_id
  FROM first_job f JOIN stitched s ON s.person_id = f.person_id
  WHERE s.event = 'job_completed_returning_user' AND s."timestamp" <= f.first_job_at + INTERVAL 30 DAY
)
SELECT 1.0 - (SELECT COUNT(*) FROM returned) * 1.0 / NULLIF((SELECT COUNT(*) FROM first_job), 0)
"""
JOB_SUCCESS_SQL = """
SELECT SUM(CASE WHEN event = 'processing_completed' THEN 1 ELSE 0 END) * 1.0 /
       NULLIF(SUM(CASE WHEN event IN ('processing_completed', 'processing_failed') THEN 1 ELSE 0 END), 0),
       SUM(CASE WHEN event IN ('processing_completed', 'processing_failed') THEN 1 ELSE 0 END)
FROM stitched
"""

# Conditional steps the forecast uses: (name, state reached, given state).
TRANSITIONS: tuple[tuple[str, State, State], ...] = (
    ("S1|S0", State.S1, State.S0),
    ("S2|S1", State.S2, State.S1),
    ("S3|S2", State.S3, State.S2),
    ("S4|S3", State.S4, State.S3),
    ("S5|S4", State.S5, State.S4),
    ("S6|S5", State.S6, State.S5),
    ("S7|S6", State.S7, State.S6),
    ("S8|S7", State.S8, State.S7),
    ("S9|S8", State.S9, State.S8),
    ("S10|S8", State.S10, State.S8),
    ("S10|S9", State.S10, State.S9),
)
RATE_FIELDS: dict[str, str] = {
    "S1|S0": "p_land",
    "S2|S1": "p_cta",
    "S3|S2": "p_signup",
    "S4|S3": "p_login",
    "S5|S4": "p_credits",
    "S6|S5": "p_upload",
    "S7|S6": "p_job_success",
    "S8|S7": "p_download",
    "S9|S8": "p_purchase",
}


class Transition(BaseModel):
    """One learned conditional probability with its binomial standard error."""

    name: str
    reached: int
    given: int
    rate: float | None
    stderr: float | None


class LearnedRates(BaseModel):
    """Everything learned from one events table."""

    persons: int
    state_counts: dict[str, int]
    transitions: dict[str, Transition]
    activation_rate: float | None
    aha_rate: float | None
    purchase_rate: float | None
    churn_rate_30d: float | None
    churn_30d_base: int
    churn_30d_after_first_job: float | None = None
    job_success_rate_by_job: float | None
    jobs: int
    ctr: float | None = None
    impressions: int | None = None
    event_counts: dict[str, int] = {}
    """Rows per event name in the table (every name, known to the plan or not)."""

    def to_rates(self, fallback: TransitionRates | None = None) -> TransitionRates:
        """Return typed rates for the forecast: learned where there was data, else ``fallback``'s.

        Retention is folded into ``p_repeat_30d`` (learned P(S10|S8)), so use it with a
        churn rule of zero (see ``forecast_churn_rule``).
        """
        base = (fallback or TransitionRates()).model_dump()
        for key, field in RATE_FIELDS.items():
            rate = self.transitions[key].rate
            if rate is not None:
                base[field] = rate
        retention = self.transitions["S10|S8"].rate
        if retention is not None:
            base["p_repeat_30d"] = retention
        if self.ctr is not None:
            base["ctr"] = self.ctr
        return TransitionRates(**base)


def _flags_sql() -> str:
    lines = [f"  bool_or(event = '{ev}') AS {state.name.lower()}" for state, ev in STATE_EVENTS.items()]
    return ",\n".join(lines)


def connect_events(source: pl.DataFrame | str) -> duckdb.DuckDBPyConnection:
    """Return a DuckDB connection with an ``events`` view over a frame or a Parquet glob."""
    con = duckdb.connect()
    if isinstance(source, str):
        con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{source}', union_by_name=true)")
    else:
        con.register(
            "events", source.select("event", "timestamp", "source", "distinct_id", "user_id", "session_id")
        )
    return con


def learn_rates(
    source: pl.DataFrame | str,
    impressions: int | None = None,
    as_of: dt.datetime | None = None,
) -> LearnedRates:
    """Return the transition rates learned from an events table (frame or Parquet glob).

    ``impressions`` (not an event) gives the click-through rate; ``as_of`` is the "now" of
    the 30-day churn query (default: the latest event).
    """
    con = connect_events(source)
    try:
        con.execute(STITCHED_SQL)
        con.execute(REACHED_SQL.format(flags=_flags_sql()))
        counts_row = con.execute(
            "SELECT COUNT(*), "
            + ", ".join(f"SUM({st.name.lower()}::INT)" for st in STATE_EVENTS)
            + " FROM reached"
        ).fetchone()
        persons = int(counts_row[0] or 0)
        counts = {s.name: int(v or 0) for s, v in zip(STATE_EVENTS, counts_row[1:])}
        transitions: dict[str, Transition] = {}
        # Every transition's two counts in one query (a query costs ~3 ms however small).
        pairs = [(to_state.name.lower(), from_state.name.lower()) for _, to_state, from_state in TRANSITIONS]
        sums = con.execute(
            "SELECT "
            + ", ".join(f"SUM(({a} AND {b})::INT), SUM({b}::INT)" for a, b in pairs)
            + " FROM reached"
        ).fetchone()
        for i, (name, _, _) in enumerate(TRANSITIONS):
            reached, given = int(sums[2 * i] or 0), int(sums[2 * i + 1] or 0)
            rate = reached / given if given else None
            err = math.sqrt(rate * (1 - rate) / given) if given else None
            transitions[name] = Transition(name=name, reached=reached, given=given, rate=rate, stderr=err)
        uploaded, retained = counts["S6"], counts["S10"]
        transitions["S11|S6"] = Transition(
            name="S11|S6",
            reached=uploaded - retained,
            given=uploaded,
            rate=(uploaded - retained) / uploaded if uploaded else None,
            stderr=math.sqrt((1 - retained / uploaded) * (retained / uploaded) / uploaded)
            if uploaded
            else None,
        )
        if as_of is None:
            # A single cohort's "now": 30 days after its first week (see docs/funnel.md).
            first = con.execute("SELECT MIN(\"timestamp\") FROM events WHERE event = 'ad_click'").fetchone()[
                0
            ]
            as_of = (first or dt.datetime.now(dt.UTC)) + dt.timedelta(days=38)
        churn, churn_base = con.execute(CHURN_30D_SQL, {"as_of": as_of}).fetchone()
        success, jobs = con.execute(JOB_SUCCESS_SQL).fetchone()
        clicks = counts["S0"]
        event_counts = dict(
            con.execute("SELECT event, COUNT(*) FROM events GROUP BY event ORDER BY event").fetchall()
        )
        return LearnedRates(
            persons=persons,
            state_counts=counts,
            transitions=transitions,
            activation_rate=con.execute(ACTIVATION_SQL).fetchone()[0],
            aha_rate=con.execute(AHA_SQL).fetchone()[0],
            purchase_rate=con.execute(PURCHASE_SQL).fetchone()[0],
            churn_rate_30d=churn,
            churn_30d_base=int(churn_base or 0),
            churn_30d_after_first_job=con.execute(CHURN_COHORT_SQL).fetchone()[0],
            job_success_rate_by_job=success,
            jobs=int(jobs or 0),
            ctr=(clicks / impressions) if impressions else None,
            impressions=impressions,
            event_counts={str(k): int(v) for k, v in event_counts.items()},
        )
    finally:
        con.close()


def compare_to_configured(
    learned: LearnedRates, rates: TransitionRates, z: float = 4.0
) -> dict[str, dict[str, float | bool | None]]:
    """Return, per configured step, learned vs configured and whether they agree within ``z`` standard errors.

    The tolerance uses the configured rate's binomial error on the learned denominator
    (plus a floor of half a count, so rates of exactly 0 or 1 compare sensibly).
    """
    out: dict[str, dict[str, float | bool | None]] = {}
    configured = rates.model_dump()
    for key, field in RATE_FIELDS.items():
        t = learned.transitions[key]
        p = configured[field]
        if not t.given or t.rate is None:
            out[key] = {"configured": p, "learned": None, "n": 0, "within": None}
            continue
        tol = z * math.sqrt(p * (1 - p) / t.given) + 0.5 / t.given
        out[key] = {
            "configured": p,
            "learned": round(t.rate, 6),
            "n": t.given,
            "tolerance": round(tol, 6),
            "within": abs(t.rate - p) <= tol,
        }
    return out
