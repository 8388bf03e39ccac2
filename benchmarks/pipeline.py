"""Governed pipeline vs a naive aiokafka baseline, on the local broker, in one run.

    .venv/bin/python benchmarks/pipeline.py [--n 1000] [--rate 500] [--db sqlite|postgres|both] \
        [--json [PATH]] [--profile DIR]

Per database: (1) governed burst of N, (2) baseline burst of N, (3) both paced at --rate for N.
Reports completed requests/s, p50/p99 submit -> executed latency, and the governed services' RSS
while idle. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra import Infra, database, infrastructure, pg_counters, postgres_answers
from load import latencies_ms, open_producer, open_reader, percentile, requests, send
from pipelines import Baseline, Governed, Rss, cpu_seconds, wait_completed

from services.store.migrate import migrate

SCENARIOS = [("governed", "burst"), ("baseline", "burst"), ("governed", "paced"), ("baseline", "paced")]
IDLE_SETTLE_S = 4.0
AFTER_LOAD_S = 3.0


def start_profilers(pids: dict[str, int], out: Path, tag: str) -> list[subprocess.Popen[bytes]]:
    """py-spy (if installed next to this python) on each process, collapsed stacks, until stopped."""
    spy = Path(sys.executable).with_name("py-spy")
    out.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                str(spy),
                *["record", "--nonblocking", "--format", "raw", "--rate", "200", "-o"],
                str(out / f"{tag}-{name}.txt"),
            ]
            + ["-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


def stop_profilers(spies: list[subprocess.Popen[bytes]]) -> None:
    for spy in spies:
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)
    for spy in spies:
        try:
            spy.wait(15)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)
    spies.clear()


async def run_scenario(
    infra: Infra, db: str, url: str, data_dir: Path, kind: str, mode: str, args: argparse.Namespace, rss: Rss
) -> dict[str, Any]:
    """One scenario; on PostgreSQL also the database work per request (server counters, whole scenario)."""
    before = await pg_counters(url)
    result = await _scenario(infra, db, url, data_dir, kind, mode, args, rss)
    if before is not None:
        await asyncio.sleep(0.5)  # backends flush their stats when they exit (the pipeline just stopped)
        after = await pg_counters(url) or {}
        result["db_per_request"] = {
            k: round((after[k] - v) / (args.n + args.warmup), 1) for k, v in before.items()
        }
    return result


async def _scenario(
    infra: Infra, db: str, url: str, data_dir: Path, kind: str, mode: str, args: argparse.Namespace, rss: Rss
) -> dict[str, Any]:
    pipeline: Governed | Baseline = (
        Governed(infra.kafka, infra.redis_url, url, data_dir)
        if kind == "governed"
        else Baseline(infra.kafka, url, data_dir)
    )
    tag = f"{pipeline.prefix.rstrip('.')}-{mode}"
    result: dict[str, Any] = {
        "pipeline": kind,
        "mode": mode,
        "db": db,
        "n": args.n,
        "rate": args.rate if mode == "paced" else None,
    }
    producer = reader = None
    spies: list[subprocess.Popen[bytes]] = []
    try:
        started = time.monotonic()
        await pipeline.start()
        result["startup_s"] = round(time.monotonic() - started, 2)
        await asyncio.sleep(IDLE_SETTLE_S / 2)
        idle0 = cpu_seconds(pipeline.pids)
        await asyncio.sleep(IDLE_SETTLE_S / 2)
        result["idle_cpu_pct"] = {
            k: round(100 * (v - idle0.get(k, 0.0)) / (IDLE_SETTLE_S / 2), 1)
            for k, v in cpu_seconds(pipeline.pids).items()
        }
        result["rss_idle_before_mb"] = {k: round(v, 1) for k, v in rss.take(pipeline.pids).items()}
        producer = await open_producer(infra.kafka)
        reader = await open_reader(infra.kafka, pipeline.executed, pipeline.executed_type)

        # Warm-up (connections, caches, first-batch imports); not measured.
        warm = requests(f"{tag}-warm", args.warmup, max(1, args.warmup // 3))
        await send(producer, pipeline.source, warm, None)
        if not await reader.wait_count({r for r, _, _ in warm}, args.timeout):
            raise RuntimeError(f"warm-up not executed (other events: {reader.other})")
        await wait_completed(pipeline, args.warmup, args.timeout)

        items = requests(tag, args.n, max(1, args.n // 3))
        if args.profile and mode == "burst":
            spies = start_profilers(pipeline.pids, Path(args.profile), f"{db}-{kind}")
        procs = {**pipeline.pids, "broker": infra.broker_pid}
        cpu0 = cpu_seconds(procs)
        t0 = time.monotonic()
        sent = await send(producer, pipeline.source, items, args.rate if mode == "paced" else None)
        result["send_s"] = round(time.monotonic() - t0, 3)
        if not await reader.wait_count(set(sent), args.timeout):
            raise RuntimeError(
                f"only {sum(r in reader.seen for r in sent)}/{args.n} executed (other events: {reader.other})"
            )
        done = await wait_completed(pipeline, args.warmup + args.n, args.timeout)
        stop_profilers(spies)
        cpu = {k: round(v - cpu0.get(k, 0.0), 2) for k, v in cpu_seconds(procs).items()}
        lat = latencies_ms(sent, reader.seen)
        result.update(
            {
                "elapsed_s": round(done - t0, 3),
                "completed_per_s": round(args.n / (done - t0), 1),
                "p50_ms": round(percentile(lat, 50), 1),
                "p99_ms": round(percentile(lat, 99), 1),
                "max_ms": round(max(lat), 1),
                "other_events": dict(reader.other),
                "cpu_s": cpu,
                "cpu_ms_per_request": round(
                    1000 * sum(v for k, v in cpu.items() if k != "broker") / args.n, 1
                ),
            }
        )
        await asyncio.sleep(AFTER_LOAD_S)
        result["rss_after_load_mb"] = {k: round(v, 1) for k, v in rss.take(pipeline.pids).items()}
        return result
    finally:
        stop_profilers(spies)
        if reader is not None:
            await reader.stop()
        if producer is not None:
            await producer.stop()
        await pipeline.stop()


async def run_db(infra: Infra, db: str, data_dir: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    async with database(db, data_dir) as url:
        await migrate(url)
        for kind, mode in SCENARIOS:
            rss = Rss()
            print(f"[{db}] {kind} {mode} ...", file=sys.stderr, flush=True)
            result = await run_scenario(infra, db, url, data_dir, kind, mode, args, rss)
            print(
                f"[{db}] {kind} {mode}: {result.get('completed_per_s')} req/s, "
                f"p50 {result.get('p50_ms')} ms, p99 {result.get('p99_ms')} ms",
                file=sys.stderr,
                flush=True,
            )
            results.append(result)
    return results


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios governed/baseline per database, and the governed services' max idle RSS."""
    out: dict[str, Any] = {}
    for db in sorted({r["db"] for r in results}):
        pick = {(r["pipeline"], r["mode"]): r for r in results if r["db"] == db}
        gb, bb = pick[("governed", "burst")], pick[("baseline", "burst")]
        gp, bp = pick[("governed", "paced")], pick[("baseline", "paced")]
        idle = [
            mb
            for r in (gb, gp)
            for key in ("rss_idle_before_mb", "rss_after_load_mb")
            for mb in r.get(key, {}).values()
        ]
        out[db] = {
            "throughput_ratio": round(gb["completed_per_s"] / bb["completed_per_s"], 2),
            "paced_p99_ratio": round(gp["p99_ms"] / bp["p99_ms"], 2),
            "burst_p99_ratio": round(gb["p99_ms"] / bb["p99_ms"], 2),
            "governed_idle_rss_max_mb": round(max(idle), 1),
            "targets": {
                "throughput >= baseline": gb["completed_per_s"] >= bb["completed_per_s"],
                "paced p99 <= baseline": gp["p99_ms"] <= bp["p99_ms"],
                "idle RSS < 150 MB": max(idle) < 150,
            },
        }
    return out


def table(results: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = [f"{'scenario':<18} {'db':<9} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9} {'CPU ms/req':>11}"]
    for r in results:
        name = f"{r['pipeline']} {r['mode']}" + (f"@{r['rate']:g}" if r["rate"] else "")
        lines.append(
            f"{name:<18} {r['db']:<9} {r['completed_per_s']:>8.0f} {r['p50_ms']:>9.1f} {r['p99_ms']:>9.1f} "
            f"{r['cpu_ms_per_request']:>11.1f}"
        )
    for db, s in summary.items():
        lines.append(
            f"{db}: governed/baseline throughput {s['throughput_ratio']}x, "
            f"paced p99 {s['paced_p99_ratio']}x, burst p99 {s['burst_p99_ratio']}x; "
            f"governed RSS max {s['governed_idle_rss_max_mb']} MB; "
            + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in s["targets"].items())
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if "postgres" in dbs and not await postgres_answers():
        if args.db == "postgres":
            print("no PostgreSQL answers (set MUTATOR_BENCH_POSTGRES)", file=sys.stderr)
            return 2
        print("no PostgreSQL answers; running SQLite only (set MUTATOR_BENCH_POSTGRES)", file=sys.stderr)
        dbs = ["sqlite"]
    data_dir = Path(tempfile.mkdtemp(prefix="mutator-bench-"))
    (data_dir / "logs").mkdir()
    results: list[dict[str, Any]] = []
    ok = False
    started = time.monotonic()
    try:
        with infrastructure(data_dir) as infra:
            for db in dbs:
                results += await run_db(infra, db, data_dir, args)
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"data and logs kept in {data_dir}", file=sys.stderr)
    summary = summarize(results)
    print(table(results, summary))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "redis": infra.redis_kind,
        },
        "n": args.n,
        "rate": args.rate,
        "warmup": args.warmup,
        "total_s": round(time.monotonic() - started, 1),
        "results": results,
        "summary": summary,
    }
    if args.json:
        text = json.dumps(report, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="requests per scenario (default 1000)")
    parser.add_argument(
        "--rate", type=float, default=500, help="paced scenario rate, requests/s (default 500)"
    )
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgres", "both"],
        default="both",
        help="database(s); postgres server from MUTATOR_BENCH_POSTGRES (default both)",
    )
    parser.add_argument(
        "--json", nargs="?", const="-", help="also write the results as JSON (to PATH, or stdout)"
    )
    parser.add_argument("--warmup", type=int, default=60, help="unmeasured requests before each scenario")
    parser.add_argument("--timeout", type=float, default=120, help="bound of every wait, seconds")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="py-spy the processes during the burst runs; collapsed stacks into DIR",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data dir (SQLite file, service logs)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
