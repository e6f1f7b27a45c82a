"""Meta CAPI payloads: section 11 mapping, hashed user data, dedup ids; sending only when configured."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading

import polars as pl
import pytest

from simulation_assets.core.funnel.capi import CAPI_EVENT_MAP, capi_payloads, sha256_normalized
from simulation_assets.core.funnel.cohort import simulate_cohort_events
from simulation_assets.core.funnel.config import CohortConfig
from simulation_assets.sinks.config_files import from_env, resolved
from simulation_assets.sinks.meta_capi import MetaCapiSink
from simulation_assets_tests.loopback import LoopbackServer, QuietHandler

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def cohort_events() -> pl.DataFrame:
    return simulate_cohort_events(dt.date(2026, 1, 9), CohortConfig(), seed=2, impressions=80_000).events


def test_each_mapped_event_becomes_its_meta_event_with_the_same_event_id(cohort_events) -> None:
    payloads = capi_payloads(cohort_events)
    names = {p["event_name"] for p in payloads}
    assert names == set(CAPI_EVENT_MAP.values())
    ids = {p["event_id"] for p in payloads}
    assert len(ids) == len(payloads)  # one id per event: the Pixel's eventID for dedup
    assert ids <= set(cohort_events["event_id"].to_list())
    counts = cohort_events.group_by("event").len()
    n = dict(counts.iter_rows())
    assert sum(p["event_name"] == "PageView" for p in payloads) == n["landing_view"]
    assert sum(p["event_name"] == "Purchase" for p in payloads) == n["purchase_completed"]
    # AddToCart only for the first completed job of each person
    first_jobs = cohort_events.filter(pl.col("event") == "processing_completed")["user_id"].n_unique()
    assert sum(p["event_name"] == "AddToCart" for p in payloads) == first_jobs


def test_user_data_is_hashed_and_purchases_carry_value_and_currency(cohort_events) -> None:
    payloads = capi_payloads(cohort_events)
    for p in payloads:
        assert all(HEX64.match(h) for h in p["user_data"]["external_id"])
        assert all(HEX64.match(h) for h in p["user_data"].get("em", []))
        assert isinstance(p["event_time"], int) and p["action_source"] == "website"
    purchase = next(p for p in payloads if p["event_name"] == "Purchase")
    assert purchase["custom_data"]["value"] > 0 and purchase["custom_data"]["currency"] == "USD"
    registration = next(p for p in payloads if p["event_name"] == "CompleteRegistration")
    assert "em" in registration["user_data"]
    assert sha256_normalized("  Foo@Example.COM ") == sha256_normalized("foo@example.com")


def test_sink_writes_a_file_and_makes_no_call_without_endpoint_and_token(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("META_CAPI_ENDPOINT", raising=False)
    monkeypatch.delenv("META_CAPI_ACCESS_TOKEN", raising=False)
    sink = MetaCapiSink(output_dir=str(tmp_path))
    path = sink.write("day", [{"event_name": "Lead"}])
    assert path.read_text().count("\n") == 1
    report = sink.send([{"event_name": "Lead"}])
    assert report.requests == 0 and report.skipped_reason
    assert not sink.is_live()


class _CapiHandler(QuietHandler):
    def do_POST(self) -> None:  # noqa: N802
        owner: CapiServer = self.server.owner  # type: ignore[attr-defined]
        body = json.loads(self._body())
        with owner.lock:
            fail = owner.fail_first > 0
            owner.fail_first -= fail
            if not fail:
                owner.received.append(body)
                owner.paths.append(self.path)
        if fail:
            self.send_response(503)
            self.end_headers()
            return
        out = json.dumps({"events_received": len(body["data"])}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class CapiServer(LoopbackServer):
    """A Conversions API endpoint that answers 503 to the first ``fail_first`` batches, then accepts."""

    handler_cls = _CapiHandler

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.received: list[dict] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()


def test_sink_posts_batches_to_a_configured_endpoint_and_retries_a_503(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("META_CAPI_ACCESS_TOKEN", "test-token")
    with CapiServer(fail_first=1) as server:
        sink = resolved(
            from_env(
                MetaCapiSink,
                output_dir=str(tmp_path),
                endpoint=f"{server.url}/v21.0/123/events",
                batch_size=2,
            )
        )
        report = sink.send([{"event_name": "Lead", "event_id": str(i)} for i in range(5)])
    assert report.acknowledged == 5 and report.attempted == 5
    assert report.requests == 4  # three batches, one retried after the 503
    assert [len(b["data"]) for b in server.received] == [2, 2, 1]
    assert all("access_token=test-token" in p for p in server.paths)


def test_the_command_sends_capi_events_only_when_the_endpoint_and_token_are_set(
    monkeypatch, tmp_path
) -> None:
    """``simulate funnel`` materializes funnel_capi_events (a step of its run) only for a configured endpoint."""
    import dagster as dg

    from simulation_assets.cli import main

    args = ["funnel", "--impressions", "20000", "--days", "1", "--replicates", "100", "--seed", "4"]
    monkeypatch.delenv("META_CAPI_ENDPOINT", raising=False)
    monkeypatch.delenv("META_CAPI_ACCESS_TOKEN", raising=False)
    assert main([*args, "--output", str(tmp_path / "off")]) == 0
    with CapiServer() as server:
        monkeypatch.setenv("META_CAPI_ENDPOINT", f"{server.url}/v21.0/123/events")
        monkeypatch.setenv("META_CAPI_ACCESS_TOKEN", "test-token")
        assert main([*args, "--output", str(tmp_path / "on")]) == 0
    instance = dg.DagsterInstance.get()
    materialized = [
        {
            e.dagster_event.asset_key.to_user_string()
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        }
        for run in sorted(instance.get_runs(), key=lambda r: r.run_id)
    ]
    runs = {("funnel_capi_events" in m) for m in materialized}
    assert runs == {False, True} and len(materialized) == 2
    sent = sum(len(b["data"]) for b in server.received)
    assert sent > 0 and all("access_token=test-token" in p for p in server.paths)
