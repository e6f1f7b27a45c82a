"""Alembic, tqdm, python-dotenv, Dagster's daemon package, SQLAlchemy's MySQL and PostgreSQL dialects,
universal-pathlib and httpx's command-line program load only when a process uses them
(sinks/deferred_imports.py)."""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulation_assets.sinks import deferred_imports

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_packages(tmp_path: Path) -> Iterator[Path]:
    """A heavy package ``fakeheavy`` (its modules log their import), a module importing names from it,
    and a package ``fakedaemons`` whose ``__init__`` logs that it ran; all removed afterwards."""
    (tmp_path / "fakeheavy" / "runtime").mkdir(parents=True)
    (tmp_path / "fakeheavy" / "__init__.py").write_text("import fakelog\nfakelog.ran.append('fakeheavy')\n")
    (tmp_path / "fakeheavy" / "runtime" / "__init__.py").write_text("")
    (tmp_path / "fakeheavy" / "runtime" / "tools.py").write_text(
        textwrap.dedent(
            """
            import fakelog
            fakelog.ran.append('fakeheavy.runtime.tools')

            class Config:
                def __init__(self, name):
                    self.name = name

                @classmethod
                def default(cls):
                    return cls('default')

            def upgrade(config, rev):
                return f'{config.name} -> {rev}'
            """
        )
    )
    (tmp_path / "fakeuser.py").write_text(
        textwrap.dedent(
            """
            from fakeheavy.runtime.tools import Config, upgrade

            def migrate(name):
                return upgrade(Config(name), 'head')
            """
        )
    )
    (tmp_path / "fakesubclass.py").write_text(
        textwrap.dedent(
            """
            from fakeheavy.runtime.tools import Config

            class MyConfig(Config):  # a stand-in used in the body: the real package from here on
                pass

            from fakeheavy.runtime.tools import upgrade
            """
        )
    )
    (tmp_path / "fakedaemons").mkdir()
    (tmp_path / "fakedaemons" / "__init__.py").write_text(
        "import fakelog\nfakelog.ran.append('fakedaemons')\nfrom fakedaemons.types import Heartbeat\nCONTROLLER = 'controller'\n"
    )
    (tmp_path / "fakedaemons" / "types.py").write_text("class Heartbeat:\n    pass\n")
    (tmp_path / "fakelog.py").write_text("ran = []\n")
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in set(sys.modules) - before:
            if name.split(".")[0] in ("fakeheavy", "fakeuser", "fakesubclass", "fakedaemons", "fakelog"):
                del sys.modules[name]


def test_names_imported_from_a_deferred_package_load_it_on_first_use(fake_packages: Path) -> None:
    finder = deferred_imports.defer({"fakeuser": "fakeheavy"}, ())
    try:
        import fakelog
        import fakeuser

        assert fakelog.ran == []  # the module imported, the heavy package not
        assert not any(name.startswith("fakeheavy") for name in sys.modules)
        assert fakeuser.migrate("runs") == "runs -> head"  # calls go to the real function and class
        assert fakelog.ran == ["fakeheavy", "fakeheavy.runtime.tools"]
        assert fakeuser.Config.default().name == "default"  # attributes to the real class
        assert isinstance(fakeuser.Config("x"), fakeuser.Config)

        import fakeheavy.runtime.tools as real  # a later import is the real module

        assert isinstance(real.Config("y"), fakeuser.Config) and issubclass(real.Config, fakeuser.Config)
        assert fakelog.ran == ["fakeheavy", "fakeheavy.runtime.tools"]  # each imported once
    finally:
        sys.meta_path.remove(finder)


def test_an_attribute_set_on_a_stand_in_reaches_the_real_object_when_it_is_imported(
    fake_packages: Path,
) -> None:
    # as httpx's package does with each name it exports: ``name.__module__ = "httpx"``
    (fake_packages / "fakeexporter.py").write_text(
        "from fakeheavy.runtime.tools import upgrade\nupgrade.__module__ = 'fakeexporter'\n"
    )
    finder = deferred_imports.defer({"fakeexporter": "fakeheavy"}, ())
    try:
        import fakeexporter
        import fakelog

        assert fakelog.ran == []
        assert fakeexporter.upgrade.__name__ == "upgrade"  # used: the real function, given the attribute
        import fakeheavy.runtime.tools as real

        assert real.upgrade.__module__ == "fakeexporter"
        fakeexporter.upgrade.__doc__ = "later"  # once imported: set on the real function at once
        assert real.upgrade.__doc__ == "later"
    finally:
        sys.meta_path.remove(finder)
        sys.modules.pop("fakeexporter", None)


def test_httpx_and_uvicorn_load_without_their_command_line_programs_until_used() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        from simulation_assets.sinks import deferred_imports
        deferred_imports.install()
        import httpx
        import uvicorn
        from simulation_assets.target.server import LocalTarget
        with LocalTarget() as target:  # the reference API, served by uvicorn in a thread
            health = httpx.get(target.base_url + "/health").status_code
        heavy = ("httpx._main", "pygments.lexers", "rich.progress", "rich.syntax", "uvicorn.supervisors", "watchfiles")
        loaded = [m for m in heavy if m in sys.modules]
        answer = httpx.Response(200, json={"ok": True}).json()
        reloader = sys.modules["uvicorn.main"].ChangeReload.__name__  # what `uvicorn --reload` runs, once asked for
        name = httpx.main.name  # the stand-in: the real click command once used
        import httpx._main as real
        print(json.dumps({"loaded": loaded, "answer": answer, "name": name, "module": real.main.__module__,
                          "health": health, "reloader": reloader}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {
        "loaded": [],
        "answer": {"ok": True},
        "name": "main",
        "module": "httpx",
        "health": 200,
        "reloader": "WatchFilesReload",
    }


def test_a_submodule_and_a_name_in_an_annotation_union_resolve_when_used(fake_packages: Path) -> None:
    (fake_packages / "fakelater.py").write_text(
        textwrap.dedent(
            """
            from fakeheavy.runtime import tools  # a submodule its package does not import
            from fakeheavy.runtime.tools import Config

            class Holder:
                def __init__(self):
                    self.config: Config | None = None  # evaluated when an instance is made

            def make(name):
                return tools.Config(name)
            """
        )
    )
    finder = deferred_imports.defer({"fakelater": "fakeheavy"}, ())
    try:
        import fakelater
        import fakelog

        assert fakelog.ran == []
        assert fakelater.Holder().config is None
        assert fakelater.make("x").name == "x"
        real = sys.modules["fakeheavy.runtime.tools"]
        assert isinstance(fakelater.make("y"), real.Config)
    finally:
        sys.meta_path.remove(finder)
        sys.modules.pop("fakelater", None)


def test_a_stand_in_used_while_the_module_body_runs_imports_the_real_package(fake_packages: Path) -> None:
    finder = deferred_imports.defer({"fakesubclass": "fakeheavy"}, ())
    try:
        import fakelog
        import fakesubclass

        real = sys.modules["fakeheavy.runtime.tools"]
        assert fakesubclass.MyConfig.__mro__[1] is real.Config  # a subclass of the real class
        assert fakesubclass.upgrade is real.upgrade  # imported after that: the real function
        assert fakelog.ran == ["fakeheavy", "fakeheavy.runtime.tools"]
        assert not [m for m in sys.modules.values() if isinstance(m, deferred_imports._StandInModule)]
    finally:
        sys.meta_path.remove(finder)


def test_nothing_is_stood_in_when_the_package_is_imported_already(fake_packages: Path) -> None:
    import fakeheavy.runtime.tools as real

    finder = deferred_imports.defer({"fakeuser": "fakeheavy"}, ())
    try:
        import fakeuser

        assert fakeuser.Config is real.Config and fakeuser.upgrade is real.upgrade
    finally:
        sys.meta_path.remove(finder)


def test_a_module_gets_stand_ins_from_two_packages_one_a_subpackage_of_a_real_one(
    fake_packages: Path,
) -> None:
    (fake_packages / "fakemixed.py").write_text(
        "import fakeheavy\nfrom fakeheavy.runtime.tools import upgrade\nfrom fakedaemons import CONTROLLER\n"
    )
    finder = deferred_imports.defer({"fakemixed": ("fakeheavy.runtime", "fakedaemons")}, ())
    try:
        import fakeheavy
        import fakelog
        import fakemixed

        assert fakelog.ran == ["fakeheavy"]  # the parent package ran, its subpackage and the other did not
        assert "fakeheavy.runtime" not in sys.modules and not hasattr(fakeheavy, "runtime")
        assert "fakedaemons" not in sys.modules
        assert fakemixed.CONTROLLER.upper() == "CONTROLLER"
        assert fakemixed.upgrade(type("C", (), {"name": "x"})(), "head") == "x -> head"
        assert fakelog.ran == ["fakeheavy", "fakedaemons", "fakeheavy.runtime.tools"]
        assert not [m for m in sys.modules.values() if isinstance(m, deferred_imports._StandInModule)]
    finally:
        sys.meta_path.remove(finder)
        sys.modules.pop("fakemixed", None)


def test_a_lazy_package_runs_its_init_only_when_a_name_of_its_own_is_asked_for(fake_packages: Path) -> None:
    finder = deferred_imports.defer({}, ("fakedaemons",))
    try:
        import fakelog
        from fakedaemons.types import Heartbeat

        assert (
            fakelog.ran == [] and Heartbeat.__name__ == "Heartbeat"
        )  # a submodule, without the package's init
        from fakedaemons import CONTROLLER

        assert CONTROLLER == "controller" and fakelog.ran == ["fakedaemons"]
        import fakedaemons

        assert fakedaemons.Heartbeat is Heartbeat and fakedaemons.types.Heartbeat is Heartbeat
        with pytest.raises(AttributeError, match="no attribute 'missing'"):
            fakedaemons.missing  # noqa: B018
        assert fakelog.ran == ["fakedaemons"]  # once
    finally:
        sys.meta_path.remove(finder)


_PROBE = textwrap.dedent(
    """
    import json, sys
    if sys.argv[1] == "deferred":
        from simulation_assets.sinks import deferred_imports
        deferred_imports.install()
    import dagster as dg
    from dagster_shared.serdes.serdes import _WHITELIST_MAP
    from simulation_assets.sinks.local_instance import ensure_local_instance

    @dg.asset
    def trivial():
        return dg.MaterializeResult(metadata={"rows": 1})

    @dg.asset_check(asset=trivial)
    def trivial_has_rows():
        return dg.AssetCheckResult(passed=True)

    ensure_local_instance()
    if sys.argv[1] == "deferred":  # as a command runs it: Dagster's IO manager, opened when first used
        from simulation_assets.commands.common import run_resources
        resources = run_resources({})
    else:
        resources = {}
    def used():  # what Dagster imports those for still works once asked for
        import dagster._utils as utils
        import dagster.components.core.component_tree as tree
        from dagster._core.execution.context import asset_execution_context as context
        return [
            type(utils.multiprocessing.Event()).__name__,
            type(tree.mock.Mock()).__name__,
            context.ForkedPdb.__mro__[1].__name__,
            type(dg.build_asset_context().pdb).__name__,
        ]

    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([trivial, trivial_has_rows], instance=instance, resources=resources)
        checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("trivial"), "trivial_has_rows")]
        )
        observers = "watchdog.observers" in sys.modules
        # the UI follows a run's events through the event log's file watcher: a real observer thread
        from watchdog.observers.api import BaseObserver
        storage = instance.event_log_storage
        follow = lambda event, cursor: None
        storage.watch(result.run_id, None, follow)
        watched = isinstance(storage._obs, BaseObserver) and storage._obs.is_alive()
        storage.end_watch(result.run_id, follow)
        print(json.dumps({
            "observers": observers,
            "watched": watched,
            "success": result.success,
            "check": [c.status.value for c in checks.values()],
            "runs": len(instance.get_runs()),
            "alembic": "alembic" in sys.modules,
            "daemons": "dagster._daemon.controller" in sys.modules,
            "tqdm": "tqdm" in sys.modules,
            "dotenv": "dotenv" in sys.modules,
            "paths": [m for m in ("upath", "fsspec") if m in sys.modules],
            "others": [m for m in ("filelock", "multiprocessing", "pdb", "unittest") if m in sys.modules],
            "dialects": [d for d in ("mysql", "postgresql") if f"sqlalchemy.dialects.{d}" in sys.modules],
            "serdes": sorted(set(_WHITELIST_MAP.object_serializers) | set(_WHITELIST_MAP.enum_serializers)),
            "used": used(),  # last: an ephemeral instance of its own loads more
        }))
    """
)


def _probe(home: Path, mode: str, code: str = _PROBE) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(home)}
    env["SIMULATE_PREPARED_INSTANCES"] = str(home.parent / "prepared")  # the dialect arguments' copy
    done = subprocess.run(
        [sys.executable, "-c", code, mode], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_run_on_a_ready_instance_imports_neither_alembic_nor_the_daemons(tmp_path: Path) -> None:
    """First use (schema created through Alembic's stand-ins, SQLAlchemy's dialect arguments kept),
    then a run that needs none of the deferred packages; the runs, their checks and the classes
    Dagster can read back are those of a process without deferral."""
    first = _probe(tmp_path / "home", "deferred")
    assert first["success"] and first["check"] == ["SUCCEEDED"] and first["alembic"]  # created the schema
    assert first["dialects"] == ["mysql", "postgresql"]  # learnt their arguments the stock way
    deferred = _probe(tmp_path / "home", "deferred")
    assert deferred["success"] and deferred["check"] == ["SUCCEEDED"] and deferred["runs"] == 2
    assert not deferred["alembic"] and not deferred["daemons"]
    assert not deferred["tqdm"] and not deferred["dotenv"] and deferred["dialects"] == []
    assert deferred["paths"] == []  # universal-pathlib and fsspec: neither the instance nor the run
    assert deferred["others"] == []  # filelock, multiprocessing, pdb, unittest: nor these
    assert deferred["used"] == ["Event", "Mock", "Pdb", "ForkedPdb"]
    assert not deferred["observers"] and deferred["watched"]  # watchdog's observers when watching starts
    stock = _probe(tmp_path / "home", "stock")
    assert stock["success"] and stock["runs"] == 3 and stock["alembic"] and stock["daemons"]
    assert stock["tqdm"] and stock["dotenv"] and stock["dialects"] == ["mysql", "postgresql"]
    assert stock["paths"] == ["upath", "fsspec"]
    assert stock["others"] == ["filelock", "multiprocessing", "pdb", "unittest"]
    assert stock["used"] == deferred["used"]
    assert stock["observers"] and stock["watched"]
    assert deferred["serdes"] == stock["serdes"]  # every serializable class registered all the same


# Dagster's three SQL schemas as MySQL and PostgreSQL would create them, and each index's options.
_SCHEMAS = textwrap.dedent(
    """
    import json, sys
    if sys.argv[1] == "deferred":
        from simulation_assets.sinks import deferred_imports
        deferred_imports.install()
    from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
    from dagster._core.storage.runs.schema import RunStorageSqlMetadata
    from dagster._core.storage.schedules.schema import ScheduleStorageSqlMetadata
    loaded = [d for d in ("mysql", "postgresql") if f"sqlalchemy.dialects.{d}" in sys.modules]
    from sqlalchemy.dialects import mysql, postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    ddl, options = [], {}
    for metadata in (SqlEventLogStorageMetadata, RunStorageSqlMetadata, ScheduleStorageSqlMetadata):
        for table in metadata.sorted_tables:
            for dialect in (mysql.dialect(), postgresql.dialect()):
                ddl.append(str(CreateTable(table).compile(dialect=dialect)))
                ddl += [str(CreateIndex(i).compile(dialect=dialect)) for i in sorted(table.indexes, key=lambda i: i.name)]
            for index in table.indexes:
                options[index.name] = {k: str(v) for k, v in index.dialect_kwargs.items()}
    print(json.dumps({"loaded": loaded, "ddl": ddl, "options": options}))
    """
)


def test_the_kept_dialect_arguments_check_and_create_dagsters_schemas_as_the_dialects_do(
    tmp_path: Path,
) -> None:
    """With SQLAlchemy's dialect arguments handed over from the kept copy, Dagster's schema modules
    import without the MySQL and PostgreSQL dialects, and both dialects create the same tables and
    indexes, with the same options, as in a process that imported them to check the arguments."""
    making = _probe(tmp_path / "home", "deferred", _SCHEMAS)  # no copy yet: made from the dialects
    assert making["loaded"] == ["mysql", "postgresql"]
    (kept,) = (tmp_path / "prepared").glob("sqlalchemy-*-dialect-arguments.json")
    deferred = _probe(tmp_path / "home", "deferred", _SCHEMAS)
    stock = _probe(tmp_path / "home", "stock", _SCHEMAS)
    assert deferred["loaded"] == [] and stock["loaded"] == ["mysql", "postgresql"]
    assert deferred["ddl"] == stock["ddl"] and deferred["options"] == stock["options"]
    assert any("WHERE asset_key IS NOT NULL" in s for s in stock["ddl"])  # postgresql_where, as checked
    assert any("(asset_key(64)" in s for s in stock["ddl"])  # mysql_length

    kept.write_text("{not json")  # unreadable: the dialects are imported, and the copy made again
    assert _probe(tmp_path / "home", "deferred", _SCHEMAS)["loaded"] == ["mysql", "postgresql"]
    assert _probe(tmp_path / "home", "deferred", _SCHEMAS)["loaded"] == []


# A process that builds one Pydantic model: how often it read the installed distributions, what plugins it used.
_PLUGINS = textwrap.dedent(
    """
    import importlib.metadata, json, sys
    scans, real = [], importlib.metadata.distributions
    def counted(**params):
        scans.append(params)
        return real(**params)
    importlib.metadata.distributions = counted
    if sys.argv[1] == "deferred":
        from simulation_assets.sinks import deferred_imports
        deferred_imports.install()
    import pydantic
    class Row(pydantic.BaseModel):
        x: int
    Row(x=1)
    plugin = sys.modules.get("probe_plugin")
    print(json.dumps({"scans": len(scans), "seen": plugin.seen if plugin else None}))
    """
)


def test_pydantic_reads_the_installed_distributions_once_per_installed_state(tmp_path: Path) -> None:
    """The first process keeps the plugin group's entry points; later ones with the same folders on
    ``sys.path`` use them without reading every distribution; a distribution installed since (its
    folder changes) is found, its plugin used as in a stock process, and disabling it still works."""
    from simulation_assets_tests.fresh_process import probe

    site, prepared = tmp_path / "site", tmp_path / "prepared"
    site.mkdir()
    prepared.mkdir()  # made before: a folder made in the working folder would change its state
    env = {
        "PYTHONPATH": f"{ROOT}{os.pathsep}{site}",
        "SIMULATE_PREPARED_INSTANCES": str(prepared),
        "PYDANTIC_DISABLE_PLUGINS": None,
        "PYTHONDONTWRITEBYTECODE": None,  # the same run whether or not the caller writes bytecode
    }

    def run(mode: str, **extra: str) -> dict:
        return probe(tmp_path, mode, code=_PLUGINS, env={**env, **extra})

    assert run("deferred") == {"scans": 1, "seen": None}  # nothing kept yet: read, then kept
    assert run("deferred") == {"scans": 0, "seen": None}
    (site / "probe_plugin.py").write_text(
        "seen = []\n"
        "class Plugin:\n"
        "    def new_schema_validator(self, schema, schema_type, *args):\n"
        "        seen.append(schema_type.__name__)\n"
        "        return None, None, None\n"
        "plugin = Plugin()\n"
    )
    info = site / "probe_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: probe-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nprobe = probe_plugin:plugin\n")
    # compiled as an installer would: the first import would otherwise make `site/__pycache__`, a change
    # of the folder's state (and one more scan) that no installed package makes
    compileall.compile_dir(site, quiet=1)
    assert run("deferred") == {"scans": 1, "seen": ["Row"]}  # installed since: read again
    assert run("deferred") == {"scans": 0, "seen": ["Row"]}
    assert run("stock") == {"scans": 1, "seen": ["Row"]}
    assert run("deferred", PYDANTIC_DISABLE_PLUGINS="probe") == {"scans": 0, "seen": None}
    (prepared / deferred_imports.PYDANTIC_PLUGINS_FILE).write_text("[not a table]")
    assert run("deferred") == {"scans": 1, "seen": ["Row"]}  # unreadable: read (and kept again)
