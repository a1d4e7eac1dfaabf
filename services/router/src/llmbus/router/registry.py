"""The read side of the management API: provider, model, capability and metrics
documents, answered from the router's catalog and live view of the cluster.

Each method returns `(status, document)`; the handler encodes it once and the edge sends
the bytes as they are. Errors come as OpenAI error bodies with their status."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from llmbus.api import InvalidRequest, NotFound
from llmbus.providers import ConfiguredProvider
from llmbus.providers.registry import Features
from llmbus.providers.runtime import ProviderModel
from llmbus.router.cluster import Cluster
from llmbus.routing import Catalog, LiveState, ModelRoute

__all__ = ["FEATURES", "Registry"]

FEATURES = tuple(Features.__struct_fields__)
Document = dict[str, Any]


def _features(features: Features) -> dict[str, bool]:
    return {name: getattr(features, name) for name in FEATURES}


class Registry:
    def __init__(self, catalog: Catalog, state: LiveState, cluster: Cluster) -> None:
        self.catalog = catalog
        self.state = state
        self.cluster = cluster

    # --- providers -------------------------------------------------------------------

    def _provider(self, name: str) -> ConfiguredProvider:
        provider = self.catalog.providers.get(name)
        if provider is None:
            raise NotFound(f"No provider named `{name}`.", code="provider_not_found")
        return provider

    def _reason(self, provider: ConfiguredProvider) -> str | None:
        """Why requests cannot reach the provider now, or None: switched off (the live
        switch wins over the config's), its own reason (no credentials, no models), or no
        live worker of its family serving it."""
        if not self.state.is_enabled(provider.name, provider.enabled):
            return "disabled"
        if not provider.enabled:  # off in the config, switched on at run time
            provider = msgspec.structs.replace(provider, enabled=True)
        return self.state.credentials.unroutable(provider) or self.cluster.missing_worker(
            provider.name, provider.family
        )

    def _summary(self, provider: ConfiguredProvider) -> Document:
        reason = self._reason(provider)
        return {
            "id": provider.name,
            "object": "provider",
            "type": provider.type,
            "kind": provider.kind.value,
            "display_name": provider.spec.display_name or provider.name,
            "auth_type": provider.auth_type.value,
            "endpoint": provider.endpoint,
            "enabled": self.state.is_enabled(provider.name, provider.enabled),
            "configured": provider.configured,
            "routable": reason is None,
            "reason": reason,
            "priority": provider.priority,
            "prefix": provider.prefix,
            "models": len(provider.models),
            "credentials": len(self.state.credentials.listed(provider)),
            "features": _features(provider.features),
            "max_tokens": provider.max_tokens,
        }

    def providers(self, params: dict[str, str]) -> Document:
        kind = params.get("type") or params.get("kind")
        items = [
            self._summary(p)
            for p in self.catalog.providers.values()
            if not kind or p.kind.value == kind or p.type == kind
        ]
        return {"object": "list", "data": items}

    def provider(self, name: str) -> Document:
        provider = self._provider(name)
        return {
            **self._summary(provider),
            "family": provider.family,
            "excluded_models": list(provider.excluded_models),
            "limits": _plain(provider.limits),
            "cooldown": _plain(provider.cooldown),
            "health_check": _plain(provider.health_check),
            "model_list": [self._model_entry(m) for m in provider.models],
        }

    def _model_entry(self, model: ProviderModel) -> Document:
        return {
            "id": model.name,
            "upstream": model.upstream,
            "aliases": list(model.aliases),
            "max_tokens": model.max_tokens,
            "features": _features(model.features),
        }

    def provider_models(self, name: str) -> Document:
        provider = self._provider(name)
        return {"object": "list", "provider": name, "data": [self._model_entry(m) for m in provider.models]}

    def provider_capabilities(self, name: str) -> Document:
        provider = self._provider(name)
        features = _features(provider.features)
        # A per-model capability: the provider has it when one of its models has.
        features["embeddings"] = any(m.features.embeddings for m in provider.models)
        return {"provider": name, **features, "max_tokens": provider.max_tokens}

    def provider_status(self, name: str) -> Document:
        provider = self._provider(name)
        now = time.time()
        credentials = []
        cooldowns = []
        for credential in self.state.credentials.listed(provider):
            # A credential resting for one model still serves the others: `cooldowns`
            # says which model each rest is for (none: every model).
            rests = self.state.rests(provider.name, credential.name, now)
            entry: Document = {
                "name": credential.name,
                "type": "token_file" if credential.token_file else "api_key",
                "state": "cooling_down" if rests else "ready",
            }
            if rests:
                latest = max(rests, key=lambda rest: rest[1])
                entry |= {"cooldown_until": latest[1], "cooldown_reason": latest[2]}
            for model, until, why in rests:
                cooldown: Document = {
                    "credential": credential.name,
                    "until": until,
                    "remaining_s": round(until - now, 1),
                    "reason": why,
                }
                cooldowns.append(cooldown | {"model": model} if model else cooldown)
            # Credentials auth keeps: their kind, account, health (and why not), quota.
            entry |= self.state.credentials.document(provider.name, credential.name)
            credentials.append(entry)
        health = self.state.health.get(provider.name)
        totals = self.cluster.totals().get(provider.name)
        reason = self._reason(provider)
        return {
            "provider": provider.name,
            "family": provider.family,
            "enabled": self.state.is_enabled(provider.name, provider.enabled),
            "routable": reason is None,
            "reason": reason,
            "credentials": credentials,
            "cooldowns": cooldowns,
            "health": None
            if health is None
            else {
                "ok": health.ok,
                "checked_at": health.checked_at,
                "latency_ms": health.latency_ms,
                "error": health.error or None,
            },
            "workers": self.cluster.workers(provider.name),
            "in_flight": totals.in_flight if totals else 0,
            "requests": totals.requests if totals else 0,
            "errors": totals.error_count if totals else 0,
            "error_rate": round(totals.error_count / totals.requests, 4)
            if totals and totals.requests
            else 0.0,
        }

    # --- models ----------------------------------------------------------------------

    def _model_object(self, route: ModelRoute) -> Document:
        offers = route.offers
        aliases = sorted({a for o in offers for a in o.model.aliases if a != route.name})
        return {
            "id": route.name,
            "object": "model",
            "created": 0,
            "owned_by": offers[0].provider.name,
            "canonical": route.canonical,
            "aliases": aliases,
            "providers": [o.provider.name for o in offers],
        }

    def models(self, params: dict[str, str]) -> Document:
        provider: str | None = params.get("provider") or None
        if provider is not None:
            self._provider(provider)
        return {
            "object": "list",
            "data": [self._model_object(r) for r in self.catalog.routes(self.state, provider)],
        }

    def _route(self, name: str) -> ModelRoute:
        route = self.catalog.available(name, self.state)
        if route is None:
            raise NotFound(
                f"The model `{name}` does not exist or you do not have access to it.", code="model_not_found"
            )
        return route

    def model(self, name: str) -> Document:
        route = self._route(name)
        return {
            **self._model_object(route),
            "offers": [
                {"provider": o.provider.name, "upstream": o.upstream_model, **self._model_entry(o.model)}
                for o in route.offers
            ],
        }

    def capabilities(self, params: dict[str, str]) -> Document:
        name = params.get("model", "")
        if not name:
            raise InvalidRequest("Missing required query parameter: 'model'.", param="model")
        route = self._route(name)
        feature = params.get("feature", "")
        if feature and feature not in FEATURES:
            raise InvalidRequest(
                f"Unknown feature `{feature}`; expected one of {', '.join(FEATURES)}.", param="feature"
            )
        wanted = [feature] if feature else list(FEATURES)
        providers = [
            {"provider": o.provider.name, **{f: getattr(o.model.features, f) for f in wanted}}
            for o in route.offers
        ]
        document: Document = {"model": name, "providers": providers}
        if feature:
            document |= {"feature": feature, "supported": any(p[feature] for p in providers)}
        else:
            document["features"] = {f: any(p[f] for p in providers) for f in wanted}
        return document

    # --- metrics ---------------------------------------------------------------------

    def metrics(self, params: dict[str, str]) -> Document:
        totals = self.cluster.totals()
        wanted = params.get("provider")
        data = [t.document() for name, t in sorted(totals.items()) if not wanted or name == wanted]
        return {"object": "list", "generated_at": time.time(), "data": data}


def _plain(value: Any) -> Document:
    return {name: getattr(value, name) for name in value.__struct_fields__}
