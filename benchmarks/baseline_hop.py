"""One hop of the naive baseline pipeline, run as its own process.

    python benchmarks/baseline_hop.py --bootstrap H:P --database URL --group G --source T --table TBL \
        [--sink T2]

aiokafka consumer (own group, earliest, fetch_max_wait_ms=10) -> for each message, one SQL
transaction inserting one row into this hop's table (engine from services.store.db.make_engine, so
SQLite gets WAL + BEGIN IMMEDIATE) -> send_and_wait to the next topic (if any). No domain logic,
no dedupe, offsets auto-committed. Prints READY once it holds partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from sqlalchemy import text

from services.store.db import make_engine

READY = "bench-hop-ready"


class _Ready(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, name: str) -> None:
        self.name, self.done = name, False

    async def on_partitions_revoked(self, revoked: object) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[object]) -> None:
        if assigned and not self.done:
            self.done = True
            print(f"{READY} {self.name}", flush=True)


async def run(args: argparse.Namespace) -> None:
    engine = make_engine(args.database)
    insert = text(
        f"INSERT INTO {args.table} (message_id, request_id, payload, recorded_at) VALUES (:m, :r, :p, :t)"
    )
    producer = None
    if args.sink:
        producer = AIOKafkaProducer(
            bootstrap_servers=args.bootstrap, acks="all", client_id=f"bench-{args.group}"
        )
        await producer.start()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        client_id=f"bench-{args.group}",
    )
    consumer.subscribe([args.source], listener=_Ready(args.group))
    await consumer.start()
    try:
        async for msg in consumer:
            doc = json.loads(msg.value)
            async with engine.begin() as conn:  # one transaction per message
                await conn.execute(
                    insert,
                    {
                        "m": doc["message_id"],
                        "r": doc["request_id"],
                        "p": msg.value.decode(),
                        "t": time.time(),
                    },
                )
            if producer is not None:
                await producer.send_and_wait(args.sink, msg.value, key=msg.key)
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--bootstrap", "--database", "--group", "--source", "--table"):
        parser.add_argument(name, required=True)
    parser.add_argument("--sink")
    args = parser.parse_args()

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await run(args)
        except asyncio.CancelledError:
            pass

    asyncio.run(guarded())


if __name__ == "__main__":
    main()
