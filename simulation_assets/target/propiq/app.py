"""HTTP routes of the reference PropIQ-like API (Starlette).

Public API: ``/health``, ``/auth/{signup,login,refresh,logout}``, ``/api/v1/{account,propiq/analyze,
calculator,export,history,support/chat,pricing,stripe/create-checkout-session,stripe/webhook,
subscription/downgrade}``. Simulation hooks (advertised by ``/health``): ``/sim/users/reset``,
``/sim/clock``, ``/sim/usage``. Fault injection on any ``/api/v1`` call through headers:
``X-Sim-Fault: openai_unavailable|db_timeout|server_error``, ``X-Sim-Fault-Times: N`` (fail the
first N calls, then recover), ``X-Sim-Delay-Ms`` (how long a db_timeout stalls). A request with
``X-Simulation-Clock: <Unix seconds>`` is rate-limited on that clock rather than the server's.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulation_assets.core.power_users.config import SIMULATED_EMAIL_DOMAIN, SIMULATION_CLOCK_HEADER
from simulation_assets.core.power_users.safety import LIVE_KEY_PREFIXES, STRIPE_KEY_VARIABLES
from simulation_assets.core.power_users.target_rules import (
    TargetRules,
    ValidationProblem,
    analyse,
    calculate,
    session_class,
    usage_warning,
)
from simulation_assets.target.propiq.state import Session, TargetState, User

# Stripe's test-mode payment methods (https://docs.stripe.com/testing).
DECLINED_INSUFFICIENT_FUNDS = "pm_card_chargeDeclinedInsufficientFunds"
DECLINED_GENERIC = "pm_card_chargeDeclined"


def _error(status: int, code: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, **extra}, status_code=status)


def _seconds(text: str | None) -> float | None:
    """Return ``text`` as a finite number of seconds, or None (absent, or not a finite number)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValidationProblem("invalid_json", "body", "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationProblem("invalid_json", "body", "request body must be a JSON object")
    return data


def _client_ip(request: Request) -> str:
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"


Handler = Callable[[Request, TargetState, User, Session], Awaitable[Response]]


def create_app(rules: TargetRules | None = None) -> Starlette:
    """Return the reference API as a Starlette app with fresh in-memory state."""
    for name in STRIPE_KEY_VARIABLES:
        if (os.environ.get(name) or "").startswith(LIVE_KEY_PREFIXES):
            raise RuntimeError(f"refusing to start the reference target: ${name} holds a live Stripe key")
    state = TargetState(rules or TargetRules())
    r = state.rules

    def authed(handler: Handler, api: bool = True) -> Callable[[Request], Awaitable[Response]]:
        """Wrap ``handler``: bearer token, expiry and idle checks, rate limit and injected faults."""

        async def endpoint(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            claims = state.decode(header[7:]) if header.lower().startswith("bearer ") else None
            if not claims or claims.get("typ") != "access":
                return _error(401, "not_authenticated", detail="send 'Authorization: Bearer <access_token>'")
            user = state.users.get(claims["sub"])
            session = state.sessions.get(claims["sid"])
            if user is None or session is None or not session.active:
                return _error(401, "session_ended", detail="log in again")
            now = state.now(user)
            if now > claims["exp_min"]:
                return _error(401, "token_expired", detail=f"access tokens last {r.token_minutes:g} minutes")
            if now - session.last_activity > r.session_timeout_minutes:
                session.active = False
                return _error(
                    401, "session_timeout", detail=f"idle for more than {r.session_timeout_minutes:g} minutes"
                )
            session.last_activity = now
            if api:
                stated = request.headers.get(SIMULATION_CLOCK_HEADER)
                client_clock = _seconds(stated)
                if stated is not None and client_clock is None:
                    detail = f"{SIMULATION_CLOCK_HEADER} must be Unix seconds, got {stated!r}"
                    return _error(400, "bad_simulation_clock", detail=detail)
                if not state.take_rate_token(user, client_clock):
                    return _error(429, "rate_limited", detail="too many requests", retry_after_s=1)
                fault = await _inject_fault(request, user)
                if fault is not None:
                    return fault
            try:
                return await handler(request, state, user, session)
            except ValidationProblem as problem:
                return JSONResponse(problem.body(), status_code=422)

        return endpoint

    async def _inject_fault(request: Request, user: User) -> Response | None:
        fault = request.headers.get("x-sim-fault")
        if not fault:
            return None
        times = int(request.headers.get("x-sim-fault-times", "0") or 0)
        if times > 0:
            seen = user.fault_counts.get(fault, 0)
            if seen >= times:
                user.fault_counts[fault] = 0
                return None
            user.fault_counts[fault] = seen + 1
        if fault == "openai_unavailable":
            return _error(503, "openai_unavailable", detail="the AI analysis service is unavailable")
        if fault == "db_timeout":
            delay = min(int(request.headers.get("x-sim-delay-ms", "2000") or 0), r.max_fault_delay_ms)
            await asyncio.sleep(delay / 1000)
            return _error(504, "database_timeout", detail=f"query took longer than {delay} ms")
        if fault == "server_error":
            return _error(500, "internal_error")
        return _error(400, "unknown_fault", detail=f"unknown X-Sim-Fault {fault!r}")

    def usage_body(user: User) -> dict[str, Any]:
        used, rule = state.used(user), r.tiers.rule(user.tier)
        return {
            "used": used,
            "limit": rule.analyses_per_month,
            "remaining": max(rule.analyses_per_month - used, 0),
            "warning": usage_warning(used, user.tier, r),
        }

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": "propiq-reference", "simulation_hooks": True})

    async def signup(request: Request) -> Response:
        body = await _json(request)
        email = str(body.get("email") or "").lower()
        if "@" not in email or not body.get("password"):
            return _error(422, "invalid_signup", field="email" if "@" not in email else "password")
        if email in state.users:
            return _error(409, "user_exists", detail="an account with this e-mail exists")
        user = state.add_user(
            email, str(body.get("user_id") or state.next_id("usr_")), body["password"], "free"
        )
        return JSONResponse(
            {"user_id": user.user_id, "tier": user.tier, "onboarding_email": "queued"}, status_code=201
        )

    async def login(request: Request) -> Response:
        body = await _json(request)
        email = str(body.get("email") or "").lower()
        user = state.users.get(email)
        if user is None and email.endswith("@" + SIMULATED_EMAIL_DOMAIN) and body.get("password"):
            user = state.add_user(email, state.next_id("usr_"), body["password"], "free")
        if user is None or body.get("password") != user.password:
            return _error(401, "invalid_credentials")
        session = state.open_session(user, _client_ip(request))
        active = state.active_sessions(user)
        return JSONResponse(
            {
                "access_token": state.issue(user, session),
                "refresh_token": state.issue(user, session, "refresh"),
                "token_type": "bearer",
                "expires_in": int(r.token_minutes * 60),
                "tier": user.tier,
                "active_sessions": len(active),
                "distinct_ips": len({s.ip for s in active}),
            }
        )

    async def refresh(request: Request) -> Response:
        claims = state.decode(str((await _json(request)).get("refresh_token") or ""))
        if not claims or claims.get("typ") != "refresh":
            return _error(401, "invalid_refresh_token")
        user, session = state.users.get(claims["sub"]), state.sessions.get(claims["sid"])
        if user is None or session is None or state.now(user) > claims["exp_min"]:
            return _error(401, "invalid_refresh_token")
        session.active, session.last_activity = True, state.now(user)
        return JSONResponse(
            {"access_token": state.issue(user, session), "expires_in": int(r.token_minutes * 60)}
        )

    async def logout(request: Request, state: TargetState, user: User, session: Session) -> Response:
        minutes = state.now(user) - session.started
        session.active = False
        return JSONResponse(
            {"session_minutes": round(minutes, 2), "session_class": session_class(minutes, r)}
        )

    async def account(request: Request, state: TargetState, user: User, session: Session) -> Response:
        return JSONResponse(
            {
                "user_id": user.user_id,
                "email": user.email,
                "tier": user.tier,
                "usage": usage_body(user),
                "session_minutes": round(state.now(user) - session.started, 2),
            }
        )

    async def analyze(request: Request, state: TargetState, user: User, session: Session) -> Response:
        body = await _json(request)
        hour = request.headers.get("x-sim-local-hour")
        result = analyse(body, r, int(hour) if hour and hour.isdigit() else None)
        rule = r.tiers.rule(user.tier)
        period = state.period(user)
        if user.usage.get(period, 0) >= rule.analyses_per_month:
            return _error(
                402,
                "usage_limit_reached",
                tier=user.tier,
                limit=rule.analyses_per_month,
                usage=usage_body(user),
            )
        user.usage[period] = user.usage.get(period, 0) + 1
        analysis_id = state.next_id("an_")
        user.history.append({"analysis_id": analysis_id, "address": result["address"]})
        return JSONResponse(
            {"analysis_id": analysis_id, "tier": user.tier, **result, "usage": usage_body(user)}
        )

    async def calculator(request: Request, state: TargetState, user: User, session: Session) -> Response:
        return JSONResponse(calculate(await _json(request), r))

    async def export(request: Request, state: TargetState, user: User, session: Session) -> Response:
        if not r.tiers.rule(user.tier).can_export:
            return _error(403, "export_requires_paid_tier", tier=user.tier)
        rows = (await _json(request)).get("properties", 1)
        if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= 1000:
            raise ValidationProblem("invalid_properties", "properties", "properties must be 1-1000")
        flags = ["large_export"] if rows >= r.large_export_rows else []
        return JSONResponse({"rows": rows, "size_bytes": rows * 180, "format": "csv", "flags": flags})

    async def history(request: Request, state: TargetState, user: User, session: Session) -> Response:
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            raise ValidationProblem("invalid_limit", "limit", "limit must be an integer") from None
        cap = r.tiers.rule(user.tier).history_items
        applied = min(limit, cap) if cap is not None else limit
        items = user.history[-applied:] if applied > 0 else []
        flags = ["large_history"] if len(items) >= r.large_history_items else []
        return JSONResponse(
            {
                "items": items,
                "returned": len(items),
                "total": len(user.history),
                "limit_applied": cap,
                "truncated": len(user.history) > len(items),
                "flags": flags,
            }
        )

    async def support_chat(request: Request, state: TargetState, user: User, session: Session) -> Response:
        message = str((await _json(request)).get("message") or "")
        session.chat_messages += 1
        return JSONResponse(
            {
                "reply": f"Thanks for asking about {message[:40]!r}; see the help centre.",
                "messages_in_session": session.chat_messages,
                "high_volume": session.chat_messages >= r.support_high_volume_messages,
            }
        )

    async def pricing(request: Request) -> Response:
        return JSONResponse(
            {
                "tiers": {
                    name: {"price_usd": t.price_usd, "analyses_per_month": t.analyses_per_month}
                    for name, t in r.tiers.tiers.items()
                }
            }
        )

    async def checkout(request: Request, state: TargetState, user: User, session: Session) -> Response:
        body = await _json(request)
        tier = str(body.get("tier") or "")
        if tier not in r.tiers.tiers or tier == "free":
            raise ValidationProblem("invalid_tier", "tier", f"tier must be one of {', '.join(r.tiers.tiers)}")
        method = str(body.get("payment_method") or "pm_card_visa")
        if method.startswith(LIVE_KEY_PREFIXES):
            return _error(400, "live_mode_refused")
        if method in (DECLINED_INSUFFICIENT_FUNDS, DECLINED_GENERIC):
            user.failed_payment = True
            code = "insufficient_funds" if method == DECLINED_INSUFFICIENT_FUNDS else "generic_decline"
            return _error(402, "card_declined", decline_code=code, livemode=False)
        previous, amount = user.tier, r.tiers.rule(tier).price_usd
        retry, user.failed_payment = user.failed_payment, False
        user.tier = tier
        session_id = state.next_id("cs_test_")
        state.checkouts[session_id] = user.email
        return JSONResponse(
            {
                "session_id": session_id,
                "status": "complete",
                "livemode": False,
                "tier": tier,
                "previous_tier": previous,
                "amount_usd": amount,
                "prorated": r.tiers.rule(previous).price_usd > 0
                and r.tiers.rank(tier) > r.tiers.rank(previous),
                "retry_after_failure": retry,
            }
        )

    async def webhook(request: Request) -> Response:
        body = await _json(request)
        event_id = str(body.get("id") or "")
        session_id = str(((body.get("data") or {}).get("object") or {}).get("id") or "")
        if not event_id or session_id not in state.checkouts:
            return _error(400, "unknown_event", detail="event id and a known checkout session are required")
        duplicate = event_id in state.processed_events
        state.processed_events.add(event_id)
        return JSONResponse({"received": True, "duplicate": duplicate, "applied": not duplicate})

    async def downgrade(request: Request, state: TargetState, user: User, session: Session) -> Response:
        body = await _json(request)
        tier = str(body.get("tier") or "")
        if tier not in r.tiers.tiers or r.tiers.rank(tier) >= r.tiers.rank(user.tier):
            raise ValidationProblem("invalid_tier", "tier", f"pick a tier below {user.tier}")
        if body.get("confirm") is not True:
            cap = r.tiers.rule(tier).history_items
            hidden = max(len(user.history) - cap, 0) if cap is not None else 0
            return _error(
                409,
                "confirmation_required",
                data_loss_warning=(
                    f"moving from {user.tier} to {tier} lowers the limit to "
                    f"{r.tiers.rule(tier).analyses_per_month} analyses a month and hides {hidden} history items"
                ),
            )
        user.tier = tier
        # down to the free tier ends the paid subscription (Stripe: customer.subscription.deleted)
        return JSONResponse(
            {"tier": tier, "effective": "immediately", "subscription_canceled": tier == "free"}
        )

    async def sim_cleanup(request: Request) -> Response:
        body = await _json(request)
        synthetic = sorted(e for e in state.users if e.endswith("@" + SIMULATED_EMAIL_DOMAIN))
        kept = len(state.users) - len(synthetic)
        if body.get("dry_run") is False:
            for email in synthetic:
                state.drop_user(email)
            return JSONResponse(
                {"dry_run": False, "matched": len(synthetic), "deleted": len(synthetic), "kept": kept}
            )
        return JSONResponse({"dry_run": True, "matched": len(synthetic), "deleted": 0, "kept": kept})

    async def sim_reset(request: Request) -> Response:
        body = await _json(request)
        email = str(body.get("email") or "").lower()
        if not email.endswith("@" + SIMULATED_EMAIL_DOMAIN):
            return _error(403, "not_synthetic", detail=f"only @{SIMULATED_EMAIL_DOMAIN} users may be reset")
        if body.get("exists") is False:
            state.drop_user(email)
            return JSONResponse({"reset": True, "exists": False})
        tier = str(body.get("tier") or "free")
        if tier not in r.tiers.tiers:
            raise ValidationProblem("invalid_tier", "tier", f"tier must be one of {', '.join(r.tiers.tiers)}")
        user = state.add_user(email, str(body.get("user_id") or email), str(body.get("password") or ""), tier)
        user.usage[state.period(user)] = int(body.get("usage_used") or 0)
        user.history = [
            {"analysis_id": f"hist_{i:04d}", "address": f"{100 + i} Archive Street, Springfield, IL 62701"}
            for i in range(int(body.get("history_items") or 0))
        ]
        return JSONResponse({"reset": True, "exists": True, "tier": tier})

    async def sim_clock(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        claims = state.decode(header[7:]) if header.lower().startswith("bearer ") else None
        user = state.users.get(claims["sub"]) if claims else None
        if user is None:
            return _error(401, "not_authenticated")
        minutes = (await _json(request)).get("minutes", 0)
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes < 0:
            raise ValidationProblem("invalid_minutes", "minutes", "minutes must be a non-negative number")
        user.clock_offset += float(minutes)
        return JSONResponse({"simulated_minutes": round(state.now(user), 3)})

    async def sim_usage(request: Request, state: TargetState, user: User, session: Session) -> Response:
        used = (await _json(request)).get("used", 0)
        user.usage[state.period(user)] = int(used)
        return JSONResponse({"usage": usage_body(user)})

    def unguarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ValidationProblem as problem:
                return JSONResponse(problem.body(), status_code=422)

        return endpoint

    routes = [
        Route("/health", health),
        Route("/auth/signup", unguarded(signup), methods=["POST"]),
        Route("/auth/login", unguarded(login), methods=["POST"]),
        Route("/auth/refresh", unguarded(refresh), methods=["POST"]),
        Route("/auth/logout", authed(logout, api=False), methods=["POST"]),
        Route("/api/v1/account", authed(account)),
        Route("/api/v1/propiq/analyze", authed(analyze), methods=["POST"]),
        Route("/api/v1/calculator", authed(calculator), methods=["POST"]),
        Route("/api/v1/export", authed(export), methods=["POST"]),
        Route("/api/v1/history", authed(history)),
        Route("/api/v1/support/chat", authed(support_chat), methods=["POST"]),
        Route("/api/v1/pricing", pricing),
        Route("/api/v1/stripe/create-checkout-session", authed(checkout), methods=["POST"]),
        Route("/api/v1/stripe/webhook", unguarded(webhook), methods=["POST"]),
        Route("/api/v1/subscription/downgrade", authed(downgrade), methods=["POST"]),
        Route("/sim/users/reset", unguarded(sim_reset), methods=["POST"]),
        Route("/sim/users/cleanup", unguarded(sim_cleanup), methods=["POST"]),
        Route("/sim/clock", unguarded(sim_clock), methods=["POST"]),
        Route("/sim/usage", authed(sim_usage, api=False), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.target = state
    return app
