"""Compose the reference apps into one ASGI app and serve it with uvicorn (in-process or blocking)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import pkgutil
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

import simulation_assets.target as target_package
from simulation_assets.target.process import free_loopback_socket


def sub_apps() -> dict[str, Callable[[], ASGIApp]]:
    """Return ``{mount path: factory}`` for every sub-package exposing ``MOUNT_PATH`` and ``create_app``."""
    found: dict[str, Callable[[], ASGIApp]] = {}
    for info in sorted(pkgutil.iter_modules(target_package.__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        try:
            module = importlib.import_module(f"{target_package.__name__}.{info.name}")
        except ImportError as exc:
            # One unfinished or broken reference app must not take the others down with it.
            warnings.warn(f"reference app {info.name!r} not mounted: {exc}", stacklevel=2)
            continue
        path, factory = getattr(module, "MOUNT_PATH", None), getattr(module, "create_app", None)
        if isinstance(path, str) and callable(factory):
            if path in found:
                raise RuntimeError(f"two reference apps claim the mount path {path!r}")
            found[path] = factory
    return found


def build_app(apps: dict[str, Callable[[], ASGIApp]] | None = None) -> ASGIApp:
    """Return one ASGI app mounting every reference app (longest prefix first, ``/`` last).

    With a single app at ``/`` the app itself is returned (no routing layer in front of it).
    """
    apps = sub_apps() if apps is None else apps
    if list(apps) == ["/"]:
        return apps["/"]()
    ordered = sorted(apps, key=lambda p: (p == "/", -len(p)))
    routes = [Mount("" if p == "/" else "/" + p.strip("/"), app=apps[p]()) for p in ordered]
    return Starlette(routes=routes)


def _propiq_app() -> ASGIApp:
    from simulation_assets.target.propiq import create_app

    return create_app()


class _PromptServer(uvicorn.Server):
    """uvicorn's server, stopping as soon as ``stop()`` is called from another thread.

    uvicorn notices ``should_exit`` on its next tick (every 0.1 s) and then pauses another 0.1 s
    for open connections to wind down: 0.13-0.2 s of a `simulate power-users` run spent waiting.
    Here ``stop()`` wakes the loop at once, and with no connection or request left the pause is
    skipped; with some, uvicorn's own shutdown runs unchanged.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        # uvicorn's loop (ticks every 0.1 s: the date header, request limits), woken early by stop()
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    def stop(self) -> None:
        """Ask the server to exit now (from any thread)."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(wake.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets=sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


class LocalTarget:
    """An ASGI app (default: the PropIQ reference API alone) served by uvicorn in a background thread.

    It listens on a free loopback port; use as a context manager:
    ``with LocalTarget() as target: target.base_url``.
    """

    def __init__(self, app: ASGIApp | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app, self._host, self._port = app, host, port
        self._server: _PromptServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def __enter__(self) -> LocalTarget:
        sock = free_loopback_socket(self._host, self._port)
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app or _propiq_app(),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # no reference app serves a WebSocket: uvicorn's protocol for them (the websockets package,
            # ~26 M instructions of imports) is not loaded; an upgrade request gets a plain HTTP answer
            ws="none",
            timeout_keep_alive=30,
        )
        self._server = _PromptServer(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="reference-target", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the reference target did not start within 10 s")
            time.sleep(0.01)
        self.base_url = f"http://{self._host}:{port}"
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _stop_at_eof() -> None:
    """Read stdin to its end, then ask this process to stop as ``terminate()`` does."""
    import os
    import signal

    while sys.stdin.buffer.read(4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    clock_speed: float = 1.0,
    overrides: dict[str, Callable[[], ASGIApp]] | None = None,
) -> None:
    """Serve the composed reference apps on ``host:port`` until interrupted.

    ``clock_speed`` makes the PropIQ API's simulated clock run that many times faster than real time;
    ``overrides`` replaces the factories of some mount paths (the caller wires them to its sinks).
    """
    apps = {**sub_apps(), **(overrides or {})}
    if "/" in apps and clock_speed != 1.0:
        from simulation_assets.core.power_users.target_rules import TargetRules
        from simulation_assets.target.propiq import create_app

        apps["/"] = lambda: create_app(TargetRules(clock_speed=clock_speed))
    uvicorn.run(
        build_app(apps), host=host, port=port, log_level="info", access_log=False, timeout_keep_alive=30
    )


if __name__ == "__main__":  # the child of TargetProcess: serve PropIQ on an inherited socket
    import argparse

    parser = argparse.ArgumentParser(description="serve the PropIQ reference API on an inherited socket")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--app", default="", help="module:attribute of another ASGI app")
    parser.add_argument(
        "--stop-at-eof", action="store_true", help="stop when stdin closes (the parent ended)"
    )
    args = parser.parse_args()
    if args.stop_at_eof:
        import signal

        # A parent that ignores SIGTERM passes that on through exec: the stop sent before uvicorn takes the
        # signal over would be lost, and the server would outlive its parent.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        threading.Thread(target=_stop_at_eof, name="stop-at-eof", daemon=True).start()
    uvicorn.run(
        args.app or _propiq_app(),
        fd=args.fd,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        backlog=4096,
    )
