"""Auth wiring: Redis, the config's client keys, `auth.v1.*` subscriptions."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from llmbus.auth.cooldowns import CooldownHandlers
from llmbus.auth.credential_handlers import CredentialService
from llmbus.auth.flows import serve_flows
from llmbus.auth.handlers import AuthHandlers
from llmbus.auth.keys import KeyStore, KeyStoreUnavailable
from llmbus.auth.keys_handlers import KeyHandlers
from llmbus.auth.lockouts import LockoutStore
from llmbus.auth.quota import QuotaHandlers, QuotaStore
from llmbus.auth.responses import ResponseHandlers, ResponseStore
from llmbus.auth.runtime import RuntimeStore
from llmbus.auth.settings import AuthSettings
from llmbus.auth.usage import UsageStore
from llmbus.auth.usage_handlers import UsageHandlers, UsageReader
from llmbus.auth.vault import Vault
from llmbus.bus import Bus, Lifecycle, retry_within, run_service
from llmbus.bus.stream import DurableConsumer
from llmbus.config import Config, ConfigWatcher, CooldownConfig, load_config
from llmbus.config.guard import refuse_unsafe
from llmbus.proto import (
    AUTH_COOLDOWN_CLEAR,
    AUTH_COOLDOWN_EVENTS,
    AUTH_KEY_EVENTS,
    AUTH_KEY_VERIFY,
    AUTH_PROVIDER_TOGGLE,
    AUTH_QUOTA_RESERVE,
    AUTH_QUOTA_SETTLE,
    AUTH_STATE,
    USAGE_CONSUMER,
    USAGE_REQUESTS,
    USAGE_STREAM,
    KeyEvent,
)
from llmbus.providers import ConfiguredProvider, configured_providers

__all__ = ["main", "serve"]

log = logging.getLogger(__name__)


async def _wait_for_redis(redis: Redis, timeout: float = 30.0) -> None:
    """Redis may start after auth (or be restarting): the one retry policy, bounded."""

    async def ping(_: float | None) -> None:
        await redis.ping()

    try:
        await retry_within(timeout, ping, on=(RedisError, OSError), wait_max=1.0, what="reaching Redis")
    except (RedisError, OSError, TimeoutError) as exc:
        raise RuntimeError(f"cannot reach Redis: {type(exc).__name__}") from None


async def _sync_keys(bus: Bus, keys: KeyStore, config: Config) -> None:
    revoked = await keys.sync_config_keys([(k.key, k.name) for k in config.client_keys()])
    for key_hash in revoked:
        await bus.publish(AUTH_KEY_EVENTS, KeyEvent(key_hash=key_hash))


def _policies(providers: dict[str, ConfiguredProvider]) -> dict[str, CooldownConfig]:
    return {name: provider.cooldown for name, provider in providers.items()}


async def serve(settings: AuthSettings, stop: asyncio.Event) -> None:
    config = load_config(settings.config)
    refuse_unsafe(settings, config)
    vault = Vault.from_settings(settings.token_key, settings.token_key_file, dev=settings.dev)
    async with Lifecycle("auth", settings, stop) as life:
        redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=2,
            socket_connect_timeout=2,
            health_check_interval=15,
            # A pooled connection to a Redis that has restarted fails on first use: tried
            # again on a fresh one at once, instead of a 503 for whoever asked first.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            retry_on_error=[RedisConnectionError],
        )
        life.on_close(redis.aclose)
        await _wait_for_redis(redis)
        keys = KeyStore(redis)
        bus = await life.connect("llmbus-auth")
        usage_store = UsageStore(redis, config.usage.retention_days)
        key_handlers = KeyHandlers(bus, keys, usage_store, LockoutStore(redis))
        await _sync_keys(bus, keys, config)
        await key_handlers.upkeep()
        providers = configured_providers(config)
        credentials = CredentialService(bus, redis, vault, providers)
        life.on_close(credentials.close)
        await credentials.start()
        handlers = AuthHandlers(bus, keys, RuntimeStore(redis), set(providers), credentials=credentials.store)
        await bus.subscribe(AUTH_KEY_VERIFY, handlers.verify_key, queue=AUTH_KEY_VERIFY.queue)
        await bus.subscribe(AUTH_PROVIDER_TOGGLE, handlers.toggle_provider, queue=AUTH_PROVIDER_TOGGLE.queue)
        await bus.subscribe(AUTH_STATE, handlers.runtime_state, queue=AUTH_STATE.queue)
        cooldowns = CooldownHandlers(bus, RuntimeStore(redis), _policies(providers))
        await bus.subscribe(AUTH_COOLDOWN_EVENTS, cooldowns.record, queue="auth")
        await bus.subscribe(AUTH_COOLDOWN_CLEAR, cooldowns.clear, queue=AUTH_COOLDOWN_CLEAR.queue)
        await key_handlers.subscribe()
        quotas = QuotaHandlers(bus, QuotaStore(redis))
        await bus.subscribe(AUTH_QUOTA_RESERVE, quotas.reserve, queue=AUTH_QUOTA_RESERVE.queue)
        await bus.subscribe(AUTH_QUOTA_SETTLE, quotas.settle, queue=AUTH_QUOTA_SETTLE.queue)
        responses = ResponseHandlers(bus, ResponseStore(redis), config.responses)
        await responses.subscribe()
        await UsageHandlers(bus, usage_store).subscribe()
        usage_stream = DurableConsumer(
            bus,
            stream=USAGE_STREAM,
            subject=USAGE_REQUESTS.subject(),
            durable=USAGE_CONSUMER,
            max_age=config.usage.retention_days * 86_400,
        )
        life.spawn(UsageReader(usage_store, usage_stream).run())

        current = providers
        await serve_flows(
            life.closing,
            bus,
            redis,
            vault,
            credentials.store,
            lambda: current,
            copilot_client_id=settings.copilot_client_id,
            max_flows=settings.max_login_flows,
        )

        current_config = config

        async def apply(new: Config) -> None:
            nonlocal current, current_config
            current, current_config = configured_providers(new), new
            handlers.providers = set(current)
            cooldowns.policies = _policies(current)
            responses.config = new.responses
            usage_store.retention_days = new.usage.retention_days  # the stream's at the next start
            await credentials.apply(current)
            try:
                await _sync_keys(bus, keys, new)
            except KeyStoreUnavailable:
                log.error("client keys not updated: the key store is unavailable")

        async def resync() -> None:
            # Redis may have restarted empty (no persistence, a failover): now and then,
            # write back the keys it lost (a lookup that misses does it at once too) and
            # refresh this replica's copy of the keys made at run time.
            while True:
                await asyncio.sleep(settings.key_sync_interval)
                try:
                    await key_handlers.upkeep()
                except KeyStoreUnavailable:
                    log.warning("client keys not checked: the key store is unavailable")

        life.spawn(ConfigWatcher(settings.config, apply).run())
        life.spawn(resync())
        await life.serve(f"auth ready: {len(config.client_keys())} client keys from config")


def main() -> int:
    settings = AuthSettings.from_env()
    return run_service("auth", lambda stop: serve(settings, stop), settings.log_level)
