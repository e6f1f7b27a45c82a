"""FlixBuddy answers: the in-process deterministic responder (default) or an HTTP chat endpoint.

The endpoint (``FLIXBUDDY_URL``, optional bearer key in ``FLIXBUDDY_API_KEY``)
receives ``{"messages": [{"role": "user", "content": question}],
"conversation_id": ...}`` and may answer JSON (``reply``, ``response``,
``content``, ``message`` or an OpenAI-style ``choices``) or plain text. Calls
are spaced by ``min_interval_seconds`` (1 request per 5 s), capped at
``max_per_run`` per run (50), time out, and are retried on 429/5xx with
backoff; questions beyond the cap get no answer in this run.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field

import dagster as dg
import httpx
import polars as pl
from pydantic import Field

from simulation_assets.core.hogflix.flixbuddy import deterministic_reply

RETRYABLE = {408, 429, 500, 502, 503, 504}


class FlixBuddyError(RuntimeError):
    """The FlixBuddy endpoint failed after all retries."""


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


class FlixBuddyClient(dg.ConfigurableResource):
    """Answers FlixBuddy questions; ``endpoint`` empty means the in-process responder."""

    endpoint: str = Field(default_factory=lambda: os.environ.get("FLIXBUDDY_URL", ""))
    api_key_env_var: str = "FLIXBUDDY_API_KEY"
    min_interval_seconds: float = 5.0
    max_per_run: int = 50
    timeout_seconds: float = 30.0
    max_retries: int = 4
    backoff_seconds: float = 1.0

    def mode(self) -> str:
        return "http" if self.endpoint else "in-process"

    def answer(
        self, asked: pl.DataFrame, catalog_size: int = 240
    ) -> tuple[list[str | None], FlixBuddyReport]:
        """Return one reply per row of ``asked`` (question, question_template, conversation_id)."""
        report = FlixBuddyReport(mode=self.mode())
        rows = asked.select("question", "question_template", "conversation_id").rows()
        if not self.endpoint:
            replies: list[str | None] = [deterministic_reply(t, c, catalog_size) for _, t, c in rows]
            report.calls = report.answered = len(replies)
            return replies, report
        headers = {"Content-Type": "application/json"}
        if os.environ.get(self.api_key_env_var):
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env_var]}"
        replies = []
        last_call = None
        with httpx.Client(timeout=self.timeout_seconds, headers=headers) as client:
            for question, _template, conversation_id in rows:
                if report.calls >= self.max_per_run:
                    replies.append(None)
                    report.skipped_over_cap += 1
                    continue
                body = {
                    "messages": [{"role": "user", "content": question}],
                    "conversation_id": conversation_id,
                }
                text = None
                for attempt in range(self.max_retries + 1):
                    if last_call is not None:  # throttle every request, retries included
                        wait = self.min_interval_seconds - (time.monotonic() - last_call)
                        if wait > 0:
                            time.sleep(wait)
                    last_call = time.monotonic()
                    report.call_started.append(last_call)
                    try:
                        response = client.post(self.endpoint, json=body)
                        if response.status_code < 300:
                            text = _parse(response)
                            break
                        if response.status_code not in RETRYABLE:
                            raise FlixBuddyError(f"FlixBuddy refused (HTTP {response.status_code})")
                    except httpx.TransportError:
                        pass
                    if attempt < self.max_retries:
                        report.retries += 1
                        time.sleep(self.backoff_seconds * 2**attempt * (0.5 + random.random()))
                if text is None:
                    raise FlixBuddyError(f"no FlixBuddy answer after {self.max_retries + 1} attempts")
                report.calls += 1
                report.answered += 1
                replies.append(text)
        return replies, report
