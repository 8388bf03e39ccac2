"""Entry point shared by the four `python -m services.<name>` commands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from faststream import FastStream

from services.common.settings import Settings


def run_service(create_app: Callable[[Settings], FastStream]) -> None:
    """Build the app from the environment's settings and run it until SIGINT/SIGTERM."""
    asyncio.run(create_app(Settings()).run())
