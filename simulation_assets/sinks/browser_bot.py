"""The browser bot: personas play their planned sessions in headless Chromium (Playwright).

One Chromium process (Debian's ``/usr/bin/chromium``; Playwright never downloads
a browser here) runs a bounded pool of browser contexts, one per persona. A
context starts from the persona's saved storage state (cookies and
localStorage, JSON files under ``state_dir``) and saves it again when the
session ends, so the SDK on the site sees a returning browser: same distinct
id, same ``$device_id``, a new session when the previous one went idle.

The page clock is Playwright's fake clock set to the session's start in the
model, so events carry the model's timestamps and land in its half-hour
window; between steps the bot waits a compressed real time (``dwell_scale``
real seconds per simulated second) and jumps the clock to the next step.
Each persona's browser carries the synthetic marker: the ``hogflix_persona``
cookie (distinct id, traits, the model's session id), which the site's page
script registers as super properties (``is_synthetic`` ...).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dagster as dg
from pydantic import Field

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Without it navigator.webdriver is true and posthog-js drops every event as a bot's.
    "--disable-blink-features=AutomationControlled",
)
CAPTURE_PATH = re.compile(r"/(e|i/v0/e|batch|capture|track|engage)/?$")
PERSONA_COOKIE = "hogflix_persona"
# The page script (and posthog-js before it) run before DOMContentLoaded; "load" adds nothing to wait for.
READY = "domcontentloaded"
PLAYER_TICK_MS = 1_100  # the watch page's player checks its position every second

# (device_type, os, browser) of the session model -> user agent the persona's browser presents.
USER_AGENTS = {
    ("Desktop", "Windows", "Chrome"): "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ("Desktop", "Mac OS X", "Safari"): "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    ("Desktop", "Mac OS X", "Chrome"): "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ("Desktop", "Linux", "Firefox"): "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    ("Mobile", "iOS", "Mobile Safari"): "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) "
    "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    ("Mobile", "Android", "Chrome"): "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    ("Tablet", "iOS", "Mobile Safari"): "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    ("Tablet", "Android", "Chrome"): "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
}
TIMEZONES = {"US": ("America/New_York", "en-US"), "GB": ("Europe/London", "en-GB"),
             "DE": ("Europe/Berlin", "de-DE"), "FR": ("Europe/Paris", "fr-FR"), "CA": ("America/Toronto", "en-CA"),
             "NL": ("Europe/Amsterdam", "nl-NL"), "ES": ("Europe/Madrid", "es-ES"),
             "AU": ("Australia/Sydney", "en-AU")}  # fmt: skip


_PIN_USER_AGENT = "(() => { const ua = %s; Object.defineProperty(Navigator.prototype, 'userAgent', { get() { return ua; } }); })()"


class StepError(RuntimeError):
    """A planned step could not be carried out (names the step, the page and the cause)."""


class BrowserUnavailableError(RuntimeError):
    """Chromium or Playwright cannot be started (names the path and the fix)."""


@dataclass
class SessionResult:
    """What one browser session did."""

    session_id: str
    distinct_id: str
    ok: bool = False
    error: str = ""
    steps: int = 0
    pages: int = 0
    capture_requests: int = 0
    capture_ok: int = 0
    sdk_distinct_id: str = ""
    sdk_device_id: str = ""
    previous_device_id: str = ""
    returning: bool = False
    real_seconds: float = 0.0
    screenshot: str = ""


@dataclass
class BrowserRunReport:
    """All sessions of one run, in the order they finished."""

    sessions: list[SessionResult] = field(default_factory=list)
    seconds: float = 0.0
    max_concurrent: int = 0
    recording_requests: int = 0  # session-recording requests the reference app received

    def rows(self) -> list[dict]:
        return [asdict(s) for s in self.sessions]


@dataclass
class BrowserSession:
    """One planned session: persona traits (session-model columns) and its steps."""

    persona: dict
    steps: list[dict]


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:120]


class BrowserBot(dg.ConfigurableResource):
    """Plays planned sessions in headless Chromium with persisted per-persona storage state."""

    chromium_path: str = Field(
        default="/usr/bin/chromium", description="Chromium executable (Debian's package; never downloaded)."
    )
    concurrency: int = Field(default=3, gt=0, description="Browser contexts open at once (the pool).")
    dwell_scale: float = Field(
        default=0.0005, ge=0.0, description="Real seconds waited per simulated second between steps."
    )
    min_step_seconds: float = Field(default=0.02, ge=0.0)
    max_step_seconds: float = Field(default=0.3, ge=0.0)
    step_timeout_seconds: float = Field(
        default=15.0,
        gt=0.0,
        description="Longest wait for a page to load, a navigation, an answer (FlixBuddy) or a screenshot.",
    )
    element_timeout_seconds: float = Field(
        default=10.0,
        gt=0.0,
        description="Longest wait for the element a step acts on (a button, a field) on a loaded page: the "
        "pages are rendered by the server, so a missing one is a plan or page fault, not a slow machine.",
    )
    fake_clock: bool = Field(
        default=True,
        description="Replay at the model's times (Playwright clock); False: the real clock "
        "(with dwell_scale=1 for real-time dwell, e.g. against a live site).",
    )
    settle_seconds: float = Field(default=0.6, ge=0.0, description="Wait for the last requests of a session.")

    def validate_config(self) -> None:
        """Raise BrowserUnavailableError when Chromium is not where configured."""
        if not Path(self.chromium_path).exists():
            raise BrowserUnavailableError(
                f"Chromium not found at {self.chromium_path}; install Debian's chromium "
                "(scripts/install_system_deps.sh) or set chromium_path"
            )

    def run(
        self, site_url: str, sessions: list[BrowserSession], state_dir: Path, screenshot_dir: Path
    ) -> BrowserRunReport:
        """Play ``sessions`` against ``site_url``; personas in parallel (pool), each persona's in order."""
        self.validate_config()
        state_dir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(self._run(site_url.rstrip("/"), sessions, state_dir, screenshot_dir))

    async def _run(self, site: str, sessions: list[BrowserSession], state_dir: Path, shots: Path):  # noqa: ANN202
        from playwright.async_api import async_playwright

        report = BrowserRunReport()
        started = time.perf_counter()
        by_persona: dict[str, list[BrowserSession]] = {}
        for s in sorted(sessions, key=lambda s: s.persona["session_start_at"]):
            by_persona.setdefault(s.persona["distinct_id"], []).append(s)
        pool = asyncio.Semaphore(self.concurrency)
        active = [0]

        async with async_playwright() as p:
            try:
                browser = await p.chromium.launch(
                    executable_path=self.chromium_path, args=list(CHROMIUM_ARGS), headless=True
                )
            except Exception as exc:  # noqa: BLE001
                raise BrowserUnavailableError(f"could not start {self.chromium_path}: {exc}") from exc

            async def persona_sessions(items: list[BrowserSession]) -> None:
                for item in items:
                    async with pool:
                        active[0] += 1
                        report.max_concurrent = max(report.max_concurrent, active[0])
                        try:
                            result = await self._session(browser, site, item, state_dir, shots)
                        finally:
                            active[0] -= 1
                    report.sessions.append(result)

            try:
                await asyncio.gather(*(persona_sessions(v) for v in by_persona.values()))
            finally:
                await browser.close()
        report.seconds = time.perf_counter() - started
        return report

    async def _session(self, browser, site: str, item: BrowserSession, state_dir: Path, shots: Path):  # noqa: ANN001, ANN202
        persona = item.persona
        result = SessionResult(session_id=persona["session_id"], distinct_id=persona["distinct_id"])
        state_file = state_dir / f"{_safe(persona['distinct_id'])}.json"
        meta_file = state_dir / f"{_safe(persona['distinct_id'])}.meta.json"
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        result.previous_device_id = meta.get("device_id", "")
        result.returning = state_file.exists()
        began = time.perf_counter()
        options = self._context_options(persona, state_file)
        context = await browser.new_context(**options)
        # page loads and navigations may wait out a busy machine; clicks and fills fail at their own limit
        context.set_default_navigation_timeout(self.step_timeout_seconds * 1000)
        context.set_default_timeout(self.element_timeout_seconds * 1000)
        # While a page unloads Chromium reports its built-in (headless) user agent to the old
        # document, and posthog-js would drop that page's $pageleave as a bot's: pin the persona's.
        await context.add_init_script(_PIN_USER_AGENT % json.dumps(options["user_agent"]))
        pending: dict[object, bool] = {}

        def on_request(request) -> None:  # noqa: ANN001
            if request.method in ("POST", "GET") and CAPTURE_PATH.search(
                urllib.parse.urlsplit(request.url).path
            ):
                result.capture_requests += 1
                pending[request] = True

        def on_response(response) -> None:  # noqa: ANN001
            if pending.pop(response.request, False) and 200 <= response.status < 300:
                result.capture_ok += 1

        def on_failed(request) -> None:  # noqa: ANN001
            pending.pop(request, None)

        context.on("request", on_request)
        context.on("response", on_response)
        context.on("requestfailed", on_failed)
        page = None
        try:
            await context.add_cookies([self._marker_cookie(site, persona)])
            start = persona["session_start_at"]
            if self.fake_clock:
                await context.clock.install(time=start)
            page = await context.new_page()
            await self._play(context, page, site, item.steps, start, result)
            result.sdk_distinct_id, result.sdk_device_id = await page.evaluate(
                "() => window.posthog ? [posthog.get_distinct_id() || '', "
                "posthog.get_property('$device_id') || ''] : ['', '']"
            )
            await context.storage_state(path=str(state_file))
            # Leaving the site makes the SDK send $pageleave and flush its queue.
            await page.goto("about:blank")
            await asyncio.sleep(self.settle_seconds)
            # Then wait for the capture requests still in flight (a loaded machine answers late),
            # at most one step timeout: closing the context would drop them.
            waited = 0.0
            while pending and waited < self.step_timeout_seconds:
                await asyncio.sleep(0.05)
                waited += 0.05
            result.ok = True
        except Exception as exc:  # noqa: BLE001
            result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:400]}"
            if page is not None:
                shots.mkdir(parents=True, exist_ok=True)
                shot = shots / f"{_safe(persona['session_id'])}.png"
                try:
                    await page.screenshot(
                        path=str(shot), full_page=True, timeout=self.step_timeout_seconds * 1000
                    )
                    result.screenshot = str(shot)
                except Exception:  # noqa: BLE001
                    pass
        finally:
            await context.close()
        if result.ok and result.sdk_device_id:
            meta = {"device_id": meta.get("device_id") or result.sdk_device_id,
                    "sessions": int(meta.get("sessions", 0)) + 1, "last_session": persona["session_id"]}  # fmt: skip
            meta_file.write_text(json.dumps(meta))
        result.real_seconds = round(time.perf_counter() - began, 3)
        return result

    def _context_options(self, persona: dict, state_file: Path) -> dict:
        key = (persona.get("device_type"), persona.get("os"), persona.get("browser"))
        ua = USER_AGENTS.get(key, USER_AGENTS[("Desktop", "Windows", "Chrome")])
        width, height = int(persona.get("screen_width") or 1440), int(persona.get("screen_height") or 900)
        mobile = persona.get("device_type") in ("Mobile", "Tablet")
        tz, locale = TIMEZONES.get(persona.get("country") or "US", TIMEZONES["US"])
        options = {
            "user_agent": ua,
            "viewport": {
                "width": min(width, 1440),
                "height": max(480, min(height, 1000) - (0 if mobile else 120)),
            },
            "screen": {"width": width, "height": height},
            "is_mobile": mobile and persona.get("browser") != "Firefox",
            "has_touch": mobile,
            "timezone_id": tz,
            "locale": locale,
        }
        if state_file.exists():
            options["storage_state"] = str(state_file)
        return options

    @staticmethod
    def _marker_cookie(site: str, persona: dict) -> dict:
        marker = {
            "distinct_id": persona["distinct_id"],
            "session": persona["session_id"],
            "plan": persona.get("plan"),
            "state": persona.get("state"),
            "activity_pattern": persona.get("activity_pattern"),
            "entry_point": persona.get("entry_point"),
            "source": persona.get("source"),
            "anonymous": bool(persona.get("is_signup")),
        }
        value = urllib.parse.quote(json.dumps(marker, separators=(",", ":")), safe="")
        return {"name": PERSONA_COOKIE, "value": value, "url": site + "/"}

    async def _play(self, context, page, site: str, steps: list[dict], start: dt.datetime, result) -> None:  # noqa: ANN001
        start_ms = int(start.timestamp() * 1000)
        previous_ms = 0
        for step in steps:
            dwell_s = max(0, int(step["at_ms"]) - previous_ms) / 1000
            previous_ms = max(previous_ms, int(step["at_ms"]))
            await asyncio.sleep(
                _clamp(dwell_s * self.dwell_scale, self.min_step_seconds, self.max_step_seconds)
            )
            if self.fake_clock and page.url != "about:blank":
                # Jump the page clock to the step's time in the model (it ran on by the real wait).
                target = start_ms + int(step["at_ms"])
                now = await page.evaluate("Date.now()")
                if target > now:
                    await context.clock.fast_forward(int(target - now))
            try:
                await self._act(page, site, step, result)
            except Exception as exc:
                where = f"step {result.steps} {step['action']} {step.get('path') or ''}".rstrip()
                raise StepError(
                    f"{where} on {page.url}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
                ) from exc
            result.steps += 1

    async def _act(self, page, site: str, step: dict, result) -> None:  # noqa: ANN001
        action, path = step["action"], step.get("path") or "/"
        if action == "visit":
            await self._visit(page, site, path)
            result.pages += 1
        elif action == "play":
            await page.click("#play-button")
        elif action in ("tick", "stop"):
            # Play was pressed a moment after its model time: run one more player tick (1 s) so the
            # milestone (or the end of watching) the model reached at this time is passed.
            if self.fake_clock:
                await page.context.clock.fast_forward(PLAYER_TICK_MS)
            if action == "stop":
                await page.click("#stop-button")
            else:
                await page.wait_for_timeout(20)
        elif action == "rate":
            stars = int(_clamp(round(step.get("value") or 3), 1, 5))
            await page.click(f"#star-{stars}")
        elif action == "watchlist":
            await page.click("#watchlist-button")
        elif action == "ask":
            await page.fill("#chat-input", step.get("text") or "What should I watch tonight?")
            await page.click("#chat-send")
            await page.wait_for_selector("body[data-chat-answered]", timeout=self.step_timeout_seconds * 1000)
            await page.evaluate("document.body.removeAttribute('data-chat-answered')")
        elif action == "ticket":
            category = step.get("text") or "playback"
            await page.select_option("#ticket-category", category)
            await page.click("#ticket-send")
        elif action == "signup":
            await page.fill("#signup-email", "persona@hogflix-synthetic.test")
            await page.click("#signup-send")

    async def _visit(self, page, site: str, path: str) -> None:  # noqa: ANN001
        """Go to ``path`` the way a person would: click a link or search when the page offers one."""
        prefix = urllib.parse.urlsplit(site).path.rstrip("/")
        parts = urllib.parse.urlsplit(path)
        href = prefix + parts.path
        if page.url != "about:blank":
            if parts.path == "/search" and parts.query and await page.locator("#search-input").count():
                query = urllib.parse.parse_qs(parts.query).get("q", [""])[0]
                await page.fill("#search-input", query)
                async with page.expect_navigation(wait_until=READY):
                    await page.click("#search-button")
                return
            link = page.locator(f'a[href="{href}"]:visible')
            if not parts.query and await link.count():
                try:
                    async with page.expect_navigation(
                        wait_until=READY, timeout=self.step_timeout_seconds * 1000
                    ):
                        await link.first.click(timeout=3000)
                    return
                except Exception:  # noqa: BLE001 - a covered or moving link: go there directly
                    if urllib.parse.urlsplit(page.url).path == href:
                        return
        await page.goto(site + path, wait_until=READY)
