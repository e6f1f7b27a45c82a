"""Reference targets served by ``simulate target serve``.

Each sub-package of ``simulation_assets.target`` that exposes ``MOUNT_PATH`` (a path prefix such
as ``/hogflix``, or ``/`` for the root) and ``create_app()`` (returning an ASGI app) is mounted
into one Starlette app by :func:`simulation_assets.target.server.build_app`; longer prefixes are
matched first and ``/`` last, so the PropIQ API at the root never hides another app.
"""
