"""FlixBuddy answers: the in-process deterministic responder (default) or an HTTP chat endpoint.

The endpoint (``FLIXBUDDY_URL``, optional bearer key in ``FLIXBUDDY_API_KEY``)
receives ``{"messages": [{"role": "user", "content": question}],
"conversation_id": ...}`` and may answer JSON (``reply``, ``response``,
``content``, ``message`` or an OpenAI-style ``choices``) or plain text. Calls
are spaced by the shared rate limiter (``min_interval_seconds``: 1 request per
5 s, retries included), capped at ``max_per_run`` per run (50), time out, and
are retried by the shared HTTP policy (408/429/5xx and network errors, backoff
with jitter); questions beyond the cap get no answer in this run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import dagster as dg
import polars as pl
from pydantic import Field

from simulation_assets.core.hogflix.flixbuddy import deterministic_reply
from simulation_assets.sinks.http_retry import (
    DeliveryError,
    RetrySettings,
    send,
)
from simulation_assets.sinks.rate_limit import RateLimiter

if TYPE_CHECKING:
    import httpx  # imported where a request is sent (~0.05 s of CPU that a day without FlixBuddy calls skips)


class FlixBuddyError(DeliveryError):
    """The FlixBuddy endpoint refused a question, or failed after all retries, or answered without a reply."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message, retryable=retryable, status=status)


@dataclass
class FlixBuddyReport:
    """Calls made, answers received, questions left unanswered (over the cap), retries, timings."""

    mode: str
    calls: int = 0
    answered: int = 0
    skipped_over_cap: int = 0
    retries: int = 0
    call_started: list[float] = field(default_factory=list)


def _parse(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        for key in ("reply", "response", "content", "message", "text"):
            value = data.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and isinstance(value.get("content"), str):
                return value["content"]
        choices = data.get("choices")
        if choices and isinstance(choices, list):
            msg = choices[0].get("message", {}) if isinstance(choices[0], dict) else {}
            if isinstance(msg.get("content"), str):
                return msg["content"]
    raise FlixBuddyError(f"FlixBuddy answered without a reply field: {response.text[:200]}")


class FlixBuddyClient(dg.ConfigurableResource, RetrySettings):
    """Answers FlixBuddy questions; ``endpoint`` empty means the in-process responder."""

    ENV: ClassVar[dict[str, str]] = {"endpoint": "FLIXBUDDY_URL", "api_key": "FLIXBUDDY_API_KEY"}

    endpoint: str = Field(
        default="", description="Chat endpoint ($FLIXBUDDY_URL); empty: in-process responder."
    )
    api_key: str = Field(default="", description="Optional bearer key ($FLIXBUDDY_API_KEY).")
    min_interval_seconds: float = 5.0
    max_per_run: int = 50
    timeout_seconds: float = 30.0

    def mode(self) -> str:
        return "http" if self.endpoint else "in-process"

    def answer(
        self, asked: pl.DataFrame, catalog_size: int = 240
    ) -> tuple[list[str | None], FlixBuddyReport]:
        """Return one reply per row of ``asked`` (question, question_template, conversation_id, and
        ``turn`` for a multi-turn conversation: each message is sent with the conversation so far).

        Past ``max_per_run`` calls a message gets no reply (None), nor do the later messages of its
        conversation (the user never sent them).
        """
        report = FlixBuddyReport(mode=self.mode())
        turn = pl.col("turn") if "turn" in asked.columns else pl.lit(0)
        rows = asked.select("question", "question_template", "conversation_id", turn.alias("turn")).rows()
        if not self.endpoint:
            replies: list[str | None] = [deterministic_reply(t, c, catalog_size, k) for _, t, c, k in rows]
            report.calls = report.answered = len(replies)
            return replies, report
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        policy = self.retry_policy()
        pace = RateLimiter.every(self.min_interval_seconds)

        def throttled() -> None:  # every request waits its turn, retries included
            pace.acquire()
            report.call_started.append(time.monotonic())

        def count_retry(_error: BaseException, _wait: float) -> None:
            report.retries += 1

        import httpx

        replies = []
        history: dict[str, list[dict[str, str]]] = {}
        cut: set[str] = set()  # conversations whose earlier message went unanswered
        with httpx.Client(timeout=self.timeout_seconds, headers=headers) as client, pace:
            for question, _template, conversation_id, _turn in rows:
                if conversation_id in cut or report.calls >= self.max_per_run:
                    replies.append(None)
                    report.skipped_over_cap += 1
                    cut.add(conversation_id)
                    continue
                messages = history.setdefault(conversation_id, [])
                messages.append({"role": "user", "content": question})
                body = {"messages": list(messages), "conversation_id": conversation_id}
                try:
                    response = send(
                        client,
                        "POST",
                        self.endpoint,
                        policy,
                        what="FlixBuddy question",
                        before_attempt=throttled,
                        on_retry=count_retry,
                        json=body,
                    )
                except DeliveryError as exc:
                    raise FlixBuddyError(str(exc), retryable=exc.retryable, status=exc.status) from exc
                report.calls += 1
                report.answered += 1
                replies.append(_parse(response))
                messages.append({"role": "assistant", "content": replies[-1]})
        return replies, report
