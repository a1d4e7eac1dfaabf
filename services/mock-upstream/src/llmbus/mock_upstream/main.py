"""Run the mock upstream on uvicorn."""

from __future__ import annotations

import logging
import sys

import uvicorn

from llmbus.mock_upstream.app import create_app
from llmbus.mock_upstream.settings import MockSettings

__all__ = ["main"]

log = logging.getLogger("llmbus.mock_upstream")


def main() -> int:
    settings = MockSettings.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mock-upstream %(levelname)s %(message)s")
    log.info("mock upstream (OpenAI-compatible) on http://%s:%d", settings.host, settings.port)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="asyncio" if sys.platform == "win32" else "uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
    return 0
