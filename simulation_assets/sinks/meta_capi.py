"""Meta Conversions API: payloads written to a file always, posted only when configured.

Embedded default: newline-delimited JSON under the data folder, no network call.
Real component: ``POST {endpoint}?access_token=...`` with batches of up to 1,000
events, when both ``META_CAPI_ENDPOINT`` (e.g.
``https://graph.facebook.com/v21.0/<PIXEL_ID>/events``) and
``META_CAPI_ACCESS_TOKEN`` are set. The token is read from the environment only.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
from pydantic import BaseModel, Field

from simulation_assets.paths import data_dir


class SendReport(BaseModel):
    """What a send did: how many events were posted and acknowledged, or why nothing was sent."""

    attempted: int
    acknowledged: int
    requests: int
    skipped_reason: str | None = None


class MetaCapiSink(dg.ConfigurableResource):
    """Writes CAPI payloads as JSON lines; posts them when an endpoint and token are configured."""

    output_dir: str = Field(
        default="", description="Folder for payload files; empty: <data dir>/funnel/capi."
    )
    endpoint: str = Field(
        default_factory=lambda: os.environ.get("META_CAPI_ENDPOINT", ""),
        description="Conversions API URL (env META_CAPI_ENDPOINT); empty disables sending.",
    )
    test_event_code: str = Field(
        default_factory=lambda: os.environ.get("META_CAPI_TEST_EVENT_CODE", ""),
        description="Optional test_event_code so events land in Events Manager's test tab.",
    )
    batch_size: int = Field(default=1000, ge=1, le=1000)
    timeout_seconds: float = 10.0
    max_retries: int = 3

    def folder(self) -> Path:
        """Return the folder payload files go to."""
        return Path(self.output_dir).resolve() if self.output_dir else data_dir() / "funnel" / "capi"

    def write(self, name: str, payloads: list[dict[str, Any]]) -> Path:
        """Replace ``<folder>/<name>.jsonl`` with one payload per line; return its path."""
        path = self.folder() / f"{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            for item in payloads:
                fh.write(json.dumps(item, separators=(",", ":")) + "\n")
        os.replace(tmp, path)
        return path

    def is_live(self) -> bool:
        """Return whether both the endpoint and the access token are configured."""
        return bool(self.endpoint and os.environ.get("META_CAPI_ACCESS_TOKEN"))

    def send(self, payloads: list[dict[str, Any]]) -> SendReport:
        """Post ``payloads`` in batches; without endpoint and token, post nothing and say why.

        Retries 429 and 5xx answers with exponential backoff; raises when a batch is
        still refused, so a run never reports events Meta did not acknowledge.
        """
        token = os.environ.get("META_CAPI_ACCESS_TOKEN", "")
        if not self.endpoint or not token:
            return SendReport(
                attempted=0,
                acknowledged=0,
                requests=0,
                skipped_reason="META_CAPI_ENDPOINT and META_CAPI_ACCESS_TOKEN not both set: payloads written only",
            )
        acknowledged = requests = 0
        with httpx.Client(timeout=self.timeout_seconds) as client:
            for start in range(0, len(payloads), self.batch_size):
                body: dict[str, Any] = {"data": payloads[start : start + self.batch_size]}
                if self.test_event_code:
                    body["test_event_code"] = self.test_event_code
                for attempt in range(self.max_retries + 1):
                    requests += 1
                    resp = client.post(self.endpoint, params={"access_token": token}, json=body)
                    if resp.status_code == 200:
                        acknowledged += int(resp.json().get("events_received", len(body["data"])))
                        break
                    if resp.status_code not in (429, 500, 502, 503, 504) or attempt == self.max_retries:
                        raise RuntimeError(
                            f"Meta CAPI refused a batch of {len(body['data'])} events: HTTP {resp.status_code} {resp.text[:200]}"
                        )
                    time.sleep(min(0.2 * 2**attempt, 5.0))
        return SendReport(attempted=len(payloads), acknowledged=acknowledged, requests=requests)
