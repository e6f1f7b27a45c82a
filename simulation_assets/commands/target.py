"""``simulate target serve``: serve the bundled reference apps (the PropIQ-like API at ``/``)."""

from __future__ import annotations

import argparse

from simulation_assets.commands.common import UsageError, console


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``target`` sub-command."""
    p = sub.add_parser("target", help="serve the reference target apps on loopback")
    actions = p.add_subparsers(dest="target_command", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="serve until interrupted (Ctrl+C)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1, loopback only)"
    )
    serve.add_argument(
        "--clock-speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second for token and session expiry (default 1; 60 = a minute a second)",
    )
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Handle ``simulate target serve``."""
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be 1-65535, got {args.port}")
    if not 0 < args.clock_speed <= 1_000_000:
        raise UsageError(f"--clock-speed must be above 0 and at most 1000000, got {args.clock_speed}")
    from simulation_assets.commands.hogflix_browser import served_web_app
    from simulation_assets.target.server import serve, sub_apps
    from simulation_assets.webapp.serve import MOUNT_PATH

    mounts = ", ".join(sorted(sub_apps()))
    console.print(f"Serving reference apps ({mounts}) on http://{args.host}:{args.port}  (Ctrl+C stops)")
    serve(args.host, args.port, args.clock_speed, overrides={MOUNT_PATH: served_web_app})
    return 0
