"""Standard Dagster table metadata derived from the Polars schemas in core/*/schema.py."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from simulation_assets.core.activity.schema import CUSTOMER_SCHEMA
from simulation_assets.core.hogflix.schema import PERSONA_SCHEMA
from simulation_assets.defs.metadata import COLUMN_SCHEMA, ROW_COUNT, column_schema, table_metadata


def test_column_schema_lists_every_column_in_order_with_its_type() -> None:
    schema = column_schema(
        PERSONA_SCHEMA,
        descriptions={"distinct_id": "PostHog distinct id"},
        not_null=["distinct_id"],
        unique=["distinct_id"],
    )
    assert [c.name for c in schema.columns] == list(PERSONA_SCHEMA)
    first = schema.columns[0]
    assert (first.type, first.description, first.constraints.nullable, first.constraints.unique) == (
        "String",
        "PostHog distinct id",
        False,
        True,
    )
    state = next(c for c in schema.columns if c.name == "state")
    assert state.type == "Enum(NEW, ACTIVE, CASUAL, DORMANT, CHURNED)"
    assert (
        next(c for c in schema.columns if c.name == "created_at").type
        == "Datetime(time_unit='ms', time_zone='UTC')"
    )


def test_a_description_of_a_column_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\['nope'\] are not columns"):
        column_schema(CUSTOMER_SCHEMA, descriptions={"nope": "x"})


def test_materialized_table_metadata_reads_back_from_the_instance() -> None:
    frame = pl.DataFrame({"customer_id": ["a", "b", "c"], "total_api_calls": [1, 2, 3]})

    @dg.asset(metadata={COLUMN_SCHEMA: column_schema(CUSTOMER_SCHEMA)})
    def customers() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=table_metadata(frame, schema=CUSTOMER_SCHEMA))

    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([customers], instance=instance).success
    event = instance.get_latest_materialization_event(dg.AssetKey("customers"))
    meta = event.asset_materialization.metadata  # type: ignore[union-attr]
    assert meta[ROW_COUNT].value == 3
    assert [c.name for c in meta[COLUMN_SCHEMA].value.columns] == list(CUSTOMER_SCHEMA)


def test_row_count_given_for_a_table_written_in_chunks_and_schema_taken_from_the_frame() -> None:
    meta = table_metadata(rows=12_000_000, schema=pl.Schema({"tap_id": pl.Int64()}))
    assert meta[ROW_COUNT].value == 12_000_000
    own = table_metadata(pl.DataFrame({"x": [1.5]}))
    assert [(c.name, c.type) for c in own[COLUMN_SCHEMA].value.columns] == [("x", "Float64")]
