"""Meta Conversions API: payloads written to a file always, posted only when configured.

Embedded default: newline-delimited JSON under the data folder, no network call.
Real component: ``POST {endpoint}?access_token=...`` with batches of up to 1,000
events, when both ``META_CAPI_ENDPOINT`` (e.g.
``https://graph.facebook.com/v21.0/<PIXEL_ID>/events``) and
``META_CAPI_ACCESS_TOKEN`` are set. The token comes from the environment only (bound as
``dg.EnvVar``, so the UI shows the variable's name). Batches are retried with the shared
HTTP policy (``http_retry``): 408/429/5xx and network errors, backoff with jitter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
from pydantic import BaseModel, Field

from simulation_assets.paths import data_dir
from simulation_assets.sinks.atomic_files import write_json_lines
from simulation_assets.sinks.http_retry import (
    DeliveryError,
    RetrySettings,
    send,
)


class SendReport(BaseModel):
    """What a send did: how many events were posted and acknowledged, or why nothing was sent."""

    attempted: int
    acknowledged: int
    requests: int
    skipped_reason: str | None = None


class MetaCapiSink(dg.ConfigurableResource, RetrySettings):
    """Writes CAPI payloads as JSON lines; posts them when an endpoint and token are configured."""

    ENV: ClassVar[dict[str, str]] = {
        "endpoint": "META_CAPI_ENDPOINT",
        "access_token": "META_CAPI_ACCESS_TOKEN",
        "test_event_code": "META_CAPI_TEST_EVENT_CODE",
    }

    output_dir: str = Field(
        default="", description="Folder for payload files; empty: <data dir>/funnel/capi."
    )
    endpoint: str = Field(
        default="", description="Conversions API URL ($META_CAPI_ENDPOINT); empty disables sending."
    )
    access_token: str = Field(
        default="",
        description="Access token ($META_CAPI_ACCESS_TOKEN, bound as an EnvVar); empty disables sending.",
    )
    test_event_code: str = Field(
        default="",
        description="Optional test_event_code so events land in Events Manager's test tab ($META_CAPI_TEST_EVENT_CODE).",
    )
    batch_size: int = Field(default=1000, ge=1, le=1000)
    timeout_seconds: float = 10.0

    def folder(self) -> Path:
        """Return the folder payload files go to."""
        return Path(self.output_dir).resolve() if self.output_dir else data_dir() / "funnel" / "capi"

    def write(self, name: str, payloads: list[dict[str, Any]]) -> Path:
        """Replace ``<folder>/<name>.jsonl`` with one payload per line; return its path."""
        return write_json_lines(self.folder() / f"{name}.jsonl", payloads)

    def is_live(self) -> bool:
        """Return whether both the endpoint and the access token are configured."""
        return bool(self.endpoint and self.access_token)

    def send(self, payloads: list[dict[str, Any]]) -> SendReport:
        """Post ``payloads`` in batches; without endpoint and token, post nothing and say why.

        Raises ``DeliveryError`` when a batch is refused or still failing after the retries,
        so a run never reports events Meta did not acknowledge.
        """
        if not self.is_live():
            return SendReport(
                attempted=0,
                acknowledged=0,
                requests=0,
                skipped_reason="META_CAPI_ENDPOINT and META_CAPI_ACCESS_TOKEN not both set: payloads written only",
            )
        import httpx  # only when something is sent: a run that writes files only never loads it

        policy = self.retry_policy()
        acknowledged = requests = 0

        def count() -> None:
            nonlocal requests
            requests += 1

        with httpx.Client(timeout=self.timeout_seconds) as client:
            for start in range(0, len(payloads), self.batch_size):
                body: dict[str, Any] = {"data": payloads[start : start + self.batch_size]}
                if self.test_event_code:
                    body["test_event_code"] = self.test_event_code
                response = send(
                    client,
                    "POST",
                    self.endpoint,
                    policy,
                    what=f"Meta CAPI batch of {len(body['data'])} events",
                    before_attempt=count,
                    params={"access_token": self.access_token},
                    json=body,
                )
                acknowledged += int(response.json().get("events_received", len(body["data"])))
        return SendReport(attempted=len(payloads), acknowledged=acknowledged, requests=requests)


__all__ = ["DeliveryError", "MetaCapiSink", "SendReport"]
