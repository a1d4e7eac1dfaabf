"""Health checks: each served provider probed on its schedule with the cheap call its
adapter names (for the OpenAI family, `GET /models`). Results travel to the routers in
`WorkerStatus` and feed selection and `/v1/providers/{name}/status`."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from llmbus.proto import HealthReport
from llmbus.providers import ConfiguredProvider
from llmbus.providers.adapters import Adapter, CredentialSource
from llmbus.providers.errors import UpstreamError
from llmbus.providers.http import HttpClient

__all__ = ["HealthChecker"]

log = logging.getLogger(__name__)


class HealthChecker:
    def __init__(
        self,
        http: HttpClient,
        adapters: dict[str, Adapter],
        providers: Callable[[], dict[str, ConfiguredProvider]],
        sources: dict[str, CredentialSource],
    ) -> None:
        self.http = http
        self.adapters = adapters
        self.sources = sources
        self.providers = providers
        self.reports: dict[str, HealthReport] = {}
        self._due: dict[str, float] = {}

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            current = self.providers()
            for gone in set(self.reports) - set(current):
                self.reports.pop(gone, None)
            due = []
            for name, provider in current.items():
                if not provider.health_check.enabled or not provider.credentials:
                    continue
                # The first check within a few seconds of start, spread over replicas.
                at = self._due.setdefault(name, now + random.uniform(0.2, 2.0))
                if at <= now:
                    self._due[name] = now + provider.health_check.interval_seconds
                    due.append(provider)
            if due:
                await asyncio.gather(*(self.check(p) for p in due))
            await asyncio.sleep(0.5)

    async def check(self, provider: ConfiguredProvider) -> HealthReport:
        adapter = self.adapters[provider.family]
        source = self.sources[provider.family]
        began = time.perf_counter()
        ok, error = False, ""
        url = provider.endpoint
        try:
            async with asyncio.timeout(provider.health_check.timeout_seconds):
                credential = await source.get(provider, provider.credentials[0])
                call = adapter.probe(provider, credential)
                url = call.url
                status, _, _ = await self.http.fetch(
                    call.method, call.url, headers=call.headers, proxy=provider.proxy_url, traced=False
                )
            # A 429 says the upstream is up; the credential's rest is the cooldown's business.
            ok = status < 400 or status == 429
            if not ok:
                error = f"{url.split('://', 1)[-1].split('/', 1)[0]} answered {status}"
        except TimeoutError:
            error = f"no answer in {provider.health_check.timeout_seconds:g}s"
        except UpstreamError as exc:
            error = exc.message
        report = HealthReport(
            provider=provider.name,
            ok=ok,
            checked_at=time.time(),
            latency_ms=round((time.perf_counter() - began) * 1000, 2),
            error=error,
        )
        previous = self.reports.get(provider.name)
        if not ok and (previous is None or previous.ok):
            log.warning("health check of %s failed: %s", provider.name, error)
        self.reports[provider.name] = report
        return report
