"""Helpers that turn frames and figures into metadata a person reads in the Dagster UI."""

from __future__ import annotations

import base64
import io

import dagster as dg
import polars as pl


def md_table(frame: pl.DataFrame, max_rows: int = 10) -> dg.MarkdownMetadataValue:
    """Return the first ``max_rows`` rows of ``frame`` as a markdown table."""
    head = frame.head(max_rows)
    cells = [[("" if v is None else str(v)).replace("|", "\\|") for v in row] for row in head.iter_rows()]
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return dg.MetadataValue.md("\n".join(lines))


def figure_markdown(fig: object, alt: str) -> dg.MarkdownMetadataValue:
    """Return a matplotlib figure as an inline PNG markdown image, then close it."""
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
