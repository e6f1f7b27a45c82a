"""The one loader of YAML overrides and environment variables: merges, validation, errors that name things."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import dagster as dg
import pytest
from pydantic import Field

from simulation_assets.core.config_base import FrozenModel, Probability, scenario_key
from simulation_assets.sinks.config_files import (
    ConfigFileError,
    from_env,
    load_config,
    read_overrides,
    resolved,
)


class Rates(FrozenModel):
    ctr: Probability = 0.02
    cvr: Probability = 0.1


class Scenario(FrozenModel):
    pool: int = Field(default=400, gt=0)
    rates: Rates = Rates()


def test_yaml_overrides_merge_nested_sections_and_explicit_overrides_win(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    file.write_text("pool: 50\nrates:\n  ctr: 0.05\n")
    cfg = load_config(Scenario, file, source="SCENARIO_CONFIG", overrides={"rates": {"cvr": 0.2}})
    assert cfg == Scenario(pool=50, rates=Rates(ctr=0.05, cvr=0.2))
    assert load_config(Scenario) == Scenario()
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(Scenario, empty) == Scenario()


def test_an_invalid_field_is_named_with_the_file_and_the_value(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("pool: -3\nrates:\n  ctr: 1.5\n")
    with pytest.raises(ConfigFileError) as caught:
        load_config(Scenario, file, source="SCENARIO_CONFIG")
    message = str(caught.value)
    assert message.startswith(f"SCENARIO_CONFIG file {file}: ")
    assert "pool: Input should be greater than 0 (got -3)" in message
    assert "rates.ctr: Input should be less than or equal to 1 (got 1.5)" in message


def test_a_misspelt_field_is_named(tmp_path: Path) -> None:
    file = tmp_path / "typo.yaml"
    file.write_text("pol: 10\n")
    with pytest.raises(ConfigFileError, match=r"pol: Extra inputs are not permitted"):
        load_config(Scenario, file)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- 1\n- 2\n", "must hold a mapping of field names to values, got a list"),
        ("pool: [1,\n", "is not valid YAML at line"),
    ],
)
def test_files_that_are_not_a_mapping_of_fields_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    file = tmp_path / "x.yaml"
    file.write_text(text)
    with pytest.raises(ConfigFileError, match=expected):
        load_config(Scenario, file, source="X_CONFIG")


def test_a_missing_file_names_the_variable_that_pointed_at_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=rf"HOGFLIX_CONFIG file {tmp_path}/nope.yaml not found"):
        load_config(Scenario, tmp_path / "nope.yaml", source="HOGFLIX_CONFIG")


class Store(dg.ConfigurableResource):
    backend: Literal["duckdb", "postgres"] = "duckdb"
    dsn: str = ""
    seed: int = 42
    share: float = 0.1


ENV = {"backend": "STORE_BACKEND", "dsn": "STORE_DSN", "seed": "STORE_SEED", "share": "STORE_SHARE"}


def test_environment_variables_bind_as_envvars_so_the_ui_never_shows_a_dsn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STORE_DSN", "postgresql://u:secret@db/x")
    monkeypatch.setenv("STORE_SEED", "7")
    monkeypatch.setenv("STORE_BACKEND", "postgres")
    store = from_env(Store, ENV)
    # the definition holds the variable names, not the values
    assert isinstance(store.dsn, dg.EnvVar) and store.dsn.env_var_name == "STORE_DSN"
    assert "secret" not in repr(store.dsn)
    live = resolved(store)
    assert (live.backend, live.dsn, live.seed, live.share) == (
        "postgres",
        "postgresql://u:secret@db/x",
        7,
        0.1,
    )


def test_resolved_reads_the_variables_like_dagster_but_builds_no_instance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STORE_DSN", "postgresql://u:secret@db/x")
    monkeypatch.setenv("STORE_SEED", "7")
    store = from_env(Store, ENV, share=0.25)
    by_dagster = store.process_config_and_initialize()

    def no_instance(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("resolved() built a Dagster instance")

    monkeypatch.setattr(dg.DagsterInstance, "ephemeral", no_instance)
    live = resolved(store)
    assert type(live) is Store and live == by_dagster
    assert (live.dsn, live.seed, live.share, live.backend) == (
        "postgresql://u:secret@db/x",
        7,
        0.25,
        "duckdb",
    )
    assert resolved(Store()) == Store()  # nothing bound: the resource itself
    monkeypatch.delenv("STORE_DSN")  # bound, then unset before it is read: named
    with pytest.raises(ConfigFileError, match=r"\$STORE_DSN \(Store.dsn\) is not set"):
        resolved(store)
    monkeypatch.setenv("STORE_DSN", "x")
    monkeypatch.setenv("STORE_SEED", "seven")
    with pytest.raises(ConfigFileError, match=r"\$STORE_SEED must be a whole number, got 'seven'"):
        resolved(store)


def test_unset_variables_keep_the_defaults_and_explicit_values_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORE_DSN", raising=False)
    monkeypatch.setenv("STORE_SEED", "7")
    store = from_env(Store, ENV, seed=3)
    assert (store.dsn, store.seed, store.backend) == ("", 3, "duckdb")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("STORE_SEED", "seven", r"\$STORE_SEED must be a whole number, got 'seven'"),
        ("STORE_BACKEND", "oracle", r"\$STORE_BACKEND: .*'duckdb' or 'postgres' \(got 'oracle'\)"),
    ],
)
def test_a_variable_that_does_not_fit_its_field_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigFileError, match=expected):
        from_env(Store, ENV)


def test_scenario_key_is_stable_and_changes_with_any_number() -> None:
    payload = {"seed": 42, "config": Scenario().model_dump(mode="json")}
    assert scenario_key("seed42", payload) == scenario_key("seed42", dict(reversed(payload.items())))
    assert scenario_key("seed42", payload) != scenario_key(
        "seed42", {"seed": 42, "config": Scenario(pool=401).model_dump(mode="json")}
    )
    # pinned: store folders written before this helper existed keep their names
    assert (
        scenario_key("seed42", {"a": 1})
        == "seed42-" + __import__("hashlib").sha1(b'{"a": 1}').hexdigest()[:10]
    )


def test_yaml_files_are_read_by_libyaml_safely_and_like_the_python_loader(tmp_path: Path) -> None:
    import yaml

    from simulation_assets.core.power_users.config import DEFAULT_PROFILES
    from simulation_assets.sinks.config_files import SAFE_LOADER

    assert SAFE_LOADER is yaml.CSafeLoader  # ~10x faster on the packaged scenario
    assert read_overrides(DEFAULT_PROFILES) == yaml.safe_load(DEFAULT_PROFILES.read_text())
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("persona_pool: !!python/object/apply:os.getpid []\n")
    with pytest.raises(ConfigFileError, match="is not valid YAML at line 1, column 15"):
        read_overrides(unsafe)
