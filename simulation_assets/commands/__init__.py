"""One module per ``simulate`` sub-command.

Each module listed here exposes ``register(subparsers)`` and may expose
``run_demo(output_root: Path)``, which ``simulate demo`` calls in this order.
"""

COMMAND_MODULES = ("hogflix",)
