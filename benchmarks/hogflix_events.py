"""HogFlix events: generated per second, and delivered per second to a loopback PostHog-compatible /batch/.

Side by side in one run:
  generation  vectorized ``session_events`` (session plan -> full event table with every property, uuids
              included, in memory) vs a per-event Python loop building lighter rows. Measured in this
              one process, repeated; the per-core figure is events per CPU-second of the process
              (all its threads), so it does not depend on how many cores Polars may use.
  ids         vectorized UUIDv5 (``event_uuids``, SHA-1 in DuckDB) vs the row-by-row hashlib reference
  delivery    this project's sink (confirmed gzip batches, parallel workers) vs the stock ``posthog``
              client, both to the same loopback server running in its own process (it inflates and
              parses every body and checks every uuid); with 0 % and 10 % injected 429/503.
Every delivery is verified: the server counts distinct uuids (zero loss, zero duplicates).

Run: .venv/bin/python benchmarks/hogflix_events.py [--pool 40000] [--deliver 200000] [--repeat 5]
Writes benchmarks/results/hogflix_events.json.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import multiprocessing as mp
import os
import random
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulation_assets.core.hogflix.burn_in import initial_state  # noqa: E402
from simulation_assets.core.hogflix.config import LifecycleConfig  # noqa: E402
from simulation_assets.core.hogflix.events import session_events  # noqa: E402
from simulation_assets.core.hogflix.frames import to_frame  # noqa: E402
from simulation_assets.core.hogflix.ids import event_uuid, event_uuids  # noqa: E402
from simulation_assets.core.hogflix.lifecycle import step_day  # noqa: E402
from simulation_assets.core.hogflix.persona_state import day_number  # noqa: E402
from simulation_assets.core.hogflix.sessions import day_sessions  # noqa: E402
from simulation_assets.core.hogflix.traffic_config import TrafficConfig  # noqa: E402
from simulation_assets.sinks.posthog_events import PostHogEvents  # noqa: E402

SEED = 42


# --------------------------------------------------------------------------- loopback server (own process)


def _serve(port_queue: mp.Queue, failure_rate: float) -> None:
    """A PostHog-compatible /batch/ receiver: inflates, parses the whole JSON body, checks every uuid.

    Uses the fastest decoders installed (ISA-L gzip, orjson), as a real ingestion tier would;
    reports its own CPU time so the benchmark can tell client and server cost apart.
    """
    try:
        from isal.igzip import decompress as inflate
    except ImportError:
        inflate = gzip.decompress
    try:
        from orjson import loads
    except ImportError:
        loads = json.loads
    # Parsed bodies hold no reference cycles: reference counting frees them, and the cyclic collector
    # would only rescan millions of fresh dicts (~20 % of the parse time).
    gc.disable()
    seen: set[str] = set()
    stats = {"received": 0, "requests": 0, "injected": 0, "bytes": 0, "bad_uuids": 0}
    rng = random.Random(1)
    lock = threading.Lock()

    from simulation_assets_tests.loopback import JsonHandler

    # JsonHandler sends headers and body without TCP_NODELAY's wait: otherwise the body waits for the
    # client's delayed ACK (~40 ms per request on Linux), which would measure the kernel, not the sink.
    class Handler(JsonHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            self._reply(200, {**stats, "distinct": len(seen), "server_cpu_s": time.process_time()})

        def do_POST(self) -> None:  # noqa: N802
            raw = self._body()
            with lock:
                stats["requests"] += 1
                stats["bytes"] += len(raw)
                fail = rng.random() < failure_rate
                if fail:
                    stats["injected"] += 1
                    status = rng.choice((429, 503))
            if fail:
                self._reply(status, {"error": "injected"})
                return
            if raw[:3] == b"\x1f\x8b\x08":  # capture sniffs the gzip magic bytes
                raw = inflate(raw)
            body = loads(raw)
            batch = body["batch"] if isinstance(body, dict) else body
            uuids = [ev["uuid"] for ev in batch]
            bad = sum(len(u) != 36 or u[14] != "5" for u in uuids)  # canonical UUIDv5 strings only
            with lock:
                seen.update(uuids)
                stats["received"] += len(batch)
                stats["bad_uuids"] += bad
            self._reply(200, {"status": 1})

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
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
    """Return the persona table of one day at ``pool`` personas (the input of the session plan)."""
    cfg = LifecycleConfig(persona_pool=pool)
    state = initial_state(cfg, SEED, day_number(__import__("datetime").date(2026, 3, 1)), burn_in_days=20)
    state = step_day(state, state.day + 1, cfg, SEED)
    return to_frame(state)


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


def _timed(fn, *args):  # noqa: ANN001, ANN202
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - t, time.process_time() - c


def bench_generation(pool: int, repeat: int) -> dict:
    cfg = TrafficConfig()
    personas = big_day(pool)
    # The first full-size run also pays for fresh memory (page faults); it is reported on its own.
    first, _, first_cpu = _timed(session_events, day_sessions(personas, SEED, cfg), SEED, cfg, "bench")
    runs = []
    for _ in range(repeat):
        sessions, plan_s, plan_cpu = _timed(day_sessions, personas, SEED, cfg)
        events, vec_s, vec_cpu = _timed(session_events, sessions, SEED, cfg, "bench")
        runs.append((events.height / vec_s, events.height / vec_cpu, events.height / (vec_cpu + plan_cpu)))
    wall = sorted(r[0] for r in runs)
    cpu = sorted(r[1] for r in runs)
    with_plan = sorted(r[2] for r in runs)
    sample = sessions.head(max(1, sessions.height // 20))
    loop, loop_s, loop_cpu = _timed(python_loop_events, sample)
    n = 1_000_000
    persona, ts, seq = np.arange(n) % 997, 1_767_225_600_000 + np.arange(n) * 37, np.arange(n) % 60
    _, ids_s, _ = _timed(event_uuids, SEED, persona, ts, seq)
    m = 50_000
    _, ref_s, _ = _timed(
        lambda: [event_uuid(SEED, int(p), int(x), int(q)) for p, x, q in zip(persona[:m], ts[:m], seq[:m])]
    )
    median = repeat // 2
    return {
        "pool": pool,
        "sessions": sessions.height,
        "events": events.height,
        "events_per_session": round(events.height / sessions.height, 1),
        "repeat": repeat,
        "events_per_cpu_s_median": round(cpu[median]),
        "events_per_cpu_s_min": round(cpu[0]),
        "events_per_cpu_s_max": round(cpu[-1]),
        "events_per_s_wall_median": round(wall[median]),
        "events_per_cpu_s_first_run": round(first.height / first_cpu),
        "events_per_cpu_s_including_session_plan_median": round(with_plan[median]),
        "python_loop_events_per_s": round(len(loop) / loop_s),
        "python_loop_events_per_cpu_s": round(len(loop) / loop_cpu),
        "generation_speedup_per_cpu_s": round(cpu[median] / (len(loop) / loop_cpu), 1),
        "uuid5_vectorized_per_s": round(n / ids_s),
        "uuid5_reference_loop_per_s": round(m / ref_s),
        "_events": events,
    }


# --------------------------------------------------------------------------- delivery


def bench_sink(events: pl.DataFrame, failure_rate: float, concurrency: int, batch_size: int) -> dict:
    server = LoopbackPostHog(failure_rate)
    try:
        os.environ["PH_PROJECT_API_KEY"] = "phc_benchmark"
        sink = PostHogEvents(mode="posthog", host=server.url, api_key="phc_benchmark", batch_size=batch_size, backoff_seconds=0.01,
                             max_backoff_seconds=0.05, historical_migration="always", concurrency=concurrency)  # fmt: skip
        server_cpu = server.stats()["server_cpu_s"]
        t, c = time.perf_counter(), time.process_time()
        report = sink.deliver(events)
        seconds, client_cpu = time.perf_counter() - t, time.process_time() - c
        stats = server.stats()
    finally:
        server.close()
    return {
        "events": events.height,
        "failure_rate": failure_rate,
        "concurrency": concurrency,
        "batch_size": batch_size,
        "events_per_s": round(events.height / seconds),
        "seconds": round(seconds, 2),
        "client_cpu_s": round(client_cpu, 2),
        "server_cpu_s": round(stats["server_cpu_s"] - server_cpu, 2),
        "requests": stats["requests"],
        "retries": report.retries,
        "injected_failures": stats["injected"],
        "gzip_mb_sent": round(stats["bytes"] / 1e6, 1),
        "distinct_received": stats["distinct"],
        "bad_uuids": stats["bad_uuids"],
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


def _median(rows: list[dict], key: str) -> float:
    return sorted(r[key] for r in rows)[len(rows) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=40_000, help="persona pool of the generated day")
    parser.add_argument("--repeat", type=int, default=5, help="generation runs (median reported)")
    parser.add_argument("--deliver", type=int, default=200_000, help="events sent to the loopback server")
    parser.add_argument("--deliver-repeat", type=int, default=3, help="sink runs per failure rate (median)")
    parser.add_argument(
        "--client-events", type=int, default=50_000, help="events sent with the posthog client"
    )
    parser.add_argument("--concurrency", type=int, default=PostHogEvents().concurrency,
                        help="sink workers (batches in flight)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=PostHogEvents().batch_size, help="events per batch")
    args = parser.parse_args()

    gen = bench_generation(args.pool, max(1, args.repeat))
    events = gen.pop("_events")
    print(f"generation: {gen['events']:,} events from {gen['sessions']:,} sessions (pool {gen['pool']:,}), "
          f"single process, median of {gen['repeat']} runs")  # fmt: skip
    print(f"  vectorized  {gen['events_per_cpu_s_median']:>12,} events per CPU-second = per core "
          f"(min {gen['events_per_cpu_s_min']:,}, max {gen['events_per_cpu_s_max']:,}); "
          f"{gen['events_per_s_wall_median']:,} events/s wall")  # fmt: skip
    print(
        f"  first run in the process (fresh memory): {gen['events_per_cpu_s_first_run']:,} events per CPU-second"
    )
    print(
        f"  incl. session plan {gen['events_per_cpu_s_including_session_plan_median']:,} events per CPU-second"
    )
    print(f"  python loop {gen['python_loop_events_per_cpu_s']:>12,} events per CPU-second"
          f"   -> {gen['generation_speedup_per_cpu_s']}x")  # fmt: skip
    print(
        f"  uuid5: vectorized {gen['uuid5_vectorized_per_s']:,}/s vs reference loop {gen['uuid5_reference_loop_per_s']:,}/s"
    )
    while events.height < args.deliver:
        events = pl.concat(
            [events, events.with_columns(pl.col("uuid").str.slice(0, 30) + pl.lit(f"{events.height:06x}"))]
        )
    sample = events.head(args.deliver)
    delivery = []
    for rate in (0.0, 0.10):
        runs = [
            bench_sink(sample, rate, args.concurrency, args.batch_size)
            for _ in range(max(1, args.deliver_repeat))
        ]
        for d in runs:
            print(f"sink  failure {d['failure_rate']:.0%}: {d['events_per_s']:>8,} events/s, retries {d['retries']}, "
                  f"lost {d['lost']}, duplicates {d['duplicates_delivered']}, bad uuids {d['bad_uuids']} "
                  f"(client {d['client_cpu_s']} CPU-s, server {d['server_cpu_s']} CPU-s, {d['seconds']} s)")  # fmt: skip
        delivery.append({
            "failure_rate": rate,
            "events_per_s_median": _median(runs, "events_per_s"),
            "lost_total": sum(r["lost"] for r in runs),
            "duplicates_total": sum(r["duplicates_delivered"] for r in runs),
            "runs": runs,
        })  # fmt: skip
    client = [bench_posthog_client(sample.head(args.client_events), rate) for rate in (0.0, 0.10)]
    for c in client:
        print(f"posthog client failure {c['failure_rate']:.0%}: {c['events_per_s']:>8,} events/s, "
              f"lost {c['lost']} (dropped {c['dropped_at_enqueue']}, failed batches {c['failed_batches_reported']})")  # fmt: skip
    ratio = delivery[0]["events_per_s_median"] / max(1, client[0]["events_per_s"])
    print(f"sink / posthog client throughput (0 % failures): {ratio:.1f}x")
    targets = {
        "generation_per_core_ge_1M": gen["events_per_cpu_s_median"] >= 1_000_000,
        "delivery_ge_30k_0pct": delivery[0]["events_per_s_median"] >= 30_000,
        "delivery_ge_30k_10pct": delivery[1]["events_per_s_median"] >= 30_000,
        "zero_loss_zero_duplicates": all(
            d["lost_total"] == 0 and d["duplicates_total"] == 0 for d in delivery
        ),
    }
    for name, ok in targets.items():
        print(f"target {name}: {'met' if ok else 'NOT met'}")
    out = Path(__file__).parent / "results" / "hogflix_events.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"generation": gen, "sink": delivery, "posthog_client": client,
                               "sink_vs_client": round(ratio, 2), "targets": targets}, indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
