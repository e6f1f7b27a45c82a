"""The seed's integrations: Stripe events to a Slack-compatible webhook, analyses to W&B (offline)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulation_assets.core.power_users.stripe_events import slack_message, stripe_events
from simulation_assets.sinks.local_store import LocalParquetStore
from simulation_assets.sinks.power_users_client import PowerUserTarget
from simulation_assets.sinks.power_users_notify import StripeEventWebhook
from simulation_assets.sinks.power_users_wandb import WandbAnalysisLog
from simulation_assets.target.server import LocalTarget
from simulation_assets_tests.power_users.wandb_file import history_rows

# a group of its own (a second reference target on another worker): the Dagster and CLI tests
# take about as long as the rest of the power-user tests together
pytestmark = pytest.mark.xdist_group("power_users_cli")


def test_a_default_run_produces_the_four_stripe_events(default_run):
    events = stripe_events(default_run[0].frames["requests"])
    got = sorted(zip(events["event"], events["user"], events["amount_usd"]))
    assert got == [
        ("checkout.session.completed", "First-Time-Investor-Frank", 69.0),
        ("checkout.session.completed", "Portfolio-Manager-Paula", 149.0),
        ("customer.subscription.deleted", "Business-Development-Ben", 0.0),
        ("invoice.payment_failed", "First-Time-Investor-Frank", 0.0),
        ("invoice.payment_succeeded", "First-Time-Investor-Frank", 69.0),
        ("invoice.payment_succeeded", "Portfolio-Manager-Paula", 149.0),
    ]
    message = slack_message(events.filter(events["event"] == "invoice.payment_failed").row(0, named=True))
    assert message["text"].startswith("⚠️ PropIQ Payment failed: First-Time-Investor-Frank")
    assert message["blocks"][0]["type"] == "section" and message["blocks"][0]["text"]["type"] == "mrkdwn"


class _Receiver:
    """A loopback Slack-compatible webhook: records payloads, answers 503 to the first ``fail`` posts."""

    def __init__(self, fail: int = 0, status: int = 200) -> None:
        self.payloads: list[dict] = []
        self.fail, self.status, self.calls = fail, status, 0

    def app(self) -> Starlette:
        async def hook(request: Request) -> JSONResponse:
            self.calls += 1
            if self.calls <= self.fail:
                return JSONResponse({"error": "try later"}, status_code=503)
            if self.status != 200:
                return JSONResponse({"error": "invalid_payload"}, status_code=self.status)
            self.payloads.append(await request.json())
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/hooks/stripe", hook, methods=["POST"])])


def _materialize(reference_target, personas: list[str], day: str, **resources) -> dg.ExecuteInProcessResult:
    from simulation_assets.defs.power_users import build_defs, persona_day_key

    keys = [persona_day_key(p, day) for p in personas]
    extent = (
        {"partition_key": keys[0]}
        if len(keys) == 1
        else {
            "tags": {
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            }
        }
    )
    return dg.materialize(
        [build_defs().get_assets_def("power_user_runs")],
        resources={
            "power_users_target": PowerUserTarget(base_url=reference_target.base_url),
            "store": LocalParquetStore(),
            "power_users_webhook": StripeEventWebhook(),
            "power_users_wandb": WandbAnalysisLog(),
            **resources,
        },
        run_config={"ops": {"power_user_runs": {"config": {"follow_rhythm": False}}}},
        **extent,
    )


def test_stripe_events_reach_a_loopback_webhook_through_a_retry(reference_target):
    receiver = _Receiver(fail=1)
    with LocalTarget(receiver.app()) as hook:
        webhook = StripeEventWebhook(url=f"{hook.base_url}/hooks/stripe", per_second=50, backoff_seconds=0.01)
        result = _materialize(
            reference_target,
            ["Real-Estate-Agent-Rita", "Weekend-Warrior-Will", "Business-Development-Ben"],
            "2026-02-11",
            power_users_webhook=webhook,
        )
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["stripe_events"].value == 1 and meta["webhook_notifications"].value == 1
    assert receiver.calls == 2  # a 503, then the retry delivered it
    assert [p["text"] for p in receiver.payloads] == [
        "📉 PropIQ Subscription canceled: Business-Development-Ben (free)"
    ]


def test_a_webhook_that_refuses_is_reported_without_failing_the_run(reference_target):
    receiver = _Receiver(status=400)
    with LocalTarget(receiver.app()) as hook:
        webhook = StripeEventWebhook(url=f"{hook.base_url}/hooks/stripe", per_second=50)
        result = _materialize(
            reference_target, ["First-Time-Investor-Frank"], "2026-02-12", power_users_webhook=webhook
        )
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["stripe_events"].value == 3 and meta["webhook_notifications"].value == 0
    assert "HTTP 400" in meta["webhook_error"].value and receiver.calls == 1  # a refusal is not retried


@pytest.mark.slow  # ~10 s on a quiet machine, 20-30 s under CI load
def test_every_analysis_is_logged_to_an_offline_wandb_run(reference_target, monkeypatch, tmp_path: Path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    log = WandbAnalysisLog(enabled=True, dir=str(tmp_path / "wandb"))
    assert log.resolved_mode() == "offline"
    result = _materialize(reference_target, ["Real-Estate-Agent-Rita"], "2026-02-13", power_users_wandb=log)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["wandb_mode"].value == "offline"
    folder = Path(meta["wandb_run"].value)
    assert folder.name.startswith("offline-run-") and folder.is_relative_to(tmp_path)
    rows = history_rows(next(folder.glob("run-*.wandb")))
    analyses = LocalParquetStore().read("power_users/requests/2026-02-13", "Real-Estate-Agent-Rita")
    answered = analyses.filter((analyses["meter"] == "analysis") & (analyses["status"] == 200))
    assert len(rows) == answered.height > 5
    first = rows[0]
    assert {
        "user_tier",
        "property_address",
        "analysis_cost",
        "tokens_used",
        "deal_score",
        "session_id",
    } <= set(first)
    assert (
        first["user_tier"] == "pro"
        and 0.0005 < first["analysis_cost"] < 0.002
        and first["tokens_used"] > 1900
    )
    assert [r["property_address"] for r in rows] == answered["property_address"].to_list()


def test_cleanup_of_the_reference_target_counts_first_and_spares_real_users(reference_target, capsys):
    import httpx

    from simulation_assets.cli import main

    with httpx.Client(base_url=reference_target.base_url) as client:
        for who in ("a@simulated.propiq.test", "b@simulated.propiq.test"):
            client.post("/sim/users/reset", json={"email": who, "password": "pw", "tier": "pro"})
        client.post("/auth/signup", json={"email": "someone@example.com", "password": "pw", "user_id": "u9"})
        before = client.post("/sim/users/cleanup", json={"dry_run": True}).json()
    assert before["matched"] >= 2 and before["kept"] >= 1
    assert main(["power-users-cleanup", "--base-url", reference_target.base_url]) == 0
    assert f"{before['matched']} simulated users" in capsys.readouterr().out
    with httpx.Client(base_url=reference_target.base_url) as client:
        assert (
            client.post("/sim/users/cleanup", json={"dry_run": True}).json()["matched"] == before["matched"]
        )
    assert main(["power-users-cleanup", "--base-url", reference_target.base_url, "--delete"]) == 0
    with httpx.Client(base_url=reference_target.base_url) as client:
        after = client.post("/sim/users/cleanup", json={"dry_run": True}).json()
        assert after["matched"] == 0 and after["kept"] == before["kept"]
        login = client.post("/auth/login", json={"email": "someone@example.com", "password": "pw"})
        assert login.status_code == 200  # the real user is still there


@pytest.mark.postgres
def test_cleanup_in_a_postgres_database_deletes_only_synthetic_users(postgres_dsn):
    import psycopg

    from simulation_assets.sinks.power_users_cleanup import TargetUserCleanup

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL)")
        conn.execute(
            "INSERT INTO users (email) VALUES ('paula.portfolio@simulated.propiq.test'), "
            "('Priya.Paula.007@SIMULATED.PROPIQ.TEST'), ('ana@example.com'), "
            "('x@simulated.propiq.test.evil.com'), ('simulated.propiq.test@example.com')"
        )
    cleanup = TargetUserCleanup(dsn=postgres_dsn)
    dry = cleanup.clean(dry_run=True)
    assert (dry.matched, dry.deleted, dry.kept) == (2, 0, 3)
    done = cleanup.clean(dry_run=False)
    assert (done.matched, done.deleted) == (2, 2)
    with psycopg.connect(postgres_dsn) as conn:
        left = sorted(r[0] for r in conn.execute("SELECT email FROM users"))
    assert left == [
        "ana@example.com",
        "simulated.propiq.test@example.com",
        "x@simulated.propiq.test.evil.com",
    ]
    with pytest.raises(ValueError, match="table must be a plain SQL identifier"):
        TargetUserCleanup(dsn=postgres_dsn, table="users; DROP TABLE users").clean()
