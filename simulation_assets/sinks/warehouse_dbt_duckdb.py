"""The dbt-duckdb plugin that opens the warehouse file for ``dbt/profiles.yml``'s ``duckdb`` target.

dbt re-parses the whole project (~7 s CPU instead of ~3.4 s) whenever the profile it hashes differs from
the one its saved parse (``partial_parse.msgpack``) was made with, and for DuckDB that hash covers the
file's ``path`` and the catalog named after it. Each environment, each ``simulate warehouse --output``
folder and each test has its own file, so every ``dbt`` invocation parsed from scratch. The profile
therefore names no file: an in-memory database with the catalog ``warehouse``, and this plugin attaches
the file ``$WAREHOUSE_DUCKDB_PATH`` (default ``warehouse.duckdb`` in the working directory) under that
name when dbt connects. The profile is the same for every file, so the parse prepared with the project
serves every run; dbt's relations read ``"warehouse"."analytics".<model>`` whichever file it is.
"""

from __future__ import annotations

import os

from dbt.adapters.duckdb.plugins import BasePlugin

CATALOG = "warehouse"  # the profile's ``database``: the alias of its placeholder attachment


def warehouse_file() -> str:
    """Return the absolute path of the DuckDB file dbt works on (``$WAREHOUSE_DUCKDB_PATH``)."""
    return os.path.abspath(os.environ.get("WAREHOUSE_DUCKDB_PATH") or "warehouse.duckdb")


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Plugin(BasePlugin):
    """Attach the warehouse file as catalog ``warehouse`` on dbt's connection (before dbt-duckdb attaches the
    profile's in-memory placeholder of that name, which ``ATTACH IF NOT EXISTS`` then skips)."""

    def configure_connection(self, conn) -> None:  # noqa: ANN001 - a duckdb connection
        path = warehouse_file()
        # a plain ATTACH: if anything else took the name first, fail here rather than build into memory
        conn.execute(f"ATTACH {_quoted(path)} AS {CATALOG}")
        conn.execute(f"USE {CATALOG}")
        # where the file's own default would be: an in-memory main database spills to ./.tmp otherwise
        conn.execute(f"SET temp_directory = {_quoted(path + '.tmp')}")

    def configure_cursor(self, cursor) -> None:  # noqa: ANN001 - a duckdb cursor (a connection)
        cursor.execute(f"USE {CATALOG}")
