"""One table into PostgreSQL's staging schema: Parquet row groups -> binary ``COPY ... FREEZE`` (via pgpq).

The table is created and filled in one transaction, so ``FREEZE`` writes its rows already frozen and
the index builds and foreign-key checks that read them later never rewrite a page. While copying,
``KeyOrderTracker`` counts the ascending runs each foreign-key column arrives in, which decides
whether that column gets a BRIN index (see ``warehouse_postgres_plan.fk_index_sql``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulation_assets.core.warehouse import schema
from simulation_assets.sinks.warehouse_parquet import table_paths
from simulation_assets.sinks.warehouse_postgres_plan import STAGING, column_ddl

MAX_RUNS = 64  # a column that arrives in at most this many ascending runs counts as stored in key order
BATCH_ROWS = 262_144  # rows per encoded COPY message batch


def arrow_schema(table: str):  # noqa: ANN201
    """Return the Arrow schema whose binary COPY encoding matches the PostgreSQL columns of ``table``."""
    import pyarrow as pa

    arrow = {
        "bigint": pa.int64(),
        "int": pa.int32(),
        "smallint": pa.int16(),
        "double": pa.float64(),
        "real": pa.float32(),
        "text": pa.large_string(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us"),
        "date": pa.date32(),
    }
    return pa.schema([pa.field(c.name, arrow[c.type], c.nullable) for c in schema.table(table).columns])


def conform_batch(batch, target):  # noqa: ANN001, ANN201
    """Return ``batch`` (a pyarrow Table) with the column types of ``target`` (dictionaries decoded)."""
    import pyarrow as pa

    columns = []
    for f in target:
        col = batch.column(f.name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        columns.append(col if col.type == f.type else col.cast(f.type))
    return pa.table(columns, schema=target)


def copy_table(conn: Any, name: str, root: Path) -> set[str]:
    """Create ``raw_loading.<name>`` and fill it in one transaction with a binary ``COPY ... FREEZE``;
    return the foreign-key columns whose values came in a few ascending runs (no nulls)."""
    import pyarrow.parquet as pq
    from pgpq import ArrowToPostgresBinaryEncoder
    from psycopg.copy import QueuedLibpqWriter

    target = arrow_schema(name)
    encoder = ArrowToPostgresBinaryEncoder(target)
    cols = ", ".join(target.names)
    order = KeyOrderTracker([fk.column for fk in schema.table(name).foreign_keys])
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {STAGING}.{name} ({column_ddl(name)})")
        sql = f"COPY {STAGING}.{name} ({cols}) FROM STDIN (FORMAT binary, FREEZE)"
        # the queued writer sends on its own thread while this one decodes and encodes the next group
        with cur.copy(sql, writer=QueuedLibpqWriter(cur)) as cp:
            cp.write(encoder.write_header())
            for path in table_paths(root, name):
                parquet = pq.ParquetFile(path)
                for group in range(parquet.num_row_groups):
                    # one thread per read: pyarrow's reader threads cost four times the CPU for no gain
                    # here, and CPU is what the server's side of the load is short of
                    table = parquet.read_row_group(group, columns=target.names, use_threads=False)
                    batch = conform_batch(table, target)
                    order.update(batch)
                    for record_batch in batch.to_batches(max_chunksize=BATCH_ROWS):
                        cp.write(encoder.write_batch(record_batch))
            cp.write(encoder.finish())
    return order.clustered()


class KeyOrderTracker:
    """Count, for each of ``columns``, the ascending runs its values arrive in over the batches of a copy."""

    def __init__(self, columns: list[str]) -> None:
        self.runs = dict.fromkeys(columns, 1)
        self.last: dict[str, object] = {}

    def update(self, batch) -> None:  # noqa: ANN001 (pyarrow Table)
        import pyarrow.compute as pc

        for col, runs in self.runs.items():
            if runs > MAX_RUNS or batch.num_rows == 0:
                continue
            values = batch.column(col)
            if values.null_count:
                self.runs[col] = MAX_RUNS + 1
                continue
            n = len(values)
            if col in self.last and self.last[col] > values[0].as_py():
                runs += 1
            if n > 1:
                runs += pc.sum(pc.less(values.slice(1), values.slice(0, n - 1))).as_py() or 0
            self.runs[col] = runs
            self.last[col] = values[-1].as_py()

    def clustered(self) -> set[str]:
        """Return the columns that arrived in at most ``MAX_RUNS`` ascending runs."""
        return {col for col, runs in self.runs.items() if runs <= MAX_RUNS}
