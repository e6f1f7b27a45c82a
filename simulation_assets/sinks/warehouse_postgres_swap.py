"""The last step of a PostgreSQL load: one transaction moves the staged tables into ``raw``.

It drops the old tables, moves the new ones in, re-adds the foreign keys from tables that were
not re-loaded to the new ones (checked against the new rows), and creates again the views that
read the replaced tables (dbt's staging views, a user's own), so nobody ever sees ``raw`` half
replaced and the views on it survive a partial reload.
"""

from __future__ import annotations

from typing import Any

from simulation_assets.core.warehouse import schema
from simulation_assets.sinks.warehouse_postgres_plan import RAW, STAGING

RAW_TABLES_SQL = (
    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'"
)

# Views (and materialized views) that read the given tables, directly or through other views, each with
# the depth of its longest path to a table, so creating them by increasing depth respects their order.
DEPENDENT_VIEWS_SQL = """
WITH RECURSIVE dep(oid, depth) AS (
    SELECT r.ev_class, 1
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjid = ANY(%s::regclass[]) AND r.ev_class <> d.refobjid
  UNION ALL
    SELECT r.ev_class, dep.depth + 1
    FROM dep
    JOIN pg_depend d ON d.refobjid = dep.oid AND d.refclassid = 'pg_class'::regclass
                    AND d.classid = 'pg_rewrite'::regclass
    JOIN pg_rewrite r ON r.oid = d.objid
    WHERE r.ev_class <> dep.oid AND dep.depth < 100
)
SELECT n.nspname, c.relname, c.relkind, pg_get_viewdef(c.oid), obj_description(c.oid, 'pg_class'),
       max(dep.depth) AS depth
FROM dep JOIN pg_class c ON c.oid = dep.oid JOIN pg_namespace n ON n.oid = c.relnamespace
GROUP BY c.oid, n.nspname, c.relname, c.relkind
ORDER BY depth, n.nspname, c.relname
"""


def swap_into_raw(conn: Any, order: list[str]) -> dict[str, list[str]]:
    """Move the staging tables ``order`` into ``raw`` and commit; return the views recreated and dropped.

    ``conn`` is a connection outside autocommit. Views on the replaced tables would go with the old
    tables, so their definitions are read first and they are created again on the new tables; one that
    no longer fits the new columns is left out (named under ``dropped``) rather than failing the load.
    """
    loaded = set(order)
    # every name in a saved definition schema-qualified, so it reads the same when run again
    conn.execute("SET LOCAL search_path = ''")
    existing = {r[0] for r in conn.execute(RAW_TABLES_SQL, (RAW,)).fetchall()}
    replaced = [f"{RAW}.{t}" for t in order if t in existing]
    views = conn.execute(DEPENDENT_VIEWS_SQL, (replaced,)).fetchall() if replaced else []
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW}")
    for t in order:
        conn.execute(f"DROP TABLE IF EXISTS {RAW}.{t} CASCADE")
    for t in order:
        conn.execute(f"ALTER TABLE {STAGING}.{t} SET SCHEMA {RAW}")
    # the foreign keys of the tables that stay to the re-loaded ones (the DROP ... CASCADE took
    # them), checked here against the new rows; those the other way were added while staging
    for t in [t for t in schema.TABLE_NAMES if t in existing and t not in loaded]:
        for fk in schema.table(t).foreign_keys:
            if fk.parent in loaded:
                conn.execute(
                    f"ALTER TABLE {RAW}.{t} ADD CONSTRAINT {t}_{fk.column}_fkey FOREIGN KEY ({fk.column}) "
                    f"REFERENCES {RAW}.{fk.parent} ({fk.parent_column})"
                )
    outcome = recreate_views(conn, views)
    conn.execute(f"DROP SCHEMA {STAGING} CASCADE")
    conn.commit()
    return outcome


def recreate_views(conn: Any, views: list[tuple]) -> dict[str, list[str]]:
    """Create ``views`` (rows of ``DEPENDENT_VIEWS_SQL``) again, each behind a savepoint; return which came back."""
    from psycopg import sql

    done: dict[str, list[str]] = {"recreated": [], "dropped": []}
    for nsp, name, kind, definition, comment, _depth in views:
        ident = sql.Identifier(nsp, name)
        what = sql.SQL("MATERIALIZED VIEW" if kind == "m" else "VIEW")
        label = f"{nsp}.{name}"
        try:
            with conn.transaction():  # a savepoint: a view that no longer fits is skipped, not fatal
                conn.execute(
                    sql.SQL("CREATE {} {} AS ").format(what, ident) + sql.SQL(definition.rstrip("; \n"))
                )
                if comment is not None:
                    conn.execute(sql.SQL("COMMENT ON {} {} IS {}").format(what, ident, sql.Literal(comment)))
            done["recreated"].append(label)
        except Exception:  # noqa: BLE001 (the definition refers to something the new tables lack)
            done["dropped"].append(label)
    return done
