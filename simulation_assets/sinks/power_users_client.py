"""Drive a target API with scripted power users over async HTTP and record every request.

Each user's session is a :class:`~simulation_assets.sinks.power_users_session.PersonaSession`;
this module runs them together and turns their rows into tables, the report and the summary.

``PowerUserTarget`` is the Dagster resource: it names the API (``base_url``) and the scenario
file. An empty ``base_url`` means "the bundled reference API": whoever runs the personas (the
Dagster asset) serves it on a free loopback port and passes its URL to :meth:`PowerUserTarget.run`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.power_users.config import Persona, Scenario
from simulation_assets.core.power_users.report import build_report, console_summary
from simulation_assets.core.power_users.safety import check_scenario
from simulation_assets.core.power_users.shapes import peak_level
from simulation_assets.sinks.power_users_http import new_client, probe_hooks, run_async
from simulation_assets.sinks.power_users_scenario import load_scenario
from simulation_assets.sinks.power_users_session import (
    Clock,
    PersonaSession,
    RunTables,
    SessionOptions,
    utc_stamp,
)

LOGGER_NAME = "simulation_assets.power_users"
LOG_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"


@dataclass
class RunResult:
    """A finished run: its tables, the report dict and the console summary text."""

    frames: dict[str, pl.DataFrame]
    report: dict[str, Any]
    summary: str
    base_url: str


async def run_personas(
    scenario: Scenario,
    personas: list[Persona],
    base_url: str,
    day: str,
    parallel: bool,
    log: logging.Logger,
    options: SessionOptions,
) -> RunTables:
    """Run ``personas``' sessions against ``base_url`` (all at once or one after another); return the tables."""
    tables = RunTables()
    settings = scenario.simulation_config
    # a load gives every virtual user its own connection, as each browser would have, and paced
    # arrivals one per paced user (a burst sends them all at once, as Locust's users, each on its own)
    connections = max(settings.max_connections, len(personas)) if options.shape else settings.max_connections
    if options.shape:
        shape = scenario.load_shape(options.shape)
        if shape.model == "open" and shape.arrivals == "paced":
            connections = min(max(connections, math.ceil(peak_level(shape) * shape.pace_s)), 10_000)
    async with new_client(base_url, connections, settings.request_timeout_s) as client:
        hooks = await probe_hooks(client)
        log.info(
            "target %s (simulation hooks: %s), %d users", base_url, "yes" if hooks else "no", len(personas)
        )
        clock = Clock()
        if options.shape:
            # a load shape's machinery (five modules) is imported by the runs that use one
            from simulation_assets.sinks.power_users_load import LoadRun

            share = len(personas) / len(scenario.simulations)
            load = LoadRun(
                scenario,
                personas,
                client,
                tables,
                log,
                clock,
                hooks,
                options.shape,
                share,
                day,
                options.progress,
            )
            await load.run()
            return tables
        runs = [
            PersonaSession(scenario, p, client, tables, log, day, hooks, clock, options) for p in personas
        ]
        if parallel:
            await asyncio.gather(*(r.run() for r in runs))
        else:
            for r in runs:
                await r.run()
    return tables


def _file_logger(log_path: Path | None) -> tuple[logging.Logger, logging.Handler | None]:
    log = logging.getLogger(f"{LOGGER_NAME}.{id(log_path)}.{time.monotonic_ns()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = None
    if log_path is None:
        log.addHandler(logging.NullHandler())  # no file asked for: stay silent, not Python's stderr fallback
    else:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        log.addHandler(handler)
    return log, handler


class PowerUserTarget(dg.ConfigurableResource):
    """Where power-user runs send their requests and which scenario file they follow.

    ``base_url`` empty (default) means the bundled reference API, served on a free loopback port
    for each run; set it (or ``POWER_USERS_BASE_URL``) to drive another deployment of the API.
    """

    base_url: str = Field(
        default="",
        description="API to drive (env POWER_USERS_BASE_URL); empty: the scenario's base_url, else the reference API",
    )
    scenario_path: str = Field(
        default="",
        description="YAML scenario file (env POWER_USERS_SCENARIO); empty: the packaged five personas",
    )

    def scenario(self) -> Scenario:
        """Return the validated scenario (raises ConfigError naming the bad field)."""
        return load_scenario(self.scenario_path or None)

    def target_url(self, scenario: Scenario) -> str:
        """Return the API to drive (resource, then scenario file); empty means the bundled reference API."""
        return (self.base_url or scenario.simulation_config.base_url).rstrip("/")

    def run(
        self,
        personas: list[str] | None = None,
        day: str | None = None,
        sequential: bool | None = None,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        scenario: Scenario | None = None,
        reference_url: str = "",
        users: int | None = None,
        options: SessionOptions | None = None,
    ) -> RunResult:
        """Run the named personas (default: all) for ``day`` and return tables, report and summary.

        ``personas`` names archetypes (or single users); with a population (``users`` clones, else
        the scenario's ``population.size``) every clone of a named archetype runs. Safety checks run
        first: a live Stripe key or a non-simulated e-mail raises SafetyError before any request is
        sent. With no API configured, ``reference_url`` is the address of the served reference API.
        """
        options = options or SessionOptions()
        scenario = scenario or self.scenario()
        if options.shape:
            scenario.load_shape(options.shape)  # raises ConfigError naming the shapes defined
            settings = scenario.simulation_config
            scenario = scenario.populated(users or scenario.population.size or settings.load_users)
        else:
            scenario = scenario.populated(users)
        check_scenario(scenario, os.environ if env is None else env)
        if personas:
            for name in personas:
                if name not in scenario.archetypes():
                    scenario.persona(name)  # raises ConfigError listing the valid names
            chosen = [p for p in scenario.simulations if p.archetype in personas or p.name in personas]
        else:
            chosen = list(scenario.simulations)
        settings = scenario.simulation_config
        day = day or dt.date.today().isoformat()
        parallel = settings.parallel if sequential is None else not sequential
        configured = self.target_url(scenario)
        url = configured or reference_url.rstrip("/")
        if not url:
            raise ValueError(
                "no API to drive: set base_url (env POWER_USERS_BASE_URL or the scenario's "
                "simulation_config.base_url) or serve the reference target and pass its reference_url"
            )
        started = utc_stamp()
        log, _ = _file_logger(log_path)
        try:
            t0 = time.perf_counter()
            tables = run_async(run_personas(scenario, chosen, url, day, parallel, log, options))
            seconds = time.perf_counter() - t0
        finally:
            for h in list(log.handlers):
                log.removeHandler(h)
                h.close()
            logging.Logger.manager.loggerDict.pop(log.name, None)  # one logger per run: do not keep them
        mode = "parallel" if parallel else "sequential"
        frames = tables.frames(
            {
                "base_url": url,
                "reference_target": not configured,
                "mode": mode,
                "follow_rhythm": options.follow_rhythm,
            }
        )
        order = {p.name: i for i, p in enumerate(chosen)}
        frames["users"] = frames["users"].sort(pl.col("user").replace_strict(order, return_dtype=pl.Int32))
        meta = {
            "base_url": url,
            "reference_target": not configured,
            "day": day,
            "mode": mode,
            "users": len(chosen),
            "follow_rhythm": options.follow_rhythm,
            "pace": "simulated"
            if options.speed == 0
            else ("real" if options.speed == 1 else f"x{options.speed:g}"),
            "seed": settings.seed,
            "started_at": started,
            "finished_at": utc_stamp(),
            "duration_seconds": round(seconds, 3),
            "requests": frames["attempts"].height,
            "requests_per_second": round(frames["attempts"].height / seconds, 2) if seconds else 0.0,
        }
        if tables.load_requests:
            # what the generator itself cost (process CPU over the load): Locust's "CPU usage" warning
            meta["load_generator_cpu_seconds"] = round(tables.load_cpu_seconds, 3)
            meta["load_generator_cpu_ms_per_1000_requests"] = round(
                tables.load_cpu_seconds / tables.load_requests * 1e6, 1
            )
            # each sleep and wake-up costs the kernel a context switch: most of a light load's CPU
            meta["load_generator_sleeps_per_1000_requests"] = round(
                tables.load_sleeps / tables.load_requests * 1e3, 1
            )
        report = build_report(
            frames["requests"],
            frames["attempts"],
            frames["edges"],
            frames["users"],
            settings.costs,
            meta,
            frames["load"],
        )
        summary = console_summary(report, settings.product_name)
        if log_path is not None:
            with log_path.open("a", encoding="utf-8") as fh:
                fh.write(summary + "\n")
        return RunResult(frames=frames, report=report, summary=summary, base_url=url)
