"""The one retry policy of the project's HTTP sinks, on tenacity.

What is retried: HTTP 408, 429 and 5xx answers (``RETRYABLE_STATUSES``) and network
errors (``httpx.TransportError``: refused or reset connections, timeouts). Anything
else a server answers is a refusal: it is not retried, and it raises a
``DeliveryError`` that tells Dagster not to re-run the step either.

How long it waits: exponential backoff from ``backoff_seconds`` (doubling, capped at
``max_backoff_seconds``) times a jitter factor drawn in [0.5, 1.5), so parallel runs
do not retry in step; a ``Retry-After`` header (seconds or an HTTP date) is honoured
as a lower bound, within the same cap. No attempt starts once ``budget_seconds`` have
passed since the first one.

One budget for a whole materialization: a network asset carries Dagster's
``NETWORK_RETRY`` (``defs/policies.py``: ``STEP_RETRIES`` re-runs of the step) and the
sink retries each request ``RETRIES_PER_STEP`` times inside one step, so one request is
tried at most ``TOTAL_ATTEMPTS`` = (1 + RETRIES_PER_STEP) x (1 + STEP_RETRIES) times,
instead of each layer multiplying its own generous count. A sink that runs out of its
share raises a retryable ``DeliveryError`` and the step's remaining retries take over;
a refusal raises a non-retryable one and the run fails at once.

Use ``send`` / ``send_async`` for one httpx request, ``call`` for any other callable
(e.g. a vendor client that raises exceptions carrying a status code). A sink resource
mixes in ``RetrySettings`` for its three retry fields and builds its policy with
``retry_policy()``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg
from pydantic import BaseModel, Field

from simulation_assets.sinks.retry_budget import (  # noqa: F401 (the budget's numbers, re-exported)
    BACKOFF_SECONDS,
    BUDGET_SECONDS,
    MAX_BACKOFF_SECONDS,
    RETRIES_PER_STEP,
    STEP_RETRIES,
    STEP_RETRY_DELAY_SECONDS,
    TOTAL_ATTEMPTS,
)

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

if TYPE_CHECKING:  # both imported where a request is made: a run that sends nothing never loads them
    import httpx
    import tenacity


class DeliveryError(dg.Failure):
    """A request the sink gave up on.

    ``retryable`` is True when the server kept answering 408/429/5xx (or the network
    failed) through the sink's share of the retry budget: Dagster may re-run the step.
    It is False for a refusal (any other status), which no re-run would fix.
    """

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        metadata = {"retryable": retryable} | ({"http_status": status} if status is not None else {})
        super().__init__(description=message, metadata=metadata, allow_retries=retryable)
        self.retryable = retryable
        self.status = status

    def __str__(self) -> str:
        return self.description or ""


class RetryableAnswer(Exception):
    """A retryable HTTP answer (408/429/5xx), raised inside the retry loop; carries ``Retry-After``."""

    def __init__(self, status: int, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Return the wait a ``Retry-After`` header asks for, in seconds (None when absent or unreadable)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


class _BackoffOrRetryAfter:
    """Exponential backoff with [0.5, 1.5) jitter, at least the server's Retry-After, at most the cap.

    A plain callable, as tenacity takes a ``wait``: no class of tenacity's at import time (~20 M
    instructions to import, in every command whose definitions name an HTTP sink)."""

    def __init__(self, policy: HttpRetry, unit: Callable[[], float]) -> None:
        self.policy = policy
        self.unit = unit

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        hinted = getattr(failure, "retry_after", None)
        return self.policy.wait_seconds(retry_state.attempt_number, hinted, self.unit())


@dataclass(frozen=True)
class HttpRetry:
    """How one request is retried inside one step (see the module docstring for the budget)."""

    max_retries: int = RETRIES_PER_STEP
    backoff_seconds: float = BACKOFF_SECONDS
    max_backoff_seconds: float = MAX_BACKOFF_SECONDS
    budget_seconds: float = BUDGET_SECONDS
    statuses: frozenset[int] = RETRYABLE_STATUSES

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_seconds < 0 or self.max_backoff_seconds < 0 or self.budget_seconds <= 0:
            raise ValueError("backoff_seconds and max_backoff_seconds must be >= 0, budget_seconds > 0")

    @property
    def attempts(self) -> int:
        """Return how many times one request is tried in one step."""
        return self.max_retries + 1

    def wait_seconds(self, attempt: int, retry_after: float | None = None, unit: float = 0.5) -> float:
        """Return the wait after failed attempt ``attempt`` (1-based); ``unit`` in [0, 1) draws the jitter."""
        backoff = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        wait = min(self.max_backoff_seconds, backoff * (0.5 + unit))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_backoff_seconds))
        return wait

    def _kwargs(
        self, on_retry: Callable[[BaseException, float], None] | None, unit: Callable[[], float]
    ) -> dict[str, Any]:
        import httpx
        import tenacity

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None:
                on_retry(state.outcome.exception(), state.upcoming_sleep)  # type: ignore[arg-type]

        return {
            "stop": tenacity.stop_after_attempt(self.attempts)
            | tenacity.stop_before_delay(self.budget_seconds),
            "wait": _BackoffOrRetryAfter(self, unit),
            "retry": tenacity.retry_if_exception_type((RetryableAnswer, httpx.TransportError)),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def retrying(
        self,
        on_retry: Callable[[BaseException, float], None] | None = None,
        unit: Callable[[], float] = random.random,
    ) -> tenacity.Retrying:
        """Return a tenacity ``Retrying`` that retries ``RetryableAnswer`` and network errors.

        ``on_retry(error, wait_seconds)`` is called before each wait; ``unit`` draws the
        jitter (pass a seeded stream where retries must be reproducible).
        """
        import tenacity

        return tenacity.Retrying(**self._kwargs(on_retry, unit))

    def retrying_async(
        self,
        on_retry: Callable[[BaseException, float], None] | None = None,
        unit: Callable[[], float] = random.random,
    ) -> tenacity.AsyncRetrying:
        """Return the ``AsyncRetrying`` twin of ``retrying`` (waits with ``asyncio.sleep``)."""
        import tenacity

        return tenacity.AsyncRetrying(**self._kwargs(on_retry, unit))


class RetrySettings(BaseModel):
    """The retry fields every HTTP sink resource has, and its policy built from them.

    Mix it into a ``dg.ConfigurableResource`` (``class MySink(dg.ConfigurableResource,
    RetrySettings)``): the fields become part of the resource's config like its own.
    """

    max_retries: int = Field(
        default=RETRIES_PER_STEP, description="re-tries of one request inside one step attempt"
    )
    backoff_seconds: float = Field(
        default=BACKOFF_SECONDS, description="first wait before a retry (doubles, with jitter)"
    )
    max_backoff_seconds: float = Field(default=MAX_BACKOFF_SECONDS, description="longest wait")

    def retry_policy(self) -> HttpRetry:
        """Return the ``HttpRetry`` these fields describe (the shared budget otherwise)."""
        return HttpRetry(
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
            max_backoff_seconds=self.max_backoff_seconds,
        )


def _check(response: httpx.Response, statuses: Collection[int], what: str) -> httpx.Response:
    if response.is_success:
        return response
    detail = response.text[:200]
    if response.status_code in statuses:
        raise RetryableAnswer(
            response.status_code, detail, retry_after_seconds(response.headers.get("Retry-After"))
        )
    raise DeliveryError(
        f"{what} refused: HTTP {response.status_code}: {detail}", retryable=False, status=response.status_code
    )


def _gave_up(what: str, policy: HttpRetry, error: BaseException) -> DeliveryError:
    status = getattr(error, "status", None)
    return DeliveryError(
        f"{what} not accepted after {policy.attempts} attempts: {type(error).__name__}: {error}",
        retryable=True,
        status=status,
    )


def send(
    client: httpx.Client,
    method: str,
    url: str,
    policy: HttpRetry,
    *,
    what: str = "request",
    before_attempt: Callable[[], object] | None = None,
    on_response: Callable[[httpx.Response], None] | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
    **request: Any,
) -> httpx.Response:
    """Send one request with ``policy``'s retries and return its 2xx answer.

    ``before_attempt`` runs before every try (e.g. a rate limiter's ``acquire``);
    ``on_response`` sees every answer (e.g. to count statuses). Raises DeliveryError:
    not retryable on a refusal, retryable once the tries are spent.
    """
    import httpx

    try:
        for attempt in policy.retrying(on_retry):
            with attempt:
                if before_attempt is not None:
                    before_attempt()
                response = client.request(method, url, **request)
                if on_response is not None:
                    on_response(response)
                return _check(response, policy.statuses, what)
    except (RetryableAnswer, httpx.TransportError) as exc:
        raise _gave_up(what, policy, exc) from exc
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


async def send_async(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    policy: HttpRetry,
    *,
    what: str = "request",
    before_attempt: Callable[[], Awaitable[object]] | None = None,
    on_response: Callable[[httpx.Response], None] | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
    **request: Any,
) -> httpx.Response:
    """The asyncio twin of ``send`` (``before_attempt`` is awaited)."""
    import httpx

    try:
        async for attempt in policy.retrying_async(on_retry):
            with attempt:
                if before_attempt is not None:
                    await before_attempt()
                response = await client.request(method, url, **request)
                if on_response is not None:
                    on_response(response)
                return _check(response, policy.statuses, what)
    except (RetryableAnswer, httpx.TransportError) as exc:
        raise _gave_up(what, policy, exc) from exc
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


def status_of(error: BaseException) -> int | None:
    """Return the HTTP status an exception carries (``.status``, ``.status_code`` or ``.response``)."""
    for name in ("status", "status_code", "code"):
        value = getattr(error, name, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(error, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def call(
    fn: Callable[[], T],
    policy: HttpRetry,
    *,
    what: str = "call",
    done_statuses: Collection[int] = (),
    retry_unknown: bool = True,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T | None:
    """Call ``fn`` (a vendor client's request) with ``policy``'s retries and return its result.

    An exception carrying a status in ``done_statuses`` (e.g. 409 "already exists") means
    the work is already done: returns None. A retryable status, or no status at all when
    ``retry_unknown`` (a network error inside the client), is retried; any other status
    raises a non-retryable DeliveryError.
    """

    def attempt_once() -> T | None:
        try:
            return fn()
        except Exception as exc:
            status = status_of(exc)
            if status in done_statuses:
                return None
            if status in policy.statuses or (status is None and retry_unknown):
                raise RetryableAnswer(status or 0, str(exc)) from exc
            raise DeliveryError(
                f"{what} refused (HTTP {status}): {exc}", retryable=False, status=status
            ) from exc

    try:
        for attempt in policy.retrying(on_retry):
            with attempt:
                return attempt_once()
    except RetryableAnswer as exc:
        cause = exc.__cause__ or exc
        raise DeliveryError(
            f"{what} failed after {policy.attempts} attempts: {cause}",
            retryable=True,
            status=exc.status or None,
        ) from cause
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover
