"""The PropIQ reference API in a child process.

Only the standard library here: the child imports uvicorn, Starlette and the app
(``simulation_assets.target.server``), the process that starts it does not.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any


def free_loopback_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """Return a bound, listening TCP socket on ``host`` (port 0 picks a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


class TargetProcess:
    """The PropIQ reference API served by uvicorn in a child process, on a free loopback port.

    For load: a server in the generator's own process competes with it for the interpreter lock
    (on the reference machine a 60 req/s load then met second-long answers). The parent binds the
    socket and hands it to the child, so the port is known before the child starts and never races:
    connections made before the child serves wait in the socket's queue. Use as
    ``with TargetProcess() as target: target.base_url``; ``app`` (``module:attribute``) serves
    another ASGI app instead. ``start()`` alone spawns the child without waiting for it; entering
    the context then waits until it answers. The child ends when this process closes its end of the
    child's stdin, so a parent that dies leaves no server behind.
    """

    def __init__(self, host: str = "127.0.0.1", start_timeout_s: float = 60.0, app: str = "") -> None:
        self._host, self._timeout, self._app = host, start_timeout_s, app
        self._proc: subprocess.Popen | None = None
        self.base_url = ""

    def start(self) -> TargetProcess:
        """Spawn the child on a fresh loopback socket (once) and return at once."""
        if self._proc is not None:
            return self
        sock = free_loopback_socket(self._host)
        port = sock.getsockname()[1]
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "simulation_assets.target.server",
                    "--fd",
                    str(sock.fileno()),
                    "--stop-at-eof",
                ]
                + (["--app", self._app] if self._app else []),
                pass_fds=[sock.fileno()],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        finally:
            sock.close()  # the child holds its own copy
        self.base_url = f"http://{self._host}:{port}"
        return self

    def alive(self) -> bool:
        """Whether the child was started and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> TargetProcess:
        self.start()
        assert self._proc is not None
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the reference target process exited with code {self._proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=1) as answer:  # noqa: S310 - loopback
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.02)
        self.__exit__()
        raise RuntimeError(f"the reference target did not answer within {self._timeout:g} s")

    def __exit__(self, *exc: Any) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()
