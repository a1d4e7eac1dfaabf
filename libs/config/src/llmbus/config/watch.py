"""Reload the configuration on SIGHUP or when the file changes, without a restart.

A new file that does not load is refused: the reason is logged, one line per problem,
and the configuration in force stays. Services swap what they derive from the config
(catalog, providers, keys) in one assignment, so requests in flight keep what they
started with."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from llmbus.config.errors import ConfigError
from llmbus.config.loader import load_config
from llmbus.config.model import Config

__all__ = ["ConfigWatcher"]

log = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[float, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime, stat.st_size, stat.st_ino)


class ConfigWatcher:
    def __init__(
        self,
        path: str | Path,
        apply: Callable[[Config], Awaitable[None]],
        *,
        poll_interval: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.apply = apply
        self.poll_interval = poll_interval
        self.reloads = 0
        self.refusals = 0
        self._stamp = _stamp(self.path)
        self._wake = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self._wake.set)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                forced = self._wake.is_set()
                self._wake.clear()
                stamp = _stamp(self.path)
                if forced or (stamp is not None and stamp != self._stamp):
                    self._stamp = stamp
                    await self.reload()
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGHUP)

    async def reload(self) -> bool:
        try:
            config = load_config(self.path, os.environ)
        except ConfigError as exc:
            self.refusals += 1
            log.error("config reload refused, the previous configuration stays in force:\n%s", exc)
            return False
        await self.apply(config)
        self.reloads += 1
        log.info("configuration reloaded from %s", self.path)
        return True
