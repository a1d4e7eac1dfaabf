"""The model catalog: which providers serve a client's model name, under which upstream
name, with which credentials.

Names a model is reachable under, for a provider `p` serving model `m` (and each of
`m`'s aliases):
- `m` itself, unless `p` has a prefix and `force-model-prefix` is on;
- `<prefix>/m` when `p` has a prefix;
- `<provider name>/m`, always: the explicit way to pick a provider.

A name's fallbacks (`fallbacks`) are the models its own models name (`fallback`), then
`routing.fallback_models`; they are not followed further (a fallback's own fallbacks
are not tried), so a plan is bounded whatever the config chains.

Built once per configuration; resolving a request reads dicts and the live state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from llmbus.config import RoutingConfig
from llmbus.proto import Needs, Target
from llmbus.providers import ConfiguredProvider
from llmbus.providers.runtime import ProviderModel
from llmbus.routing.credentials import StoredCredentials
from llmbus.routing.errors import NoRoute, RateLimited, UnknownModel, UnsupportedRequest
from llmbus.routing.state import LiveState

__all__ = ["Candidates", "Catalog", "ModelRoute", "Offer"]


@dataclass(frozen=True, slots=True)
class Offer:
    """One provider's offer of a model."""

    provider: ConfiguredProvider
    model: ProviderModel

    @property
    def upstream_model(self) -> str:
        return self.model.upstream


@dataclass(slots=True)
class ModelRoute:
    name: str
    """The name clients use: plain, alias, `prefix/model` or `provider/model`."""
    canonical: str
    """The model's own name at its providers (the first offer's)."""
    offers: list[Offer] = field(default_factory=list)


@dataclass(slots=True)
class Candidates:
    tiers: list[list[Target]]
    """Healthy candidates, highest priority first, each tier in config order."""
    fallback: list[Target]
    """Candidates whose provider failed its health check or has no live worker: tried last."""


class Catalog:
    def __init__(
        self,
        providers: dict[str, ConfiguredProvider],
        *,
        force_model_prefix: bool = False,
        routing: RoutingConfig | None = None,
    ) -> None:
        self.providers = providers
        self.force_model_prefix = force_model_prefix
        self.routing = routing or RoutingConfig()
        self._routes: dict[str, ModelRoute] = {}
        for provider in providers.values():
            if not provider.credentials and not StoredCredentials.can_log_in(provider):
                continue  # (one that can log in gets credentials from auth at run time)
            for model in provider.models:
                offer = Offer(provider, model)
                for name in (model.name, *model.aliases):
                    for routable in self._names(provider, name):
                        route = self._routes.setdefault(routable, ModelRoute(routable, model.name))
                        if offer not in route.offers:
                            route.offers.append(offer)

    def _names(self, provider: ConfiguredProvider, name: str) -> list[str]:
        names = []
        if provider.prefix:
            names.append(f"{provider.prefix}/{name}")
        if not provider.prefix or not self.force_model_prefix:
            names.append(name)
        qualified = f"{provider.name}/{name}"
        if qualified not in names:
            names.append(qualified)
        return names

    def route(self, model: str) -> ModelRoute | None:
        return self._routes.get(model)

    def fallbacks(self, model: str) -> list[str]:
        """The models tried after `model`'s own targets, in order: those its models name,
        then the routing-wide ones; never `model` itself."""
        route = self._routes.get(model)
        own = [f for offer in route.offers for f in offer.model.fallbacks] if route else []
        names = [*own, *self.routing.fallbacks_for(model)]
        return [name for i, name in enumerate(names) if name != model and name not in names[:i]]

    def unknown_fallbacks(self) -> list[str]:
        """Fallback names that no provider serves (the config loader cannot tell when a
        provider serves its built-in list): the router logs them."""
        chosen = self.routing.fallback_models
        named = (
            list(chosen)
            if isinstance(chosen, list)
            else [n for v in chosen.values() for n in ([v] if isinstance(v, str) else v)]
        )
        named += [f for p in self.providers.values() if p.configured for m in p.models for f in m.fallbacks]
        return sorted({name for name in named if name not in self._routes})

    def routes(self, state: LiveState, provider: str | None = None) -> list[ModelRoute]:
        """Every name a request can use now (enabled providers with credentials), in a
        stable order; with `provider`, only the names that reach that provider."""
        available = (self._available(route, state, provider) for route in self._routes.values())
        return [route for route in available if route is not None]

    def available(self, model: str, state: LiveState) -> ModelRoute | None:
        """The name's route with only its enabled offers; None when nothing serves it now."""
        route = self._routes.get(model)
        return None if route is None else self._available(route, state, None)

    def _available(self, route: ModelRoute, state: LiveState, provider: str | None) -> ModelRoute | None:
        offers = [
            o
            for o in route.offers
            if state.is_enabled(o.provider.name, o.provider.enabled)
            and bool(state.credentials.listed(o.provider))
            and (provider is None or o.provider.name == provider)
        ]
        return ModelRoute(route.name, route.canonical, offers) if offers else None

    def resolve(self, model: str, needs: Needs, state: LiveState, now: float | None = None) -> Candidates:
        """The candidates for a request, or the RoutingError that explains why none can
        take it: unknown or excluded model (404), nothing capable of what the request
        needs (400), every credential cooling down (429), every provider off (503)."""
        route = self._routes.get(model)
        if route is None or not any(state.credentials.listed(o.provider) for o in route.offers):
            raise UnknownModel(model)
        tiers: dict[int, list[Target]] = {}
        fallback: list[Target] = []
        disabled: list[str] = []
        incapable: list[str] = []
        cooling: list[tuple[float, str]] = []
        unhealthy: list[str] = []
        for offer in route.offers:
            provider = offer.provider
            if not state.is_enabled(provider.name, provider.enabled):
                disabled.append(provider.name)
                continue
            missing = _missing(offer.model, needs)
            if missing:
                incapable.append(f"{provider.name} does not support {missing}")
                continue
            healthy = state.is_healthy(provider.name) and state.has_worker(provider.name) is not False
            unhealthy += state.credentials.unhealthy(provider)
            for credential in state.credentials.usable(provider):
                until = state.take(provider.name, credential.name, offer.upstream_model, now)
                if until:
                    why = (
                        state.reason(provider.name, credential.name, offer.upstream_model)
                        or "refused upstream"
                    )
                    cooling.append((until, f"{provider.name}/{credential.name}: {why}"))
                    continue
                target = Target(
                    provider=provider.name, credential=credential.name, upstream_model=offer.upstream_model
                )
                if healthy:
                    tiers.setdefault(provider.priority, []).append(target)
                else:
                    fallback.append(target)
        if tiers or fallback:
            return Candidates([tiers[p] for p in sorted(tiers, reverse=True)], fallback)
        if cooling:
            wait = max(0.0, min(until for until, _ in cooling) - (time.time() if now is None else now))
            reasons = "; ".join(sorted({why for _, why in cooling}))
            raise RateLimited(
                f"every credential that serves `{model}` is resting after upstream refusals ({reasons}); "
                f"retry in {max(1, round(wait))}s",
                retry_after=wait,
            )
        if unhealthy:
            raise NoRoute(
                f"every credential that serves `{model}` is unhealthy ({'; '.join(sorted(set(unhealthy)))})",
                code="credentials_unhealthy",
            )
        if incapable:
            raise UnsupportedRequest(
                f"no provider can serve `{model}` for this request: {'; '.join(incapable)}"
            )
        raise NoRoute(
            f"`{model}` is only served by disabled providers ({', '.join(sorted(set(disabled)))})",
            code="provider_disabled",
        )


def _missing(model: ProviderModel, needs: Needs) -> str:
    features = model.features
    if needs.embeddings != features.embeddings:
        return "embeddings (it is a chat model)" if needs.embeddings else "chat (it is an embedding model)"
    if needs.embeddings:
        return ""
    if needs.streaming and not features.streaming:
        return "streaming"
    if needs.tools and not features.functions:
        return "tools (function calling)"
    if needs.vision and not features.vision:
        return "images (vision)"
    return ""
