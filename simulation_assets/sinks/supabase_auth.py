"""Supabase auth users of the synthetic personas, through the ``supabase`` client's admin API.

Optional: active when ``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY`` are
set. Users are created with the persona's deterministic ``user_id`` and
``user_metadata.is_synthetic = true``; a user is deleted only after reading it
back and finding that flag or the synthetic e-mail domain. The client does not
retry POST or DELETE, so every call here goes through the shared HTTP policy
(``http_retry.call``): 408, 429, 5xx and network errors are retried with backoff;
"already exists" on create and "not found" on delete count as done, so re-runs are
idempotent. Creations are paced by the shared rate limiter (5 a second).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.sinks.app_db import SYNTHETIC_DOMAIN
from simulation_assets.sinks.http_retry import (
    DeliveryError,
    RetrySettings,
    call,
)
from simulation_assets.sinks.rate_limit import RateLimiter

T = TypeVar("T")


class AuthAdminError(DeliveryError):
    """The auth admin API refused a request, or kept failing through the retries."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message, retryable=retryable, status=status)


def is_synthetic_user(user: Any) -> bool:
    """Return whether an auth user (supabase ``User``) is one of ours: flag or synthetic e-mail domain."""
    meta = getattr(user, "user_metadata", None) or {}
    email = (getattr(user, "email", None) or "").lower()
    return meta.get("is_synthetic") is True or email.endswith("@" + SYNTHETIC_DOMAIN)


class SupabaseAuthAdmin(dg.ConfigurableResource, RetrySettings):
    """Creates and deletes the auth users of synthetic personas (no-op when not configured)."""

    ENV: ClassVar[dict[str, str]] = {"url": "SUPABASE_URL", "service_role_key": "SUPABASE_SERVICE_ROLE_KEY"}

    url: str = Field(default="", description="Supabase project URL ($SUPABASE_URL).")
    service_role_key: str = Field(
        default="", description="Service-role key ($SUPABASE_SERVICE_ROLE_KEY, bound as an EnvVar)."
    )
    creates_per_second: float = 5.0  # "User creation: 5 per second (batched)"

    def enabled(self) -> bool:
        """Return whether both the URL and the service key are available."""
        return bool(self.url and self.service_role_key)

    def _admin(self) -> Any:
        from supabase import create_client

        return create_client(self.url, self.service_role_key).auth.admin

    def _call(self, what: str, fn: Callable[[], T], ok_statuses: Sequence[int] = ()) -> T | None:
        """Call the admin client (it raises AuthApiError / AuthRetryableError / httpx errors) with retries."""
        policy = self.retry_policy()
        try:
            return call(fn, policy, what=what, done_statuses=ok_statuses)
        except DeliveryError as exc:
            raise AuthAdminError(str(exc), retryable=exc.retryable, status=exc.status) from exc

    def create_users(self, users: pl.DataFrame) -> dict[str, int]:
        """Create auth users for rows (user_id, email, plan?, display_name?); existing ones are skipped."""
        if not self.enabled() or users.is_empty():
            return {"created": 0, "existing": 0}
        admin = self._admin()
        created = existing = 0
        pace = RateLimiter.per_second(self.creates_per_second)
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
            pace.acquire()
            result = self._call(
                f"create auth user {row['user_id']}", lambda a=attrs: admin.create_user(a), (409, 422)
            )
            created += result is not None
            existing += result is None
        pace.close()
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
