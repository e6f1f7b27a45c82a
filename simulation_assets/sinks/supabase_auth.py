"""Supabase auth users of the synthetic personas, through the ``supabase`` client's admin API.

Optional: active when ``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY`` are
set. Users are created with the persona's deterministic ``user_id`` and
``user_metadata.is_synthetic = true``; a user is deleted only after reading it
back and finding that flag or the synthetic e-mail domain. The client does not
retry POST or DELETE, so every call here is wrapped: 429, 5xx and network
errors are retried with backoff; "already exists" on create and "not found" on
delete count as done, so re-runs are idempotent.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.sinks.app_db import SYNTHETIC_DOMAIN

T = TypeVar("T")
RETRYABLE = {408, 429, 500, 502, 503, 504}


class AuthAdminError(RuntimeError):
    """The auth admin API refused a request after all retries."""


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status > 0:
        return status
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def is_synthetic_user(user: Any) -> bool:
    """Return whether an auth user (supabase ``User``) is one of ours: flag or synthetic e-mail domain."""
    meta = getattr(user, "user_metadata", None) or {}
    email = (getattr(user, "email", None) or "").lower()
    return meta.get("is_synthetic") is True or email.endswith("@" + SYNTHETIC_DOMAIN)


class SupabaseAuthAdmin(dg.ConfigurableResource):
    """Creates and deletes the auth users of synthetic personas (no-op when not configured)."""

    url: str = Field(default_factory=lambda: os.environ.get("SUPABASE_URL", ""))
    service_key_env_var: str = "SUPABASE_SERVICE_ROLE_KEY"
    max_retries: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 20.0
    creates_per_second: float = 5.0  # "User creation: 5 per second (batched)"

    def enabled(self) -> bool:
        """Return whether both the URL and the service key are available."""
        return bool(self.url and os.environ.get(self.service_key_env_var))

    def _admin(self) -> Any:
        from supabase import create_client

        return create_client(self.url, os.environ[self.service_key_env_var]).auth.admin

    def _call(self, what: str, fn: Callable[[], T], ok_statuses: Sequence[int] = ()) -> T | None:
        last: BaseException | None = None
        for attempt in range(self.max_retries + 1):
            try:
                return fn()
            except Exception as exc:  # the client raises AuthApiError / AuthRetryableError / httpx errors
                status = _status(exc)
                if status in ok_statuses:
                    return None
                retryable = (
                    status is None or status in RETRYABLE or type(exc).__name__ == "AuthRetryableError"
                )
                if not retryable:
                    raise AuthAdminError(f"{what} refused (HTTP {status}): {exc}") from exc
                last = exc
            if attempt < self.max_retries:
                delay = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt)
                time.sleep(delay * (0.5 + random.random()))
        raise AuthAdminError(f"{what} failed after {self.max_retries + 1} attempts: {last}")

    def create_users(self, users: pl.DataFrame) -> dict[str, int]:
        """Create auth users for rows (user_id, email, plan?, display_name?); existing ones are skipped."""
        if not self.enabled() or users.is_empty():
            return {"created": 0, "existing": 0}
        admin = self._admin()
        created = existing = 0
        gap = 1.0 / self.creates_per_second if self.creates_per_second > 0 else 0.0
        for row in users.iter_rows(named=True):
            if not row["email"].lower().endswith("@" + SYNTHETIC_DOMAIN):
                raise AuthAdminError(f"refusing to create a non-synthetic auth user {row['email']!r}")
            attrs = {
                "id": row["user_id"],
                "email": row["email"],
                "email_confirm": True,
                "user_metadata": {
                    "is_synthetic": True,
                    "persona": row.get("display_name"),
                    "plan": row.get("plan"),
                },
            }
            result = self._call(
                f"create auth user {row['user_id']}", lambda a=attrs: admin.create_user(a), (409, 422)
            )
            created += result is not None
            existing += result is None
            if gap:
                time.sleep(gap)
        return {"created": created, "existing": existing}

    def delete_users(self, user_ids: Sequence[str]) -> dict[str, int]:
        """Delete the given auth users, each only if it reads back as synthetic; return counts."""
        if not self.enabled() or not user_ids:
            return {"deleted": 0, "missing": 0, "refused_non_synthetic": 0}
        admin = self._admin()
        deleted = missing = refused = 0
        for uid in user_ids:
            found = self._call(f"read auth user {uid}", lambda u=uid: admin.get_user_by_id(u), (404,))
            if found is None:
                missing += 1
                continue
            if not is_synthetic_user(found.user):
                refused += 1
                continue
            self._call(f"delete auth user {uid}", lambda u=uid: admin.delete_user(u), (404,))
            deleted += 1
        return {"deleted": deleted, "missing": missing, "refused_non_synthetic": refused}

    def synthetic_user_ids(self, per_page: int = 1000) -> list[str]:
        """Return the ids of every synthetic auth user (paging through the admin list)."""
        if not self.enabled():
            return []
        admin = self._admin()
        out: list[str] = []
        page = 1
        while True:
            users = (
                self._call("list auth users", lambda p=page: admin.list_users(page=p, per_page=per_page))
                or []
            )
            out += [u.id for u in users if is_synthetic_user(u)]
            if len(users) < per_page:
                return out
            page += 1
