"""In-memory state of the reference PropIQ API: users, sessions, per-user simulated clocks, buckets.

Each user has their own simulated clock (real minutes since start plus an offset moved by
``POST /sim/clock``), so one persona jumping an hour ahead never expires another's token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from simulation_assets.core.power_users.target_rules import TargetRules


# The API's tokens are JSON Web Tokens signed with HMAC-SHA256 (what PyJWT's ``encode(claims, secret,
# algorithm="HS256")`` writes, byte for byte), made here with the standard library: PyJWT imports the
# cryptography package (~50 modules, ~0.03 s of every power-user run) for algorithms this API never uses.
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_HEADER = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())


def _signature(signed: str, secret: str) -> bytes:
    return hmac.new(secret.encode(), signed.encode("ascii"), hashlib.sha256).digest()


def sign_token(claims: dict[str, Any], secret: str) -> str:
    """Return ``claims`` as a JWT signed with HS256 under ``secret``."""
    signed = f"{_HEADER}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    return f"{signed}.{_b64(_signature(signed, secret))}"


def verify_token(token: str, secret: str) -> dict[str, Any] | None:
    """Return the claims of an HS256 JWT signed under ``secret``, or None (bad signature, algorithm or form)."""
    try:
        header, payload, signature = token.split(".")
        if json.loads(_unb64(header)).get("alg") != "HS256":
            return None
        if not hmac.compare_digest(_signature(f"{header}.{payload}", secret), _unb64(signature)):
            return None
        claims = json.loads(_unb64(payload))
    except (ValueError, TypeError, AttributeError):  # not three parts, not base64, not JSON, not an object
        return None
    return claims if isinstance(claims, dict) else None


@dataclass
class Session:
    """A login: who, from where, when it started and when it was last used (simulated minutes)."""

    sid: str
    email: str
    ip: str
    started: float
    last_activity: float
    active: bool = True
    chat_messages: int = 0


@dataclass
class User:
    """An account of the reference API."""

    email: str
    user_id: str
    password: str
    tier: str
    clock_offset: float = 0.0
    usage: dict[int, int] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    failed_payment: bool = False
    fault_counts: dict[str, int] = field(default_factory=dict)
    bucket_tokens: float = 0.0
    bucket_at: float = 0.0
    bucket_on_client_clock: bool = False  # bucket_at is the client's clock (seconds), not monotonic


class TargetState:
    """Everything the reference API remembers, plus the token codec."""

    def __init__(self, rules: TargetRules) -> None:
        self.rules = rules
        self.users: dict[str, User] = {}
        self.sessions: dict[str, Session] = {}
        self.processed_events: set[str] = set()
        self.checkouts: dict[str, str] = {}
        self._secret = secrets.token_hex(32)
        self._started = time.monotonic()
        self._ids = itertools.count(1)

    def next_id(self, prefix: str) -> str:
        """Return a unique id such as ``cs_test_000042``."""
        return f"{prefix}{next(self._ids):06d}"

    def now(self, user: User) -> float:
        """Return the user's simulated time in minutes."""
        return (time.monotonic() - self._started) * self.rules.clock_speed / 60.0 + user.clock_offset

    def period(self, user: User) -> int:
        """Return the index of the user's current usage month."""
        return int(self.now(user) // self.rules.usage_period_minutes)

    def used(self, user: User) -> int:
        """Return the analyses used this month."""
        return user.usage.get(self.period(user), 0)

    def add_user(self, email: str, user_id: str, password: str, tier: str) -> User:
        """Create (or replace) a user with a fresh clock, usage and history; end their sessions."""
        self.drop_user(email)
        user = User(email=email, user_id=user_id, password=password, tier=tier)
        user.bucket_tokens = float(self.rules.rate_limit_burst)
        user.bucket_at = time.monotonic()
        user.bucket_on_client_clock = False
        self.users[email] = user
        return user

    def drop_user(self, email: str) -> None:
        """Remove a user and their sessions."""
        self.users.pop(email, None)
        for sid in [s.sid for s in self.sessions.values() if s.email == email]:
            del self.sessions[sid]

    def open_session(self, user: User, ip: str) -> Session:
        """Start a session for ``user`` from ``ip``."""
        now = self.now(user)
        session = Session(sid=self.next_id("sess_"), email=user.email, ip=ip, started=now, last_activity=now)
        self.sessions[session.sid] = session
        return session

    def active_sessions(self, user: User) -> list[Session]:
        """Return the user's sessions not logged out and not idle past the timeout."""
        now = self.now(user)
        return [
            s
            for s in self.sessions.values()
            if s.email == user.email
            and s.active
            and now - s.last_activity <= self.rules.session_timeout_minutes
        ]

    def issue(self, user: User, session: Session, kind: str = "access") -> str:
        """Return a signed token; its times are the user's simulated minutes."""
        now = self.now(user)
        minutes = self.rules.token_minutes if kind == "access" else self.rules.refresh_token_minutes
        claims = {
            "sub": user.email,
            "sid": session.sid,
            "typ": kind,
            "iat_min": now,
            "exp_min": now + minutes,
        }
        return sign_token(claims, self._secret)

    def decode(self, token: str) -> dict[str, Any] | None:
        """Return the claims of a token this server signed, or None."""
        return verify_token(token, self._secret)

    def take_rate_token(self, user: User, client_clock: float | None = None) -> bool:
        """Return whether the user's token bucket allows one more request (and take it).

        The bucket refills with the time between requests: by default the server's own monotonic
        clock; when the client states when it sends (``client_clock``, seconds on its simulated
        clock, from the ``X-Simulation-Clock`` header) that clock instead, so requests the client
        sends at one simulated instant (a burst) use up the bucket however slowly a loaded machine
        delivers them, and requests it paces apart find it refilled. A clock that goes back (a
        concurrent request stamped earlier) refills nothing. Switching clocks starts a full bucket.
        """
        on_client = client_clock is not None
        now = client_clock if client_clock is not None else time.monotonic()
        if on_client != user.bucket_on_client_clock:
            user.bucket_tokens = float(self.rules.rate_limit_burst)
            user.bucket_at, user.bucket_on_client_clock = now, on_client
        refill = max(0.0, now - user.bucket_at) * self.rules.rate_limit_per_second
        user.bucket_tokens = min(float(self.rules.rate_limit_burst), user.bucket_tokens + refill)
        user.bucket_at = max(now, user.bucket_at)
        if user.bucket_tokens >= 1.0:
            user.bucket_tokens -= 1.0
            return True
        return False
