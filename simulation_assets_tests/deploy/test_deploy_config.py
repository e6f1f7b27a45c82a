"""The deployment files, checked without a cluster: instance schemas, launcher configs, compose, Helm values."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROJECT_POOLS = {"posthog", "app_db", "flixbuddy", "target_api", "warehouse_load"}
POSTGRES_VARS = {f"DAGSTER_POSTGRES_{k}" for k in ("HOST", "PORT", "DB", "USER", "PASSWORD")}


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


@pytest.fixture
def postgres_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in POSTGRES_VARS:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")


@pytest.fixture
def pool_limits() -> Iterator[Any]:
    sys.path.insert(0, str(DEPLOY))
    try:
        import pool_limits

        yield pool_limits
    finally:
        sys.path.remove(str(DEPLOY))


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def snake_keys(value: Any) -> Any:
    """camelCase Helm keys -> the snake_case dagster.yaml keys the chart renders (values untouched)."""
    if isinstance(value, dict):
        return {snake(k) if k != "applyLimitPerUniqueValue" else k: snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


# ---------------------------------------------------------------------------------- instance files
@pytest.mark.parametrize("name", ["dagster.yaml", "dagster-docker.yaml"])
def test_instance_files_pass_dagsters_instance_schema(name: str, tmp_path: Path, postgres_env: None) -> None:
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text((DEPLOY / name).read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    pg = config["storage"]["postgres"]["postgres_db"]
    assert {pg[k]["env"] for k in ("hostname", "port", "db_name", "username", "password")} == POSTGRES_VARS
    assert pg["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_monitoring"]["enabled"] and config["run_retries"]["enabled"]
    assert config["run_retries"]["max_retries"] == 2


def test_queue_limits_and_pools_are_what_the_daemon_will_enforce(tmp_path: Path, postgres_env: None) -> None:
    from dagster._core.instance.config import ConcurrencyConfig, dagster_instance_config
    from dagster._core.run_coordinator import QueuedRunCoordinator

    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    coordinator = QueuedRunCoordinator(**config["run_coordinator"]["config"])
    parsed = ConcurrencyConfig.from_concurrency_settings(
        config["concurrency"], coordinator.get_run_queue_config()
    )
    queue = parsed.run_queue_config
    assert queue.max_concurrent_runs == 10
    limits = {(t["key"], str(t.get("value"))): t["limit"] for t in queue.tag_concurrency_limits}
    assert limits[("dagster/backfill", "None")] == 8
    assert limits[("dagster/backfill", "{'applyLimitPerUniqueValue': True}")] == 4
    assert parsed.pool_config.pool_granularity.value == "op"
    assert parsed.pool_config.default_pool_limit == 1


def test_docker_instance_differs_from_the_local_one_only_in_launcher_and_monitoring(
    tmp_path: Path, postgres_env: None
) -> None:
    local, docker = load("dagster.yaml"), load("dagster-docker.yaml")
    assert local["run_launcher"]["class"] == "DefaultRunLauncher"
    assert docker["run_launcher"]["class"] == "DockerRunLauncher"
    for config in (local, docker):
        config.pop("run_launcher")
        config["run_monitoring"].pop("max_resume_run_attempts", None)
    assert local == docker


def test_pools_file_names_exactly_the_pools_the_assets_use(pool_limits: Any) -> None:
    import dagster as dg  # noqa: F401

    from simulation_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    used = {pool for key in graph.get_all_asset_keys() for pool in graph.get(key).pools or ()}
    limits = pool_limits.read_pool_limits()
    assert set(limits) == PROJECT_POOLS
    assert used <= set(limits), f"pools without a limit: {used - set(limits)}"
    assert all(limit >= 1 for limit in limits.values())


def test_pools_file_with_a_bad_limit_is_refused_naming_the_pool(tmp_path: Path, pool_limits: Any) -> None:
    bad = tmp_path / "pools.yaml"
    bad.write_text("pools:\n  posthog: -1\n")
    with pytest.raises(ValueError, match="'posthog'"):
        pool_limits.read_pool_limits(bad)


@pytest.mark.postgres
def test_pool_limits_are_written_to_a_postgres_instance_and_checked(
    postgres_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pool_limits: Any, capsys
) -> None:
    import dagster as dg

    dsn_db = f"pools_{tmp_path.name[-8:].replace('-', '_')}"
    postgres_cluster.create_database(dsn_db)
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    for name, value in {
        "DAGSTER_HOME": str(tmp_path),
        "DAGSTER_POSTGRES_HOST": "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": str(postgres_cluster.port),
        "DAGSTER_POSTGRES_DB": dsn_db,
        "DAGSTER_POSTGRES_USER": postgres_cluster.user,
        "DAGSTER_POSTGRES_PASSWORD": "unused",
    }.items():
        monkeypatch.setenv(name, value)
    assert pool_limits.main(["--check"]) == 1  # nothing applied yet
    assert pool_limits.main([]) == 0
    assert pool_limits.main(["--check"]) == 0
    with dg.DagsterInstance.get() as instance:
        held = pool_limits.current_limits(instance, pool_limits.read_pool_limits())
        assert held == {"posthog": 2, "app_db": 4, "flixbuddy": 2, "target_api": 5, "warehouse_load": 2}
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert "pool warehouse_load: limit 2" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------- Docker
def test_docker_run_launcher_config_passes_dagster_dockers_schema() -> None:
    from dagster._config import process_config
    from dagster_docker import DockerRunLauncher
    from dagster_docker.utils import validate_docker_config

    config = load("dagster-docker.yaml")["run_launcher"]
    assert config["module"] == "dagster_docker"
    result = process_config(DockerRunLauncher.config_type(), config["config"])
    assert result.success, result.errors
    validate_docker_config(
        result.value.get("network"), result.value.get("networks"), result.value["container_kwargs"]
    )


@pytest.fixture
def compose() -> dict:
    return load("docker-compose.yml")


def test_compose_runs_postgres_code_server_webserver_and_daemon_from_one_image(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "user-code", "pool-limits", "webserver", "daemon"}
    image = services["user-code"]["image"]
    assert services["user-code"]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert all(services[s]["image"] == image for s in ("pool-limits", "webserver", "daemon"))
    assert services["user-code"]["environment"]["DAGSTER_CURRENT_IMAGE"] == image
    assert (
        services["postgres"]["image"].startswith("postgres:")
        and ":latest" not in services["postgres"]["image"]
    )


def test_compose_commands_line_up_with_workspace_dockerfile_and_launcher(compose: dict) -> None:
    services = compose["services"]
    code = services["user-code"]["command"]
    port = code[code.index("-p") + 1]
    location = code[code.index("--location-name") + 1]
    assert (
        code[:3] == ["dagster", "code-server", "start"]
        and code[code.index("-m") + 1] == "simulation_assets.definitions"
    )
    workspace = load("workspace-docker.yaml")["load_from"][0]["grpc_server"]
    assert workspace == {"host": "user-code", "port": int(port), "location_name": location}
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"EXPOSE {port}" in dockerfile
    cmd = re.search(r"^CMD (\[.*?\])$", dockerfile, re.S | re.M).group(1)
    assert yaml.safe_load(cmd.replace("\\\n", " ")) == code
    for name, binary in (("webserver", "dagster-webserver"), ("daemon", "dagster-daemon")):
        command = services[name]["command"]
        assert command[0] == binary
        assert command[command.index("-w") + 1] == "/opt/dagster/dagster_home/workspace.yaml"
    # The daemon launches containers, so it needs the engine socket; runs join the compose network.
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["daemon"]["volumes"]
    launcher = load("dagster-docker.yaml")["run_launcher"]["config"]
    assert compose["networks"]["simulation_assets"]["name"] == launcher["network"]
    for mount in launcher["container_kwargs"]["volumes"]:
        volume = mount.split(":")[0]
        assert compose["volumes"][volume]["name"] == volume, f"{volume} must keep its name outside compose"


def test_compose_mounts_exist_and_every_dagster_service_gets_the_instance_files(compose: dict) -> None:
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
        if name in {"user-code", "webserver", "daemon", "pool-limits"}:
            targets = {m.split(":")[1] for m in service["volumes"]}
            assert "/opt/dagster/dagster_home/dagster.yaml" in targets
    init = (DEPLOY / "postgres-init.sql").read_text()
    env = compose["services"]["daemon"]["environment"]
    for dsn_var, database in (
        ("ACTIVITY_DATABASE_URL", "activity"),
        ("WAREHOUSE_POSTGRES_DSN", "warehouse_{env}"),
    ):
        assert f"@postgres:5432/{database}" in env[dsn_var]
        for db in (
            [database] if "{env}" not in database else [f"warehouse_{e}" for e in ("dev", "qa", "prod")]
        ):
            assert f"CREATE DATABASE {db};" in init


def test_compose_environment_and_run_container_env_vars_agree(compose: dict) -> None:
    env = compose["x-environment"]
    forwarded = set(load("dagster-docker.yaml")["run_launcher"]["config"]["env_vars"])
    assert forwarded == set(env), "every variable the services get must reach the run containers too"
    assert POSTGRES_VARS <= forwarded
    for name in ("webserver", "daemon"):
        assert compose["services"][name]["environment"] == env
    assert env["DAGSTER_POSTGRES_HOST"] == "postgres"
    assert env["SIMULATION_DATA_DIR"] == "/opt/dagster/data"
    assert env["ACTIVITY_STORE"] == "postgres", "the activity state is shared by several containers"


def test_dockerfile_is_pinned_non_root_and_installs_from_the_constraints() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert 'pip install -c constraints.txt ".[deploy]"' in text
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for copied in re.findall(r"^COPY (?!--from)(.+?) \S+$", text, re.M):
        for path in copied.split():
            assert (REPO / path).exists(), path
            assert f"!{path}" in ignore or f"!{path}/**" in ignore, f"{path} is outside the build context"


def test_constraints_agree_with_every_exact_pin_of_pyproject() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = [*project["dependencies"], *project["optional-dependencies"]["deploy"]]
    constraints = {}
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            constraints[re.sub(r"[-_.]+", "-", name.lower())] = version.strip()
    for pin in pins:
        if "==" not in pin:
            continue
        name, version = pin.split("==")
        name = re.sub(r"\[.*\]", "", name).strip().lower().replace("_", "-")
        assert constraints.get(name) == version, (
            f"{name}: pyproject {version}, constraints {constraints.get(name)}"
        )


# ------------------------------------------------------------------------------------ Kubernetes
# What the official chart (dagster/dagster 1.13, helm/dagster/schema) accepts, reduced to the keys
# this project sets; copied from the chart's pydantic models, which forbid unknown keys.
CHART_KEYS = {
    "": {"global", "postgresql", "generatePostgresqlPasswordSecret", "dagster-user-deployments", "runLauncher",
         "dagsterDaemon", "concurrency", "retention", "telemetry", "dagsterWebserver", "computeLogManager",
         "pythonLogs", "ingress", "imagePullSecrets", "serviceAccount", "migrate", "busybox", "scheduler",
         "rabbitmq", "redis", "flower", "generateCeleryConfigSecret", "additionalInstanceConfig"},
    "global": {"postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName",
               "dagsterInstanceConfigMap"},
    "postgresql": {"enabled", "image", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
                   "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service"},
    "dagster-user-deployments": {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    "deployment": {"name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
                   "deploymentNamespace", "port", "replicaCount", "env", "envConfigMaps", "envSecrets",
                   "annotations", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
                   "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels",
                   "volumeMounts", "volumes", "schedulerName", "initContainers", "sidecarContainers",
                   "deploymentStrategy"},
    "runLauncher.k8sRunLauncher": {"image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig",
                                   "kubeconfigFile", "envConfigMaps", "envSecrets", "envVars", "volumeMounts",
                                   "volumes", "labels", "failPodOnRunFailure", "resources", "schedulerName",
                                   "securityContext", "runK8sConfig"},
    "dagsterDaemon": {"enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps",
                      "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations",
                      "podSecurityContext", "securityContext", "resources", "checkDbReadyInitContainer",
                      "livenessProbe", "readinessProbe", "startupProbe", "annotations", "runMonitoring",
                      "runRetries", "sensors", "schedules", "backfills", "schedulerName", "logFormat",
                      "volumeMounts", "volumes", "initContainerResources", "extraContainers",
                      "extraPrependedInitContainers"},
    "queuedRunCoordinator": {"maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds",
                             "dequeueNumWorkers", "dequeueUseThreads", "blockOpConcurrencyLimitedRuns"},
    "runRetries": {"enabled", "maxRetries", "retryOnAssetOrOpFailure"},
    "concurrency": {"enabled", "pools", "runs"},
    "concurrency.pools": {"defaultLimit", "granularity", "opGranularityRunBuffer"},
    "concurrency.runs": {"maxConcurrentRuns", "tagConcurrencyLimits"},
}  # fmt: skip


@pytest.fixture
def values() -> dict:
    return load("helm/values.yaml")


def test_helm_values_use_only_keys_the_chart_knows(values: dict) -> None:
    def unknown(section: str, mapping: dict) -> set[str]:
        return set(mapping) - CHART_KEYS[section]

    assert not unknown("", values)
    assert not unknown("global", values["global"])
    assert not unknown("postgresql", values["postgresql"])
    assert not unknown("dagster-user-deployments", values["dagster-user-deployments"])
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert not unknown("deployment", deployment)
    assert set(values["runLauncher"]["config"]) == {"k8sRunLauncher"}
    assert not unknown("runLauncher.k8sRunLauncher", values["runLauncher"]["config"]["k8sRunLauncher"])
    daemon = values["dagsterDaemon"]
    assert not unknown("dagsterDaemon", daemon)
    assert not unknown("queuedRunCoordinator", daemon["runCoordinator"]["config"]["queuedRunCoordinator"])
    assert not unknown("runRetries", daemon["runRetries"])
    assert not unknown("concurrency", values["concurrency"])
    assert not unknown("concurrency.pools", values["concurrency"]["pools"])
    assert not unknown("concurrency.runs", values["concurrency"]["runs"])


def test_helm_values_satisfy_the_charts_rules(values: dict) -> None:
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    # The chart fails to render when a limit is set both here and under concurrency.runs.
    assert "tagConcurrencyLimits" not in queued and "maxConcurrentRuns" not in queued
    assert values["concurrency"]["enabled"] is True
    assert values["concurrency"]["pools"]["granularity"] in {"op", "run"}
    # No chart-generated password: the secret named in global must hold `postgresql-password`.
    assert values["generatePostgresqlPasswordSecret"] is False and values["global"]["postgresqlSecretName"]
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "simulation_assets.definitions"]
    assert deployment["image"]["tag"] != "latest"


def test_helm_queue_pools_monitoring_and_retries_match_deploy_dagster_yaml(values: dict) -> None:
    instance = load("dagster.yaml")
    assert snake_keys(values["concurrency"]["runs"]) == instance["concurrency"]["runs"]
    assert snake_keys(values["concurrency"]["pools"]) == instance["concurrency"]["pools"]
    daemon = values["dagsterDaemon"]
    retries = snake_keys(daemon["runRetries"])
    assert retries == instance["run_retries"]
    monitoring = snake_keys(daemon["runMonitoring"])
    monitoring.pop("max_resume_run_attempts")  # only the k8s and docker launchers can resume
    assert monitoring == {
        k: v for k, v in instance["run_monitoring"].items() if k != "cancel_timeout_seconds"
    }
    queued = snake_keys(daemon["runCoordinator"]["config"]["queuedRunCoordinator"])
    assert queued == instance["run_coordinator"]["config"]


def test_k8s_run_launcher_config_rendered_from_the_values_passes_dagster_k8s(values: dict) -> None:
    import kubernetes
    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict

    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    # What the chart writes into dagster.yaml (plus the keys it always adds itself).
    rendered = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "image_pull_policy": launcher["imagePullPolicy"],
        "job_namespace": "simulation-assets",
        "service_account_name": "simulation-assets-dagster",
        "instance_config_map": "simulation-assets-dagster-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "dagster_home": "/opt/dagster/dagster_home",
        "env_config_maps": [c["name"] for c in launcher["envConfigMaps"]],
        "env_secrets": [s["name"] for s in launcher["envSecrets"]],
        "env_vars": launcher["envVars"],
        "volume_mounts": launcher["volumeMounts"],
        "volumes": launcher["volumes"],
        "labels": launcher["labels"],
        "resources": launcher["resources"],
        "security_context": launcher["securityContext"],
    }
    result = process_config(K8sRunLauncher.config_type(), rendered)
    assert result.success, result.errors
    resources = k8s_model_from_dict(kubernetes.client.V1ResourceRequirements, launcher["resources"])
    assert resources.requests["memory"] == "1536Mi" and resources.limits["memory"] == "3Gi"
    for volume in launcher["volumes"]:
        model = k8s_model_from_dict(
            kubernetes.client.V1Volume, k8s_snake_case_dict(kubernetes.client.V1Volume, volume)
        )
        assert model.persistent_volume_claim.claim_name == "simulation-assets-data"
    k8s_model_from_dict(
        kubernetes.client.V1SecurityContext,
        k8s_snake_case_dict(kubernetes.client.V1SecurityContext, launcher["securityContext"]),
    )


def test_run_pods_get_the_launchers_sizing_not_the_code_servers(values: dict) -> None:
    deployment = values["dagster-user-deployments"]["deployments"][0]
    # With includeConfigInLaunchedRuns the code server's resources would override the run sizing.
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": False}
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["envSecrets"] == deployment["envSecrets"]
    assert launcher["envConfigMaps"] == deployment["envConfigMaps"]
    assert launcher["volumeMounts"] == deployment["volumeMounts"]


def _mib(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi)", quantity).groups()
    return float(number) * (1024 if unit == "Gi" else 1)


def test_run_pod_memory_covers_the_measured_peak_per_partition(values: dict) -> None:
    readme = (DEPLOY / "README.md").read_text()
    peaks = [int(m) for m in re.findall(r"\|\s*(\d+) MiB\s*\|", readme)]
    assert peaks, "the capacity table lists peak memory per partition"
    resources = values["runLauncher"]["config"]["k8sRunLauncher"]["resources"]
    assert _mib(resources["requests"]["memory"]) >= max(peaks)
    assert _mib(resources["limits"]["memory"]) >= 1.5 * max(peaks)
