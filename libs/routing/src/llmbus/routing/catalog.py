"""The model catalog: which providers serve a client's model name, under which upstream
name, with which credentials. Built once per configuration; lookups are dict reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmbus.proto import Needs, Target
from llmbus.providers import ConfiguredProvider
from llmbus.routing.errors import NoRoute, UnknownModel

__all__ = ["Catalog", "ModelRoute", "Offer"]


@dataclass(frozen=True, slots=True)
class Offer:
    """One provider's offer of a model."""

    provider: ConfiguredProvider
    upstream_model: str

    def targets(self) -> list[Target]:
        return [
            Target(provider=self.provider.name, credential=c.name, upstream_model=self.upstream_model)
            for c in self.provider.credentials
        ]


@dataclass(slots=True)
class ModelRoute:
    model: str
    offers: list[Offer] = field(default_factory=list)


class Catalog:
    def __init__(self, providers: dict[str, ConfiguredProvider]) -> None:
        self.providers = providers
        self._routes: dict[str, ModelRoute] = {}
        for provider in sorted(providers.values(), key=lambda p: -p.priority):
            if not provider.enabled:
                continue
            for entry in provider.models:
                if not entry.enabled:
                    continue
                upstream = entry.upstream or provider.model_mappings.get(entry.name) or entry.name
                offer = Offer(provider, upstream)
                self._routes.setdefault(entry.name, ModelRoute(entry.name)).offers.append(offer)
                qualified = f"{provider.name}/{entry.name}"
                self._routes.setdefault(qualified, ModelRoute(qualified)).offers.append(offer)

    def models(self) -> list[ModelRoute]:
        """Every routable model name (plain and `provider/model`), in a stable order."""
        return [route for route in self._routes.values() if any(o.provider.credentials for o in route.offers)]

    def resolve(self, model: str, needs: Needs) -> list[list[Target]]:
        """The failover plan for `model` as priority tiers: every credential of every
        capable provider, the highest priority first. Raises UnknownModel or NoRoute."""
        route = self._routes.get(model)
        if route is None:
            raise UnknownModel(model)
        tiers: dict[int, list[Target]] = {}
        reasons: list[str] = []
        for offer in route.offers:
            features = offer.provider.features
            if needs.streaming and not features.streaming:
                reasons.append(f"{offer.provider.name} cannot stream")
            elif needs.tools and not features.functions:
                reasons.append(f"{offer.provider.name} does not support tools")
            elif needs.vision and not features.vision:
                reasons.append(f"{offer.provider.name} does not accept images")
            elif not offer.provider.credentials:
                reasons.append(f"{offer.provider.name} has no credentials")
            else:
                tiers.setdefault(offer.provider.priority, []).extend(offer.targets())
        if not tiers:
            raise NoRoute(
                f"no provider can serve `{model}` for this request: {'; '.join(reasons)}",
                status=400 if all("credentials" not in r for r in reasons) else 503,
            )
        return [tiers[priority] for priority in sorted(tiers, reverse=True)]
