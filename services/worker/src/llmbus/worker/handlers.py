"""The worker's exec handler: one upstream call per request, streamed back to the edge.

A retryable failure before the first byte (connect error, timeout, 429, 5xx, no usable
token) moves the request to the next target of its plan; after it, the stream ends with
an error event. The plan is the retry budget (the router sends at most
`routing.max_attempts` targets); a failover is not started when the request's deadline
is (nearly) spent, and steps that the failure just ruled out (the same credential after
a token it could not get, the same credential and model after a 429), or that rest after
any refusal this worker has heard of since the plan was made, are skipped. Each attempt is one
consumer span of the request's trace, with the target (its credential by digest) and the
outcome as attributes and the failover as an event; its upstream call is a client span
with the OpenTelemetry GenAI attributes (docs/tracing.md).

Deadlines: each call is bounded by its first-byte time (the provider's
`timeouts.first_byte_seconds`, and the request's `first_byte_deadline`) until the upstream
starts its answer, then by its total (the request's `deadline`, and the provider's
`timeouts.total_seconds`). A first-byte timeout is a retryable 504; the total deadline
ends a stream with a 504 `deadline_exceeded` error event."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from contextlib import AsyncExitStack
from typing import Final

import msgspec
from opentelemetry import trace

from llmbus.bus import STOPPING, Bus, BusFailure, BusUnavailable, Delivery, Subscription, is_no_responders
from llmbus.config import CredentialEntry
from llmbus.proto import (
    AUTH_COOLDOWN_EVENTS,
    CANCEL,
    EXEC,
    CancelRequest,
    ChatRequest,
    Cooldown,
    Done,
    Error,
    ExecRequest,
    Started,
    Target,
    Usage,
    chat_codec,
    embed_codec,
)
from llmbus.providers import ConfiguredProvider
from llmbus.providers.adapters import Adapter, CredentialSource
from llmbus.providers.adapters.embeddings import embedder_for, embedding_outputs
from llmbus.providers.errors import CredentialUnavailable, UpstreamError, UpstreamStatus, UpstreamTimeout
from llmbus.providers.http import HttpClient
from llmbus.telemetry import credential_ref, genai
from llmbus.worker.emitter import Emitter
from llmbus.worker.limits import Admission, Limits
from llmbus.worker.rests import Rests
from llmbus.worker.stats import Stats, error_class
from llmbus.worker.tokens import AuthTokens

__all__ = ["Worker"]

log = logging.getLogger(__name__)

_GONE: Final = "edge gone"
FIRST_HEARTBEAT: Final = 0.5
"""Seconds before a worker that has sent nothing yet says it has the request."""
MIN_ATTEMPT_SECONDS: Final = 1.0
"""A failover is started only with at least this long left before the request's deadline
(and its first-byte deadline): an attempt with less could hardly answer."""


class DeadlineExceeded(UpstreamError):
    """The request's total deadline passed while its answer was streaming."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=504, code="deadline_exceeded", retryable=False)


def _epoch(ms: int) -> float:
    """Epoch milliseconds as seconds; 0 (unset) is no bound."""
    return ms / 1000 if ms else math.inf


def _loop_time(epoch: float) -> float | None:
    """An epoch time as the event loop's clock (for `asyncio.timeout_at`); None: no bound."""
    if math.isinf(epoch):
        return None
    return asyncio.get_running_loop().time() + (epoch - time.time())


def _refused(exc: UpstreamError) -> int:
    """The upstream status behind a refusal (401, 403, 429), else 0."""
    if isinstance(exc, UpstreamStatus | CredentialUnavailable):
        return exc.upstream_status
    return 0


def next_steps(request: ExecRequest, exc: UpstreamError, now: float) -> list[Target]:
    """What is left of the plan after `exc` failed the request's current target before
    its first byte: empty when the failure is not retryable or the deadline (or the
    first-byte deadline) leaves less than `MIN_ATTEMPT_SECONDS`; without the steps the
    failure has just rested (the credential after a 401 or 403 or a token it could not
    get, the credential for that model after a 429) and without the failed target itself."""
    if not exc.retryable or not request.plan:
        return []
    left = min(_epoch(request.deadline), _epoch(request.first_byte_deadline)) - now
    if left < MIN_ATTEMPT_SECONDS:
        return []
    failed = request.target
    status = _refused(exc)

    def rested(step: Target) -> bool:
        if (step.provider, step.credential) != (failed.provider, failed.credential):
            return False
        if status in (401, 403) or isinstance(exc, CredentialUnavailable):
            return True
        return step.upstream_model == failed.upstream_model

    return [step for step in request.plan if not rested(step)]


class Worker:
    def __init__(
        self,
        bus: Bus,
        http: HttpClient,
        providers: dict[str, ConfiguredProvider],
        adapters: dict[str, Adapter],
        heartbeat_interval: float,
        sources: dict[str, CredentialSource] | None = None,
    ) -> None:
        self.bus = bus
        self.http = http
        self.providers = providers
        self.adapters = adapters
        self.sources = sources or {family: a.credentials(http) for family, a in adapters.items()}
        self.heartbeat_interval = heartbeat_interval
        self.guard_prefix = bus.new_inbox()
        self.stats = Stats()
        self.limits = Limits(bus)
        self.rests = Rests()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._beating: set[asyncio.Task[None]] = set()
        self._subscriptions: dict[str, Subscription] = {}

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def start(self) -> None:
        await self.bus.subscribe_raw(self.guard_prefix + ".*", self._on_guard)
        await self.bus.subscribe(CANCEL, self._on_cancel)
        await self.rests.start(self.bus)
        await self.serve(self.providers)

    async def serve(self, providers: dict[str, ConfiguredProvider]) -> None:
        """Serve exactly `providers` from now on (at start, and after a config reload):
        subscribe to the new ones, leave the queue groups of the ones gone. Requests in
        flight keep the provider object they started with."""
        for name in list(self._subscriptions):
            if name not in providers:
                await self._subscriptions.pop(name).unsubscribe()
        self.providers = providers
        for name in providers:
            if name not in self._subscriptions:
                self._subscriptions[name] = await self.bus.subscribe(
                    EXEC,
                    self.on_exec,
                    queue=EXEC.queue_for(provider=name),
                    subject=EXEC.subject(provider=name),
                )

    async def _on_guard(self, msg: Delivery) -> None:
        if is_no_responders(msg):
            self._cancel(msg.subject[len(self.guard_prefix) + 1 :], _GONE)

    async def _on_cancel(self, message: CancelRequest, _: Delivery) -> None:
        self._cancel(message.request_id, message.reason)

    def _cancel(self, request_id: str, reason: str) -> None:
        task = self._running.get(request_id)
        if task is not None:
            log.info("cancelling %s: %s", request_id, reason)
            task.cancel(reason)

    async def on_exec(self, request: ExecRequest, _: Delivery) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running[request.request_id] = task
        emitter = Emitter(
            self.bus,
            request.reply,
            request.seq,
            f"{self.guard_prefix}.{request.request_id}",
            streamed=request.needs.streaming,
            in_flight=self._running,
        )
        emitter.beat = asyncio.get_running_loop().call_later(
            min(self.heartbeat_interval, FIRST_HEARTBEAT), self._heartbeat, emitter, True
        )
        try:
            await self._execute(request, emitter)
        except asyncio.CancelledError as cancelled:
            if cancelled.args == (STOPPING,) and not emitter.closed:
                # SIGTERM and the drain time is over: the stream ends with an error event
                # now, rather than at the edge's idle timeout.
                await _say_stopping(emitter)
        except BusUnavailable:
            log.warning("lost the bus while streaming %s", request.request_id)
        finally:
            emitter.close()
            if emitter.beat is not None:
                emitter.beat.cancel()
            self._running.pop(request.request_id, None)

    def _heartbeat(self, emitter: Emitter, first: bool) -> None:
        """Heartbeats while nothing else is sent, from a timer (no task per request). The
        first comes after at most `FIRST_HEARTBEAT` seconds, well inside the edge's accept
        timeout, so the edge learns that a worker has the request; an upstream that answers
        sooner says so itself (`Started`), which saves one frame per request."""
        if emitter.closed:
            return
        interval = self.heartbeat_interval
        if emitter.last_sent == 0.0 if first else time.monotonic() - emitter.last_sent >= interval * 0.9:
            task = asyncio.create_task(self._send_heartbeat(emitter))
            self._beating.add(task)
            task.add_done_callback(self._beating.discard)
        emitter.beat = asyncio.get_running_loop().call_later(interval, self._heartbeat, emitter, False)

    @staticmethod
    async def _send_heartbeat(emitter: Emitter) -> None:
        try:
            await emitter.heartbeat()
        except BusUnavailable:
            log.debug("no heartbeat sent: the bus is unavailable")

    async def _execute(self, request: ExecRequest, emitter: Emitter) -> None:
        target = request.target
        provider = self.providers.get(target.provider)
        span = trace.get_current_span()
        span.set_attribute("llmbus.provider", target.provider)
        span.set_attribute("llmbus.attempt", request.attempt)
        if provider is None:
            await emitter.emit(
                Error(
                    seq=0,
                    status=503,
                    code="provider_not_served",
                    message=f"no worker serves {target.provider}",
                )
            )
            return
        entry = provider.credential(target.credential)
        if entry is None and isinstance(self.sources.get(provider.family), AuthTokens):
            # A credential auth keeps beyond the config's (a device-flow login): auth
            # knows it by name.
            entry = CredentialEntry(name=target.credential)
        if entry is None:
            await emitter.emit(
                Error(
                    seq=0,
                    status=503,
                    code="credential_missing",
                    message=f"{target.provider} has no credential {target.credential}",
                )
            )
            return
        adapter = self.adapters[provider.family]
        source = self.sources[provider.family]
        if span.is_recording():
            span.set_attribute("llmbus.credential", credential_ref(target.credential))
            span.set_attribute("llmbus.upstream_model", target.upstream_model)
        started_at = time.perf_counter()
        began = time.time()
        timeouts = provider.timeouts
        total_at = _epoch(request.deadline)
        if timeouts.total_seconds:
            total_at = min(total_at, began + timeouts.total_seconds)
        first_byte_at = min(total_at, _epoch(request.first_byte_deadline))
        if timeouts.first_byte_seconds:
            first_byte_at = min(first_byte_at, began + timeouts.first_byte_seconds)
        failure: str | None = "cancelled"
        admission: Admission | None = None
        usage: Usage | None = None
        finish_reason = ""
        self.stats.begin(target.provider)
        try:
            async with AsyncExitStack() as stack:
                # An embeddings request (needs.embeddings) takes the same path with its
                # own call and answer; a stand-in chat carries its model to the limits.
                embed = embed_codec.decode(request.body) if request.needs.embeddings else None
                chat = (
                    ChatRequest(model=embed.model, messages=[]) if embed else chat_codec.decode(request.body)
                )
                # One timer for both deadlines: the first byte's, then the answer's.
                deadline = asyncio.timeout_at(_loop_time(first_byte_at))
                answering = False
                try:
                    async with deadline:
                        admission = await self.limits.admit(request, chat, provider, entry)
                        credential = await source.get(provider, entry)
                        call = (
                            embedder_for(provider.family, provider.name).build(
                                provider, embed, target.upstream_model, credential
                            )
                            if embed
                            else adapter.build(provider, chat, target.upstream_model, credential)
                        )
                        response = await stack.enter_async_context(
                            self.http.stream(
                                call.method,
                                call.url,
                                headers=call.headers,
                                content=call.body,
                                proxy=provider.proxy_url,
                            )
                        )
                        call_span = trace.get_current_span()  # the upstream call's own
                        if call_span.is_recording():
                            genai.record_request(
                                call_span,
                                operation="embeddings" if embed else "chat",
                                family=provider.family,
                                model=target.upstream_model,
                                max_tokens=chat.max_tokens,
                                temperature=chat.temperature,
                            )
                        if response.status >= 400:
                            error = adapter.error(response.status, response.headers, await response.read())
                            if response.status in (401, 403):
                                # A refused token (Copilot answers 401, Kiro 403 when it has
                                # expired) is minted or refreshed anew on the next use.
                                source.invalidate(provider, entry)
                            raise error
                        answering = True
                        deadline.reschedule(_loop_time(total_at))
                        await emitter.emit(
                            Started(
                                seq=0,
                                provider=target.provider,
                                model=target.upstream_model,
                                credential=target.credential,
                                attempt=request.attempt,
                            )
                        )
                        emitter.started = True
                        await self._recovered(
                            target.provider, target.credential, target.upstream_model, began
                        )
                        first = True
                        outputs = (
                            embedding_outputs(embedder_for(provider.family, provider.name), response, embed)
                            if embed
                            else adapter.events(response, chat.stream)
                        )
                        async for output in outputs:
                            if first and not isinstance(output, Done):
                                self.stats.first_token(target.provider, time.perf_counter() - started_at)
                                first = False
                            if isinstance(output, Usage):
                                usage = output
                                self.stats.tokens(
                                    target.provider, output.prompt_tokens, output.completion_tokens
                                )
                            elif isinstance(output, Done):
                                finish_reason = output.finish_reason
                            await emitter.emit(output)
                except TimeoutError:
                    if not deadline.expired():
                        raise
                    if not answering:
                        raise _first_byte_timeout(target.provider, first_byte_at - began) from None
                    raise DeadlineExceeded(
                        f"the answer of {target.provider} did not finish within the request's deadline "
                        f"({total_at - began:.3g}s)"
                    ) from None
                if call_span.is_recording():
                    genai.record_answer(
                        call_span, model=target.upstream_model, usage=usage, finish_reason=finish_reason
                    )
            failure = None
            span.set_attribute("llmbus.outcome", "answered")
        except UpstreamError as exc:
            failure = error_class(exc)
            span.set_attribute("llmbus.error", exc.code)
            span.set_attribute("llmbus.outcome", "failed")
            await self._cool_down(provider, target.credential, target.upstream_model, exc)
            now = time.time()
            steps = [] if emitter.started else next_steps(request, exc, now)
            # Rests announced since the router made the plan (by this worker's failure just
            # now, or by another's) rule steps out too.
            steps = [
                step
                for step in steps
                if not self.rests.resting(step.provider, step.credential, step.upstream_model, now)
            ]
            if steps:
                await self._fail_over(request, steps, emitter, exc)
                return
            await emitter.emit(_client_error(exc, target.provider, target.credential))
        finally:
            self.stats.end(target.provider, time.perf_counter() - started_at, failure)
            if admission is not None:
                await self.limits.settle(admission, usage, answered=emitter.started)

    async def _cool_down(
        self, provider: ConfiguredProvider, credential: str, model: str, exc: UpstreamError
    ) -> None:
        """Rest a credential the upstream refused, for every router: after a 429 for
        that model only (limits are usually per model), after a 401 or 403 for all."""
        if not isinstance(exc, UpstreamStatus | CredentialUnavailable) or exc.upstream_status not in (
            401,
            403,
            429,
        ):
            return
        policy = provider.cooldown
        if exc.upstream_status == 429:
            seconds, reason = exc.retry_after or policy.rate_limited_seconds, "rate limited upstream"
        else:
            seconds, reason = policy.auth_failed_seconds, f"refused upstream ({exc.upstream_status})"
        seconds = min(seconds, policy.max_seconds)
        if seconds <= 0:
            return
        cooldown = Cooldown(
            provider=provider.name,
            credential=credential,
            until=time.time() + seconds,
            reason=reason,
            status=exc.upstream_status,
            model=model if exc.upstream_status == 429 else "",
            retry_after=(exc.retry_after or 0.0) if exc.upstream_status == 429 else 0.0,
        )
        self.rests.note(cooldown)
        try:
            await self.bus.publish(AUTH_COOLDOWN_EVENTS, cooldown, traced=False)
        except BusFailure:
            log.warning("cannot announce the cooldown of %s/%s", provider.name, credential)

    async def _recovered(self, provider: str, credential: str, model: str, began: float) -> None:
        """The upstream answered a request that started after the credential's rest:
        say so, which ends its probation on every router and its streak at auth."""
        for recovery in self.rests.recovered(provider, credential, model, began):
            log.info("credential %s/%s works again after its rest", provider, credential)
            try:
                await self.bus.publish(AUTH_COOLDOWN_EVENTS, recovery, traced=False)
            except BusFailure:
                log.warning("cannot announce the recovery of %s/%s", provider, credential)

    async def _fail_over(
        self, request: ExecRequest, steps: list[Target], emitter: Emitter, exc: UpstreamError
    ) -> None:
        emitter.close()
        following = steps[0]
        trace.get_current_span().add_event(
            "llmbus.failover",
            {
                "llmbus.error": exc.code,
                "llmbus.next.provider": following.provider,
                "llmbus.next.credential": credential_ref(following.credential),
                "llmbus.next.upstream_model": following.upstream_model,
                "llmbus.next.attempt": request.attempt + 1,
                "llmbus.skipped": len(request.plan) - len(steps),
            },
        )
        log.info(
            "request %s: %s/%s failed (%s); trying %s/%s",
            request.request_id,
            request.target.provider,
            request.target.credential,
            exc.code,
            following.provider,
            following.credential,
        )
        retry = msgspec.structs.replace(
            request, target=following, plan=steps[1:], attempt=request.attempt + 1, seq=emitter.seq
        )
        await self.bus.publish(
            EXEC,
            retry,
            reply=request.reply,
            pace="now" if request.needs.streaming else "pass",
            provider=following.provider,
        )


def _first_byte_timeout(provider: str, seconds: float) -> UpstreamTimeout:
    """The error of a call whose upstream did not start its answer in time (retryable:
    the next target may answer)."""
    return UpstreamTimeout(f"{provider} did not start its answer within {seconds:.3g}s")


def _client_error(exc: UpstreamError, provider: str, credential: str) -> Error:
    """The error the client sees. An upstream that refuses the gateway's own credential
    (401, 403) is the gateway's problem, not the client's: a 502 that names the provider
    and the credential, never the upstream's message, which may quote part of the key
    (OpenAI's "Incorrect API key provided: sk-...1234"), nor its `invalid_api_key` code,
    which the client would take for a verdict on its own key."""
    if isinstance(exc, UpstreamStatus) and exc.upstream_status in (401, 403):
        log.warning("%s refused credential %s (%d)", provider, credential, exc.upstream_status)
        return Error(
            seq=0,
            status=502,
            code="upstream_credential_refused",
            message=f"{provider} refused the gateway's credential `{credential}` "
            f"({exc.upstream_status}): an operator of the gateway must renew it",
            provider=provider,
        )
    return Error(
        seq=0,
        status=exc.status,
        code=exc.code,
        message=exc.message,
        retryable=exc.retryable,
        provider=provider,
        retry_after=exc.retry_after or 0.0,
    )


async def _say_stopping(emitter: Emitter) -> None:
    try:
        await emitter.emit(
            Error(
                seq=0,
                status=503,
                code="worker_stopping",
                message="the worker stopped before the answer was complete",
            )
        )
    except BusUnavailable:
        pass
