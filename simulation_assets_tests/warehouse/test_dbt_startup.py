"""What a dbt invocation pays before its work: no full parse of the project, no ``dbt --version``.

dbt re-parses the whole project when the profile it hashes changed since its saved parse: the DuckDB
profile is the same for every warehouse file. The end-to-end proof (a new file's ``dbt build`` and
``dbt run`` start from the prepared parse) is in test_load.py.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import duckdb
import pytest
import yaml

from simulation_assets.sinks.warehouse_dbt import DBT_DIR


def _duckdb_output() -> dict:
    profile = yaml.safe_load((DBT_DIR / "profiles.yml").read_text())
    return profile["simulation_warehouse"]["outputs"]["duckdb"]


def test_the_duckdb_profile_names_no_file_and_no_variable() -> None:
    output = _duckdb_output()
    # nothing dbt hashes is rendered from the environment: the same profile for every file
    assert "{{" not in yaml.safe_dump(output)
    assert output["path"] == ":memory:"
    assert output["database"] == output["attach"][0]["alias"] == "warehouse"
    assert [p["module"] for p in output["plugins"]] == ["simulation_assets.sinks.warehouse_dbt_duckdb"]


def test_the_plugin_attaches_the_file_under_the_profiles_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulation_assets.sinks.warehouse_dbt_duckdb import CATALOG, Plugin

    path = tmp_path / "it's dev.duckdb"  # a quote in the path
    monkeypatch.setenv("WAREHOUSE_DUCKDB_PATH", str(path))
    plugin = Plugin(name="warehouse", plugin_config={})
    conn = duckdb.connect(":memory:")
    plugin.configure_connection(conn)
    # what dbt-duckdb does next with the profile's placeholder: a no-op, the name is taken by the file
    conn.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {CATALOG}")
    cursor = conn.cursor()
    plugin.configure_cursor(cursor)
    cursor.execute("CREATE SCHEMA analytics")
    cursor.execute("CREATE TABLE analytics.t AS SELECT 42 AS x")  # unqualified: the cursor uses the file
    conn.execute(f"INSERT INTO {CATALOG}.analytics.t VALUES (43)")
    cursor.close()
    conn.close()
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT list(x ORDER BY x) FROM analytics.t").fetchone()[0] == [42, 43]
    assert not Path(f"{path}.wal").exists()


def test_the_dbt_resource_knows_its_dbts_version_without_running_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster_dbt.core.resource
    from packaging.version import Version

    from simulation_assets.defs.warehouse_dbt import DBT_RESOURCE
    from simulation_assets.sinks.warehouse_dbt import WarehouseDbtCli, dbt_executable

    def no_process(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError(f"dbt was run: {args}")

    monkeypatch.setattr(dagster_dbt.core.resource, "check_output", no_process)
    assert isinstance(DBT_RESOURCE, WarehouseDbtCli)
    fresh = WarehouseDbtCli(
        project_dir=str(DBT_DIR), profiles_dir=str(DBT_DIR), dbt_executable=dbt_executable()
    )
    assert fresh._cli_version == Version(importlib.metadata.version("dbt-core"))


def test_preparing_the_manifest_runs_dbt_parse_without_asking_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dagster-dbt project prepare-and-package`` (and a stale manifest on load) parses without ``dbt --version``,
    which costs ~3.2 s CPU and asks PyPI for the latest releases."""
    import shutil

    import dagster_dbt.core.resource
    from dagster_dbt import DbtProject
    from dagster_shared.record import replace
    from packaging.version import Version

    from simulation_assets.sinks.warehouse_dbt import DBT_PROJECT, WarehouseDbtCli, dbt_executable

    def no_process(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError(f"dbt was run: {args}")

    ran = []

    class Invocation:
        def wait(self) -> None:
            (tmp_path / "target").mkdir(exist_ok=True)
            (tmp_path / "target" / "manifest.json").write_text("{}")

    def parse(self, args, **kwargs):  # noqa: ANN001, ANN003, ANN202
        ran.append((type(self), list(args), kwargs["target_path"], self._cli_version))
        return Invocation()

    monkeypatch.setattr(dagster_dbt.core.resource, "check_output", no_process)
    monkeypatch.setattr(dagster_dbt.core.resource.DbtCliResource, "cli", parse)
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(dbt_executable()).parent), os.environ["PATH"]]))
    # the project's preparer, on a copy of the project's settings (the real target folder stays untouched)
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copyfile(DBT_DIR / name, tmp_path / name)
    copy = replace(DbtProject(project_dir=tmp_path), preparer=DBT_PROJECT.preparer)
    copy.preparer.prepare(copy)
    assert ran == [
        (
            WarehouseDbtCli,
            ["parse", "--quiet"],
            copy.target_path,
            Version(importlib.metadata.version("dbt-core")),
        )
    ]
    assert copy.manifest_path.exists()


def test_dbt_is_told_to_send_no_usage_events() -> None:
    """Every dbt command would otherwise look its event collector up (and post to it where it resolves)."""
    project = yaml.safe_load((DBT_DIR / "dbt_project.yml").read_text())
    assert project["flags"]["send_anonymous_usage_stats"] is False


def test_only_the_newest_invocation_folders_are_kept(tmp_path: Path) -> None:
    """Each Dagster dbt run leaves dbt's artifacts and log (~5 MB) in a folder of its own under dbt/target."""
    from simulation_assets.sinks.warehouse_dbt import prune_invocation_folders

    for name in ("manifest.json", "partial_parse.msgpack"):
        (tmp_path / name).write_text("prepared")
    other = tmp_path / "another_op-1234567-abcdefg"
    other.mkdir()
    runs = []
    for age in range(8):  # newest first
        run = tmp_path / f"warehouse_dbt_models-{age:07d}-abcdefg"
        (run / "compiled").mkdir(parents=True)
        (run / "run_results.json").write_text("{}")
        os.utime(run, (1_700_000_000 - age * 60, 1_700_000_000 - age * 60))
        runs.append(run)
    removed = prune_invocation_folders("warehouse_dbt_models", tmp_path, keep=5)
    assert sorted(removed) == sorted(runs[5:])
    assert [r.exists() for r in runs] == [True] * 5 + [False] * 3
    assert (
        other.exists()
        and (tmp_path / "manifest.json").exists()
        and (tmp_path / "partial_parse.msgpack").exists()
    )
    assert prune_invocation_folders("warehouse_dbt_models", tmp_path, keep=5) == []


def test_each_postgresql_warehouse_starts_from_the_parse_its_last_dbt_command_saved(tmp_path: Path) -> None:
    """dbt parses the whole project again when the profile differs from the saved parse's, and a PostgreSQL
    profile names its server and database: each keeps a parse of its own; DuckDB uses the prepared one."""
    from simulation_assets.sinks import warehouse_dbt as wd

    root = tmp_path / "target"
    root.mkdir()
    (root / wd.PARTIAL_PARSE).write_bytes(b"prepared (duckdb)")
    pg = {"WAREHOUSE_DBT_TARGET": "postgres", "WAREHOUSE_PG_HOST": "db", "WAREHOUSE_PG_PORT": "5432",
          "WAREHOUSE_PG_USER": "u", "WAREHOUSE_PG_PASSWORD": "", "WAREHOUSE_PG_DBNAME": "one"}  # fmt: skip
    other = pg | {"WAREHOUSE_PG_DBNAME": "two"}
    duck = {"WAREHOUSE_DBT_TARGET": "duckdb", "WAREHOUSE_DUCKDB_PATH": str(tmp_path / "any.duckdb")}
    assert wd.parse_folder(duck, root) == wd.parse_folder({}, root) == root
    assert wd.parse_folder(pg, root).parent == wd.parse_folder(other, root).parent == root / "parses"
    assert wd.parse_folder(pg, root) != wd.parse_folder(other, root)
    assert wd.parse_folder(pg, root) == wd.parse_folder(dict(reversed(pg.items())), root)  # order-free

    def command(variables: dict, saves: bytes | None) -> bytes | None:
        """One dbt command: its target starts from the kept parse; dbt saves ``saves``; the parse is kept."""
        target = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        target.mkdir()
        wd.start_from_saved_parse(target, wd.parse_folder(variables, root))
        started = (target / wd.PARTIAL_PARSE).read_bytes() if (target / wd.PARTIAL_PARSE).exists() else None
        if saves is not None:
            (target / wd.PARTIAL_PARSE).write_bytes(saves)
        wd.keep_parse(target, variables, root)
        return started

    assert command(pg, b"parsed for one") is None  # a new warehouse: dbt parses in full
    assert command(pg, b"parsed for one, again") == b"parsed for one"
    assert command(pg, None) == b"parsed for one, again"  # a command that saved nothing keeps the last
    assert command(other, b"parsed for two") is None
    assert command(duck, b"parsed for a duckdb file") == b"prepared (duckdb)"
    assert (root / wd.PARTIAL_PARSE).read_bytes() == b"prepared (duckdb)"  # the preparation's, untouched
    for n in range(wd.KEPT_PARSES + 2):  # many databases: the newest KEPT_PARSES warehouses' are kept
        command(pg | {"WAREHOUSE_PG_DBNAME": f"db{n}"}, b"x")
        os.utime(wd.parse_folder(pg | {"WAREHOUSE_PG_DBNAME": f"db{n}"}, root), (1.7e9 + n, 1.7e9 + n))
    command(pg | {"WAREHOUSE_PG_DBNAME": "last"}, b"x")
    assert len(list((root / "parses").iterdir())) == wd.KEPT_PARSES
    assert wd.parse_folder(pg | {"WAREHOUSE_PG_DBNAME": "last"}, root).exists()
