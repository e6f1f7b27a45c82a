"""Helpers that turn frames and charts into metadata a person reads in the Dagster UI."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping

import dagster as dg
import polars as pl

ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"


def type_name(dtype: pl.DataType) -> str:
    """Return the column type as the UI shows it (Polars' name, e.g. ``Int64``, ``Datetime(time_unit='ms', time_zone='UTC')``)."""
    return repr(dtype) if not isinstance(dtype, pl.Enum) else f"Enum({', '.join(dtype.categories.to_list())})"


def column_schema(
    schema: Mapping[str, pl.DataType] | pl.Schema,
    descriptions: Mapping[str, str] | None = None,
    not_null: Iterable[str] = (),
    unique: Iterable[str] = (),
) -> dg.TableSchema:
    """Return the ``dagster/column_schema`` of a table from its Polars schema (``core/*/schema.py``).

    ``descriptions`` maps column names to a line of text; ``not_null`` and ``unique`` name
    columns whose constraints the UI should show (e.g. the primary key).
    """
    descriptions = descriptions or {}
    not_null, unique = set(not_null), set(unique)
    unknown = (set(descriptions) | not_null | unique) - set(schema)
    if unknown:
        raise ValueError(f"column_schema: {sorted(unknown)} are not columns of the schema")
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=name,
                type=type_name(dtype),
                description=descriptions.get(name),
                constraints=dg.TableColumnConstraints(nullable=name not in not_null, unique=name in unique),
            )
            for name, dtype in schema.items()
        ]
    )


def table_metadata(
    frame: pl.DataFrame | pl.LazyFrame | None = None,
    *,
    rows: int | None = None,
    schema: Mapping[str, pl.DataType] | pl.Schema | dg.TableSchema | None = None,
) -> dict[str, object]:
    """Return the standard ``dagster/row_count`` and ``dagster/column_schema`` entries of a table.

    Counts ``frame``'s rows unless ``rows`` is given (e.g. a table written in chunks);
    the column schema is ``schema`` (a Polars schema from ``core/*/schema.py``, or a
    ready ``dg.TableSchema``), else ``frame``'s own. Costs nothing beyond the frame
    already in memory.
    """
    out: dict[str, object] = {}
    if rows is None and isinstance(frame, pl.DataFrame):
        rows = frame.height
    if rows is not None:
        out[ROW_COUNT] = dg.MetadataValue.int(int(rows))
    if schema is None and frame is not None:
        schema = frame.collect_schema()
    if schema is not None:
        out[COLUMN_SCHEMA] = dg.MetadataValue.table_schema(
            schema if isinstance(schema, dg.TableSchema) else column_schema(schema)
        )
    return out


def md_table(frame: pl.DataFrame, max_rows: int = 10) -> dg.MarkdownMetadataValue:
    """Return the first ``max_rows`` rows of ``frame`` as a markdown table."""
    head = frame.head(max_rows)
    cells = [[("" if v is None else str(v)).replace("|", "\\|") for v in row] for row in head.iter_rows()]
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return dg.MetadataValue.md("\n".join(lines))


def svg_markdown(svg: str, alt: str) -> dg.MarkdownMetadataValue:
    """Return an SVG document (``core/charts.py``) as an inline markdown image the UI shows."""
    return dg.MetadataValue.md(
        f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"
    )


def figure_markdown(fig: object, alt: str) -> dg.MarkdownMetadataValue:
    """Return a matplotlib figure as an inline PNG markdown image, then close it.

    Prefer ``svg_markdown(core.charts.chart_svg(...))``: matplotlib costs 0.5-1 s of CPU to import
    and draw a first figure, which every command that materializes the asset pays.
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")


def new_figure(width: float = 7.0, height: float = 3.0):  # noqa: ANN201
    """Return (fig, ax) from a headless matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=90)
