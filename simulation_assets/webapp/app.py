"""The HogFlix reference web app (Starlette): pages, the bundled SDK and a PostHog-style capture endpoint.

Pages are server-rendered (``pages.py``); the browser SDK is ``posthog-js`` from
the npm registry, copied into ``static/posthog.js`` by
``scripts/build_webapp.sh`` (never fetched at run time). The page starts the SDK
from the JSON configuration it embeds: project key and API host, by default
this app itself, which answers the SDK's capture (``/e/``, ``/i/v0/e/``,
``/batch/``), recording (``/s/``) and flags/remote-config requests and records
the events in a ``CaptureLog``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from simulation_assets.core.hogflix.catalog import GENRES, catalog
from simulation_assets.core.hogflix.flixbuddy import deterministic_reply
from simulation_assets.core.hogflix.traffic_config import FLIXBUDDY_QUESTIONS, TrafficConfig
from simulation_assets.webapp import pages
from simulation_assets.webapp.capture import CaptureDecodeError, CaptureLog, decode_capture

STATIC_DIR = Path(__file__).parent / "static"
SDK_PATH = STATIC_DIR / "posthog.js"
LOCAL_PROJECT_KEY = "phc_hogflix_reference_local"
CAPTURE_PATHS = ("/e", "/i/v0/e", "/batch", "/capture", "/track", "/engage")


class SdkMissingError(RuntimeError):
    """posthog-js has not been built into the package (run scripts/build_webapp.sh)."""


class WebAppConfig(BaseModel):
    """How the pages start posthog-js: project key, API host (empty: this app), recordings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    posthog_key: str = Field(
        default_factory=lambda: os.environ.get("HOGFLIX_WEB_POSTHOG_KEY", LOCAL_PROJECT_KEY),
        description="Project API key the pages give posthog-js ($HOGFLIX_WEB_POSTHOG_KEY).",
    )
    posthog_host: str = Field(
        default_factory=lambda: os.environ.get("HOGFLIX_WEB_POSTHOG_HOST", ""),
        description="API host of posthog-js ($HOGFLIX_WEB_POSTHOG_HOST); empty: this app's own endpoint.",
    )
    session_recording: bool = Field(
        default_factory=lambda: os.environ.get("HOGFLIX_WEB_RECORDINGS", "").lower() in ("1", "true", "yes"),
        description="Let posthog-js record sessions to /s/ ($HOGFLIX_WEB_RECORDINGS).",
    )
    catalog_size: int = Field(default=240, gt=10)


def sdk_available() -> bool:
    """Return whether the built posthog-js bundle is in the package."""
    return SDK_PATH.exists() and SDK_PATH.stat().st_size > 10_000


def require_sdk() -> None:
    """Raise SdkMissingError with the fix when the bundle is missing."""
    if not sdk_available():
        raise SdkMissingError(
            f"posthog-js is not built into the web app ({SDK_PATH} is missing): run scripts/build_webapp.sh"
        )


def create_app(config: WebAppConfig | None = None, log: CaptureLog | None = None) -> Starlette:
    """Return the web app; captured events go to ``log`` (a fresh ``CaptureLog`` when None)."""
    config = config or WebAppConfig()
    log = log if log is not None else CaptureLog()
    size = config.catalog_size
    traffic = TrafficConfig()  # the player reports the same milestones as the server tier
    cat = catalog(size)
    by_slug = {row["slug"]: row for row in cat.to_dicts()}

    def prefix(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    def page_config(request: Request, page: str, video: dict | None = None) -> dict:
        origin = f"{request.url.scheme}://{request.url.netloc}"
        return {
            "key": config.posthog_key,
            "api_host": config.posthog_host or origin + prefix(request),
            "session_recording": config.session_recording,
            "page": page,
            "prefix": prefix(request),
            "video": None
            if video is None
            else {k: video[k] for k in ("video_id", "title", "genre", "minutes")},
            "progress_milestones": list(traffic.progress_milestones),
            "completed_at_percent": traffic.completed_at_percent,
        }

    def render(request: Request, page: str, title: str, body: str, active: str = "", video=None, status=200):  # noqa: ANN001, ANN202
        html = pages.layout(prefix(request), title, body, page_config(request, page, video), active)
        return HTMLResponse(html, status_code=status)

    async def home(request: Request) -> Response:
        return render(request, "home", "Home", pages.home(prefix(request), size), "home")

    async def browse(request: Request) -> Response:
        genre = request.path_params["genre"]
        if genre not in (*GENRES, "popular", "related"):
            return render(request, "not_found", "Not found", pages.not_found(prefix(request)), status=404)
        return render(
            request, "category", genre.title(), pages.browse(prefix(request), size, genre), "category"
        )

    async def search(request: Request) -> Response:
        query = request.query_params.get("q", "")
        return render(request, "search", "Search", pages.search(prefix(request), size, query), "search")

    async def title(request: Request) -> Response:
        video = by_slug.get(request.path_params["slug"])
        if video is None:
            return render(request, "not_found", "Not found", pages.not_found(prefix(request)), status=404)
        return render(
            request, "title", video["title"], pages.title(prefix(request), video, size), video=video
        )

    async def watch(request: Request) -> Response:
        video = by_slug.get(request.path_params["slug"])
        if video is None:
            return render(request, "not_found", "Not found", pages.not_found(prefix(request)), status=404)
        return render(request, "watch", video["title"], pages.watch(prefix(request), video), video=video)

    async def watchlist(request: Request) -> Response:
        return render(request, "watchlist", "My List", pages.watchlist(prefix(request), size), "watchlist")

    async def flixbuddy(request: Request) -> Response:
        return render(request, "flixbuddy", "FlixBuddy", pages.flixbuddy(prefix(request)), "flixbuddy")

    async def help_page(request: Request) -> Response:
        return render(request, "help", "Help", pages.help_page())

    async def signup(request: Request) -> Response:
        return render(request, "signup", "Sign up", pages.signup())

    async def ask_flixbuddy(request: Request) -> Response:
        try:
            payload = await request.json()
        except ValueError:
            payload = {}
        question = str(payload.get("question", ""))[:500]
        template = FLIXBUDDY_QUESTIONS.index(question) if question in FLIXBUDDY_QUESTIONS else 7
        conversation = str(uuid.uuid4())
        return JSONResponse(
            {
                "conversation_id": conversation,
                "question_template": template,
                "reply": deterministic_reply(template, conversation, size),
            }
        )

    async def capture(request: Request) -> Response:
        body = await request.body()
        try:
            events = decode_capture(body, request.headers.get("content-type", ""), request.url.query)
        except (CaptureDecodeError, OSError, EOFError) as exc:
            log.reject()
            return JSONResponse({"status": 400, "code": "invalid_payload", "error": str(exc)}, 400)
        log.add(events)
        return JSONResponse({"status": 1})

    async def recording(request: Request) -> Response:
        await request.body()
        log.add_recording()
        return JSONResponse({"status": 1})

    async def flags(request: Request) -> Response:
        # The SDK asks for flags and its remote configuration; this app has neither to give.
        return JSONResponse(
            {
                "featureFlags": {},
                "featureFlagPayloads": {},
                "flags": {},
                "errorsWhileComputingFlags": False,
                "quotaLimited": [],
                "requestId": str(uuid.uuid4()),
                **_remote_config(config),
            }
        )

    async def remote_config(request: Request) -> Response:
        return JSONResponse({"token": request.path_params["token"], **_remote_config(config)})

    async def remote_config_js(request: Request) -> Response:
        return Response("", media_type="application/javascript")

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "sdk": sdk_available(), "events": len(log.events)})

    capture_routes = [
        Route(p + s, capture, methods=["GET", "POST"]) for p in CAPTURE_PATHS for s in ("", "/")
    ]
    routes = [
        Route("/", home),
        Route("/browse/{genre}", browse),
        Route("/search", search),
        Route("/title/{slug}", title),
        Route("/watch/{slug}", watch),
        Route("/watchlist", watchlist),
        Route("/flixbuddy", flixbuddy),
        Route("/help", help_page),
        Route("/signup", signup),
        Route("/api/flixbuddy", ask_flixbuddy, methods=["POST"]),
        Route("/healthz", health),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        *capture_routes,
        Route("/s", recording, methods=["GET", "POST"]),
        Route("/s/", recording, methods=["GET", "POST"]),
        Route("/flags", flags, methods=["GET", "POST"]),
        Route("/flags/", flags, methods=["GET", "POST"]),
        Route("/decide", flags, methods=["GET", "POST"]),
        Route("/decide/", flags, methods=["GET", "POST"]),
        Route("/array/{token}/config", remote_config),
        Route("/array/{token}/config.js", remote_config_js),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.capture_log = log
    app.state.config = config
    return app


def _remote_config(config: WebAppConfig) -> dict:
    return {
        "supportedCompression": ["gzip", "gzip-js"],
        "autocapture_opt_out": False,
        "autocaptureExceptions": False,
        "capturePerformance": False,
        "elementsChainAsString": True,
        "sessionRecording": {"endpoint": "/s/"} if config.session_recording else False,
        "heatmaps": False,
        "surveys": False,
        "siteApps": [],
        "hasFeatureFlags": False,
        "defaultIdentifiedOnly": True,
    }
