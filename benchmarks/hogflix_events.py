"""HogFlix events: generated per second, and delivered per second to a loopback PostHog-compatible /batch/.

Side by side in one run:
  generation  vectorized ``session_events`` vs a per-event Python loop building the same kind of rows
  ids         vectorized UUIDv5 (``event_uuids``) vs ``uuid.uuid5`` in a loop
  delivery    this project's sink (confirmed batches, gzip) vs the stock ``posthog`` client, both to the
              same loopback server running in its own process; with 0 % and 10 % injected 429/503.
Every delivery is verified: the server counts distinct uuids (zero loss, zero duplicates).

Run: .venv/bin/python benchmarks/hogflix_events.py [--pool 40000] [--deliver 200000]
Writes benchmarks/results/hogflix_events.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import random
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulation_assets.core.hogflix.config import LifecycleConfig  # noqa: E402
from simulation_assets.core.hogflix.events import session_events  # noqa: E402
from simulation_assets.core.hogflix.frames import to_frame  # noqa: E402
from simulation_assets.core.hogflix.ids import event_uuid, event_uuids  # noqa: E402
from simulation_assets.core.hogflix.lifecycle import day_number, initial_state, step_day  # noqa: E402
from simulation_assets.core.hogflix.sessions import day_sessions  # noqa: E402
from simulation_assets.core.hogflix.traffic_config import TrafficConfig  # noqa: E402
from simulation_assets.sinks.posthog_events import PostHogEvents  # noqa: E402

SEED = 42


# --------------------------------------------------------------------------- loopback server (own process)


def _serve(port_queue: mp.Queue, failure_rate: float) -> None:
    seen: set[str] = set()
    stats = {"received": 0, "requests": 0, "injected": 0}
    rng = random.Random(1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._reply(200, {**stats, "distinct": len(seen)})

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            stats["requests"] += 1
            if self.path == "/reset":
                seen.clear()
                stats.update(received=0, requests=0, injected=0)
                self._reply(200, {})
                return
            if rng.random() < failure_rate:
                stats["injected"] += 1
                self._reply(rng.choice((429, 503)), {"error": "injected"})
                return
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            body = json.loads(raw)
            batch = body["batch"] if isinstance(body, dict) else body
            for ev in batch:
                seen.add(ev["uuid"])
            stats["received"] += len(batch)
            self._reply(200, {"status": 1})

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(httpd.server_address[1])
    httpd.serve_forever()


class LoopbackPostHog:
    def __init__(self, failure_rate: float) -> None:
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        self.proc = ctx.Process(target=_serve, args=(q, failure_rate), daemon=True)
        self.proc.start()
        self.url = f"http://127.0.0.1:{q.get(timeout=30)}"

    def stats(self) -> dict:
        import httpx

        return httpx.get(self.url + "/stats").json()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.join(5)


# --------------------------------------------------------------------------- generation


def big_day(pool: int) -> pl.DataFrame:
    cfg = LifecycleConfig(persona_pool=pool)
    state = initial_state(cfg, SEED, day_number(__import__("datetime").date(2026, 3, 1)), burn_in_days=20)
    state = step_day(state, state.day + 1, cfg, SEED)
    return day_sessions(to_frame(state), SEED, TrafficConfig())


def python_loop_events(sessions: pl.DataFrame) -> list[dict]:
    """The same kind of rows, one dict per event, built in a Python loop (the baseline)."""
    out = []
    g = random.Random(SEED)
    for s in sessions.iter_rows(named=True):
        t = s["session_start_at"].timestamp()
        seq = 0
        for k in range(s["listing_pages"]):
            for name in ("$pageview", "video_opened", "$pageleave", "$pageview", "$pageleave"):
                t += g.lognormvariate(2.5, 0.7)
                ms = int(t * 1000)
                out.append({
                    "uuid": str(event_uuid(SEED, s["persona_number"], ms, seq)), "event": name,
                    "distinct_id": s["distinct_id"], "timestamp": ms,
                    "properties": {"$session_id": s["session_id"], "$pathname": f"/browse/{k}",
                                   "state": s["state"], "plan": s["plan"], "is_synthetic": True},
                })  # fmt: skip
                seq += 1
            if k < s["videos"]:
                for m in range(10, 100, 10):
                    if m <= s["completion_percent"]:
                        t += 60
                        ms = int(t * 1000)
                        out.append({"uuid": str(event_uuid(SEED, s["persona_number"], ms, seq)),
                                    "event": "video_progress", "distinct_id": s["distinct_id"], "timestamp": ms,
                                    "properties": {"progress_percent": m, "$session_id": s["session_id"]}})  # fmt: skip
                        seq += 1
    return out


def bench_generation(pool: int) -> dict:
    cfg = TrafficConfig()
    sessions = big_day(pool)
    session_events(sessions.head(50), SEED, cfg, "warm")
    t, c = time.perf_counter(), time.process_time()
    events = session_events(sessions, SEED, cfg, "bench")
    vec_s, vec_cpu = time.perf_counter() - t, time.process_time() - c
    sample = sessions.head(max(1, sessions.height // 20))
    t, c = time.perf_counter(), time.process_time()
    loop = python_loop_events(sample)
    loop_s, loop_cpu = time.perf_counter() - t, time.process_time() - c
    vec_rate, loop_rate = events.height / vec_s, len(loop) / loop_s
    n = 1_000_000
    persona, ts, seq = np.arange(n) % 997, 1_767_225_600_000 + np.arange(n) * 37, np.arange(n) % 60
    t = time.perf_counter()
    event_uuids(SEED, persona, ts, seq)
    ids_vec = n / (time.perf_counter() - t)
    m = 100_000
    t = time.perf_counter()
    [uuid.uuid5(uuid.NAMESPACE_URL, f"{SEED}/{p}/{x}/{q}") for p, x, q in zip(persona[:m], ts[:m], seq[:m])]
    ids_loop = m / (time.perf_counter() - t)
    return {
        "pool": pool,
        "sessions": sessions.height,
        "events": events.height,
        "events_per_session": round(events.height / sessions.height, 1),
        "vectorized_events_per_s": round(vec_rate),
        "python_loop_events_per_s": round(loop_rate),
        "generation_speedup": round(vec_rate / loop_rate, 1),
        "vectorized_events_per_cpu_s": round(events.height / vec_cpu),
        "python_loop_events_per_cpu_s": round(len(loop) / loop_cpu),
        "uuid5_vectorized_per_s": round(ids_vec),
        "uuid5_python_loop_per_s": round(ids_loop),
        "_events": events,
    }


# --------------------------------------------------------------------------- delivery


def bench_sink(events: pl.DataFrame, failure_rate: float, concurrency: int) -> dict:
    server = LoopbackPostHog(failure_rate)
    try:
        os.environ["PH_PROJECT_API_KEY"] = "phc_benchmark"
        sink = PostHogEvents(mode="posthog", host=server.url, batch_size=1000, backoff_seconds=0.01,
                             max_backoff_seconds=0.05, historical_migration="always", concurrency=concurrency)  # fmt: skip
        t = time.perf_counter()
        report = sink.deliver(events)
        seconds = time.perf_counter() - t
        stats = server.stats()
    finally:
        server.close()
    return {
        "events": events.height,
        "failure_rate": failure_rate,
        "concurrency": concurrency,
        "events_per_s": round(events.height / seconds),
        "retries": report.retries,
        "distinct_received": stats["distinct"],
        "lost": events.height - stats["distinct"],
        "duplicates_delivered": stats["received"] - stats["distinct"],
    }


def bench_posthog_client(events: pl.DataFrame, failure_rate: float) -> dict:
    """The stock posthog client, queue sized to hold everything, gzip on, flushed and shut down."""
    from posthog import Client

    server = LoopbackPostHog(failure_rate)
    errors = []
    try:
        client = Client("phc_benchmark", host=server.url, gzip=True, max_queue_size=events.height + 10,
                        flush_at=1000, thread=2, on_error=lambda e, batch: errors.append(len(batch)),
                        historical_migration=True)  # fmt: skip
        rows = events.select(
            "uuid", "event", "distinct_id", "timestamp", "$session_id", "$pathname", "state", "plan"
        )
        t = time.perf_counter()
        dropped = 0
        for r in rows.iter_rows(named=True):
            ok = client.capture(r["event"], distinct_id=r["distinct_id"], timestamp=r["timestamp"], uuid=r["uuid"],
                                properties={"$session_id": r["$session_id"], "$pathname": r["$pathname"],
                                            "state": r["state"], "plan": r["plan"]})  # fmt: skip
            dropped += ok is None
        client.flush()
        client.shutdown()
        seconds = time.perf_counter() - t
        stats = server.stats()
    finally:
        server.close()
    return {
        "events": events.height,
        "failure_rate": failure_rate,
        "events_per_s": round(events.height / seconds),
        "dropped_at_enqueue": dropped,
        "failed_batches_reported": len(errors),
        "distinct_received": stats["distinct"],
        "lost": events.height - stats["distinct"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=40_000, help="persona pool of the generated day")
    parser.add_argument("--deliver", type=int, default=200_000, help="events sent to the loopback server")
    parser.add_argument(
        "--client-events", type=int, default=50_000, help="events sent with the posthog client"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="batches in flight in this project's sink")
    args = parser.parse_args()

    gen = bench_generation(args.pool)
    events = gen.pop("_events")
    print(f"generation: {gen['events']:,} events from {gen['sessions']:,} sessions (pool {gen['pool']:,})")
    print(
        f"  vectorized  {gen['vectorized_events_per_s']:>12,} events/s ({gen['vectorized_events_per_cpu_s']:,}/CPU-s)"
    )
    print(f"  python loop {gen['python_loop_events_per_s']:>12,} events/s ({gen['python_loop_events_per_cpu_s']:,}/CPU-s)"
          f"   -> {gen['generation_speedup']}x")  # fmt: skip
    print(
        f"  uuid5: vectorized {gen['uuid5_vectorized_per_s']:,}/s vs loop {gen['uuid5_python_loop_per_s']:,}/s"
    )
    while events.height < args.deliver:
        events = pl.concat(
            [events, events.with_columns(pl.col("uuid").str.slice(0, 30) + pl.lit(f"{events.height:06x}"))]
        )
    sample = events.head(args.deliver)
    delivery = [bench_sink(sample, rate, args.concurrency) for rate in (0.0, 0.10)]
    for d in delivery:
        print(f"sink  failure {d['failure_rate']:.0%}: {d['events_per_s']:>8,} events/s, retries {d['retries']}, "
              f"lost {d['lost']}, duplicates {d['duplicates_delivered']}")  # fmt: skip
    client = [bench_posthog_client(sample.head(args.client_events), rate) for rate in (0.0, 0.10)]
    for c in client:
        print(f"posthog client failure {c['failure_rate']:.0%}: {c['events_per_s']:>8,} events/s, "
              f"lost {c['lost']} (dropped {c['dropped_at_enqueue']}, failed batches {c['failed_batches_reported']})")  # fmt: skip
    ratio = delivery[0]["events_per_s"] / max(1, client[0]["events_per_s"])
    print(f"sink / posthog client throughput (0 % failures): {ratio:.1f}x")
    out = Path(__file__).parent / "results" / "hogflix_events.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"generation": gen, "sink": delivery, "posthog_client": client,
                               "sink_vs_client": round(ratio, 2)}, indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
