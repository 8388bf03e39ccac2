"""Generate the committed JSON Schemas and AsyncAPI document from the models.

Run `python -m contracts.export` after changing a contract; a test fails when they drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.catalog import CATALOG, all_messages

SCHEMA_DIR = Path(__file__).parent / "schemas"


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema of every message."""
    return {f"{m.__name__}.json": m.model_json_schema(mode="validation") for m in all_messages()}


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.0 document of the topics and their messages."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    components: dict[str, Any] = {}
    for topic, (direction, models) in CATALOG.items():
        name = topic.replace(".", "_").replace("-", "_")
        channels[name] = {
            "address": topic,
            "description": f"{direction}; Kafka key = state_id",
            "messages": {m.__name__: {"$ref": f"#/components/messages/{m.__name__}"} for m in models},
        }
        action = "receive" if direction in ("in", "internal") else "send"
        operations[f"{action}_{name}"] = {"action": action, "channel": {"$ref": f"#/channels/{name}"}}
        for m in models:
            components[m.__name__] = {
                "name": m.__name__,
                "title": m.__name__,
                "summary": (m.__doc__ or "").strip().splitlines()[0],
                "contentType": "application/json",
                "payload": {"$ref": f"./{m.__name__}.json"},
            }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Mutator", "version": "1.0.0", "description": "Governed mutations over Kafka"},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": components},
    }


def rendered() -> dict[str, str]:
    """File name -> exact committed text."""
    files = {name: json.dumps(schema, indent=2, sort_keys=True) + "\n" for name, schema in json_schemas().items()}
    files["asyncapi.json"] = json.dumps(asyncapi(), indent=2, sort_keys=True) + "\n"
    return files


def main() -> None:
    """Write every schema file."""
    SCHEMA_DIR.mkdir(exist_ok=True)
    for old in SCHEMA_DIR.glob("*.json"):
        old.unlink()
    for name, text in rendered().items():
        (SCHEMA_DIR / name).write_text(text)


if __name__ == "__main__":
    main()
