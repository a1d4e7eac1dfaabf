"""Device flows from start to stored credential, on any number of auth replicas.

`start` asks the upstream for a device code, stores the flow in Redis (`store.py`) and
polls it in the background: one task per flow, at most `max_flows` per replica, each
holding the flow's lease and renewing it before every poll. `status` reads Redis, so any
replica answers it. A replica that stopped (crash, redeploy) lets its leases lapse;
`resume` (every `lease_seconds` / 2) claims such flows and polls them on.

A flow ends `success` (the credential store's id of the new credential), `expired`,
`denied` or `error` with a message that never holds a token, a code or a secret.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from llmbus.auth.flows.dialects import DialectFactory, LoginTarget
from llmbus.auth.flows.store import FlowRecord, FlowState, FlowStore, FlowStoreError, UnknownFlow
from llmbus.auth.flows.types import DeviceDialect, DeviceGrant, FlowFailed, Login, Pending, Refused
from llmbus.auth.stored_secret import StoredSecret
from llmbus.proto import CredentialInfo, DeviceFlow, DeviceFlowStart, DeviceFlowStatus

__all__ = ["CredentialSink", "FlowRunner", "TooManyFlows"]

log = logging.getLogger(__name__)


class TooManyFlows(Exception):
    """This replica already polls `max_flows` flows."""


class CredentialSink(Protocol):
    """Where a successful login goes: the credential store, which seals and keeps it."""

    async def add(self, provider: str, kind: str, account: str, secret: StoredSecret) -> CredentialInfo: ...


class FlowRunner:
    def __init__(
        self,
        store: FlowStore,
        dialects: DialectFactory,
        sink: CredentialSink,
        *,
        max_flows: int = 64,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.dialects = dialects
        self.sink = sink
        self.max_flows = max_flows
        self.sleep = sleep
        self.clock = clock
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self, request: DeviceFlowStart) -> DeviceFlow:
        """Raises FlowRejected, FlowFailed (the upstream refused), TooManyFlows,
        FlowStoreError."""
        if len(self.tasks) >= self.max_flows:
            raise TooManyFlows(f"{self.max_flows} logins are already in progress here")
        target = LoginTarget(request.provider, request.method, request.start_url, request.region)
        dialect = self.dialects(target)
        grant = await dialect.authorize()
        record = FlowRecord(
            flow_id=f"flow_{secrets.token_urlsafe(12)}",
            provider=request.provider,
            method=request.method,
            start_url=grant.start_url,
            region=grant.region,
            user_code=grant.user_code,
            verification_uri=grant.verification_uri,
            verification_uri_complete=grant.verification_uri_complete,
            expires_at=self.clock() + grant.expires_in,
            interval=grant.interval,
        )
        self.store.seal(record, grant)
        await self.store.create(record, grant.expires_in)
        self._spawn(record, dialect, grant)
        log.info(
            "login %s for %s (%s) started by %s",
            record.flow_id,
            request.provider,
            request.method,
            request.actor,
        )
        return DeviceFlow(
            flow_id=record.flow_id,
            provider=record.provider,
            user_code=record.user_code,
            verification_uri=record.verification_uri,
            verification_uri_complete=record.verification_uri_complete,
            expires_in=grant.expires_in,
            interval=grant.interval,
        )

    async def status(self, flow_id: str) -> DeviceFlowStatus:
        """Raises UnknownFlow, FlowStoreUnavailable."""
        record = await self.store.get(flow_id)
        return DeviceFlowStatus(
            flow_id=record.flow_id,
            status=record.status,
            provider=record.provider,
            credential=record.credential,
            error=record.error,
        )

    async def resume(self) -> int:
        """Take over the pending flows whose replica stopped polling; how many it took."""
        taken = 0
        async for record in self.store.pending():
            if record.flow_id in self.tasks or len(self.tasks) >= self.max_flows:
                continue
            if not await self.store.claim(record.flow_id):
                continue
            try:
                dialect = self.dialects(
                    LoginTarget(record.provider, record.method, record.start_url, record.region)
                )
                grant = self.store.grant(record)
            except Exception as exc:  # the provider is gone from the config, a seal broke
                await self._end(record, "error", error=f"the login cannot be resumed: {exc}")
                continue
            log.info("login %s for %s resumed by this replica", record.flow_id, record.provider)
            self._spawn(record, dialect, grant)
            taken += 1
        return taken

    async def run_resumer(self, every: float) -> None:
        while True:
            await self.sleep(every)
            try:
                await self.resume()
            except FlowStoreError:
                log.warning("login flows not resumed: the flow store is unavailable")

    async def aclose(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, record: FlowRecord, dialect: DeviceDialect, grant: DeviceGrant) -> None:
        task = asyncio.create_task(self._drive(record, dialect, grant), name=f"login-{record.flow_id}")
        self.tasks[record.flow_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(record.flow_id, None))

    async def _drive(self, record: FlowRecord, dialect: DeviceDialect, grant: DeviceGrant) -> None:
        interval = record.interval
        try:
            while True:
                await self.sleep(interval)
                if self.clock() >= record.expires_at:
                    await self._end(record, "expired")
                    return
                if not await self.store.renew(record.flow_id):
                    log.info("login %s: lease lost, another replica polls it", record.flow_id)
                    return
                if (await self.store.get(record.flow_id)).status != "pending":
                    return  # another replica took it over while this one stalled, and ended it
                outcome = await dialect.poll(grant, interval)
                match outcome:
                    case Pending():
                        interval = outcome.interval
                    case Refused():
                        await self._end(record, outcome.status)
                        return
                    case Login():
                        info = await self.sink.add(
                            record.provider, outcome.kind, outcome.account, outcome.secret
                        )
                        await self._end(record, "success", credential=info.id)
                        log.info(
                            "login %s: credential %s/%s (%s) stored",
                            record.flow_id,
                            record.provider,
                            info.id,
                            info.kind,
                        )
                        return
        except FlowFailed as exc:
            await self._end(record, "error", error=str(exc))
        except UnknownFlow:
            return  # expired in Redis meanwhile: nobody can ask for it any more
        except FlowStoreError:
            log.error("login %s: the flow store is unavailable; another replica resumes it", record.flow_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("login %s failed: %s", record.flow_id, type(exc).__name__)
            await self._end(record, "error", error="the credential could not be stored")
        finally:
            await self.store.release(record.flow_id)

    async def _end(
        self, record: FlowRecord, status: FlowState, *, credential: str = "", error: str = ""
    ) -> None:
        if status != "success":
            log.info("login %s for %s ended: %s %s", record.flow_id, record.provider, status, error)
        try:
            await self.store.finish(record, status, credential=credential, error=error)
        except FlowStoreError:
            log.error("login %s: its outcome (%s) could not be stored", record.flow_id, status)
