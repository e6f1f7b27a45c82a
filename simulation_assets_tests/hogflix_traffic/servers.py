"""Loopback HTTP servers the traffic tests talk to: PostHog /batch/, FlixBuddy, Supabase auth admin."""

from __future__ import annotations

import gzip
import json
import random
import re
import threading
import time
import uuid

from simulation_assets_tests.loopback import JsonHandler, LoopbackServer

_Server, _Handler = LoopbackServer, JsonHandler  # the shared loopback server and JSON handler

# --------------------------------------------------------------------------- PostHog


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class PostHogServer(_Server):
    """Speaks PostHog's /batch/: validates what capture would reject, fails ``failure_rate`` with 429/503."""

    def __init__(self, failure_rate: float = 0.0, seed: int = 7, always_fail: int | None = None) -> None:
        self.failure_rate = failure_rate
        self.always_fail = always_fail
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.accepted: list[dict] = []
        self.requests = 0
        self.failures_injected = 0
        self.gzip_requests = 0
        self.historical_flags: list[bool] = []
        self.problems: list[str] = []
        self.handler_cls = _PostHogHandler


class _PostHogHandler(_Handler):
    def do_POST(self) -> None:  # noqa: N802
        owner: PostHogServer = self.server.owner  # type: ignore[attr-defined]
        raw = self._body()
        with owner.lock:
            owner.requests += 1
            if owner.always_fail:
                self._reply(owner.always_fail, {"status": owner.always_fail, "error": "forced"})
                return
            if owner.rng.random() < owner.failure_rate:
                owner.failures_injected += 1
                status = owner.rng.choice((429, 503))
                self._reply(status, {"status": status, "error": "injected"}, {"Retry-After": "0"})
                return
        if self.path not in ("/batch/", "/batch"):
            self._reply(404, {"error": "not found"})
            return
        if raw[:3] == b"\x1f\x8b\x08":  # capture sniffs the gzip magic bytes
            raw = gzip.decompress(raw)
            gz = True
        else:
            gz = False
        try:
            body = json.loads(raw)
        except ValueError:
            self._reply(400, {"error": "invalid json"})
            return
        problems = []
        if not isinstance(body, dict) or not body.get("api_key") or not isinstance(body.get("batch"), list):
            problems.append("body must be {api_key, batch: [...]}")
        for ev in body.get("batch", []) if isinstance(body, dict) else []:
            if not ev.get("event") or not ev.get("distinct_id"):
                problems.append("missing event or distinct_id")
            if not _UUID.match(str(ev.get("uuid", ""))):
                problems.append(f"bad uuid {ev.get('uuid')!r}")
            if not _ISO.match(str(ev.get("timestamp", ""))):
                problems.append(f"bad timestamp {ev.get('timestamp')!r}")
            sid = ev.get("properties", {}).get("$session_id")
            if sid is None or uuid.UUID(sid).version != 7:
                problems.append("$session_id must be a UUIDv7")
        if problems:
            with owner.lock:
                owner.problems += problems
            self._reply(400, {"status": 400, "error": problems[0]})
            return
        with owner.lock:
            owner.accepted += body["batch"]
            owner.gzip_requests += gz
            owner.historical_flags.append(bool(body.get("historical_migration")))
        self._reply(200, {"status": 1})


# --------------------------------------------------------------------------- FlixBuddy


class FlixBuddyServer(_Server):
    """A chat endpoint that records arrival times and answers 429 to the first ``reject_first`` calls."""

    def __init__(self, reject_first: int = 0) -> None:
        self.reject_first = reject_first
        self.arrivals: list[float] = []
        self.bodies: list[dict] = []  # every request's JSON body, in arrival order
        self.lock = threading.Lock()
        self.handler_cls = _FlixBuddyHandler


class _FlixBuddyHandler(_Handler):
    def do_POST(self) -> None:  # noqa: N802
        owner: FlixBuddyServer = self.server.owner  # type: ignore[attr-defined]
        body = json.loads(self._body())
        with owner.lock:
            owner.arrivals.append(time.monotonic())
            owner.bodies.append(body)
            n = len(owner.arrivals)
        if n <= owner.reject_first:
            self._reply(429, {"error": "slow down"})
            return
        question = body["messages"][-1]["content"]
        self._reply(200, {"reply": f"You asked: {question} Try 'Midnight Harbor'."})


# --------------------------------------------------------------------------- Supabase auth admin


class SupabaseAuthServer(_Server):
    """/auth/v1/admin/users: create (POST), read (GET /{id}), delete (DELETE /{id}), list (GET)."""

    def __init__(self, fail_every: int = 0) -> None:
        self.users: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.calls = 0
        self.fail_every = fail_every
        self.deleted: list[str] = []
        self.handler_cls = _AuthHandler

    def plant(self, user_id: str, email: str, metadata: dict | None = None) -> None:
        self.users[user_id] = _user(user_id, email, metadata or {})


def _user(user_id: str, email: str, metadata: dict) -> dict:
    return {
        "id": user_id,
        "aud": "authenticated",
        "role": "authenticated",
        "email": email,
        "app_metadata": {"provider": "email"},
        "user_metadata": metadata,
        "created_at": "2026-01-01T00:00:00Z",
    }


class _AuthHandler(_Handler):
    def _injected(self) -> bool:
        owner: SupabaseAuthServer = self.server.owner  # type: ignore[attr-defined]
        with owner.lock:
            owner.calls += 1
            fail = owner.fail_every and owner.calls % owner.fail_every == 0
        if fail:
            self._reply(503, {"message": "injected"})
        return bool(fail)

    def _authorized(self) -> bool:
        if not self.headers.get("apikey") or not self.headers.get("Authorization", "").startswith("Bearer "):
            self._reply(401, {"message": "no api key"})
            return False
        return True

    def do_POST(self) -> None:  # noqa: N802
        owner: SupabaseAuthServer = self.server.owner  # type: ignore[attr-defined]
        if not self._authorized() or self._injected():
            return
        body = json.loads(self._body())
        with owner.lock:
            if body["id"] in owner.users:
                self._reply(422, {"code": 422, "error_code": "email_exists", "msg": "already registered"})
                return
            owner.users[body["id"]] = _user(body["id"], body["email"], body.get("user_metadata") or {})
            user = owner.users[body["id"]]
        self._reply(200, user)

    def do_GET(self) -> None:  # noqa: N802
        owner: SupabaseAuthServer = self.server.owner  # type: ignore[attr-defined]
        if not self._authorized() or self._injected():
            return
        path = self.path.split("?")[0]
        if path.rstrip("/") == "/auth/v1/admin/users":
            with owner.lock:
                users = list(owner.users.values())
            self._reply(200, {"users": users, "aud": "authenticated"})
            return
        uid = path.rsplit("/", 1)[-1]
        with owner.lock:
            user = owner.users.get(uid)
        if user is None:
            self._reply(404, {"code": 404, "error_code": "user_not_found", "msg": "User not found"})
        else:
            self._reply(200, user)

    def do_DELETE(self) -> None:  # noqa: N802
        owner: SupabaseAuthServer = self.server.owner  # type: ignore[attr-defined]
        if not self._authorized() or self._injected():
            return
        uid = self.path.split("?")[0].rsplit("/", 1)[-1]
        with owner.lock:
            existed = owner.users.pop(uid, None)
            if existed:
                owner.deleted.append(uid)
        if existed is None:
            self._reply(404, {"code": 404, "error_code": "user_not_found", "msg": "User not found"})
        else:
            self._reply(200, {})
