"""Publish a MutationRequested with nothing but aiokafka: the contract is plain JSON, key = state_id.

    python examples/produce.py [BOOTSTRAP]      # default 127.0.0.1:19092 (`mutator dev up`)
"""

import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer


async def main(bootstrap: str) -> None:
    request_id = f"example-{uuid.uuid4().hex[:8]}"
    message = {
        "message_id": str(uuid.uuid4()),
        "message_type": "MutationRequested",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "request_id": request_id,
        "state_id": "flags/example",
        "state_type": "feature-flags",
        "mutation_type": "json.merge",
        "payload": {"merge": {"dark_mode": {"enabled": True}}},
        "requester": {"actor_id": "example-producer", "actor_type": "service"},
    }
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("mutation.requests.v1", json.dumps(message).encode(),
                                     key=message["state_id"].encode())
    finally:
        await producer.stop()
    print(f"published {request_id}; try: mutator show {request_id}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:19092"))
