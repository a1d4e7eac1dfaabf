"""Routing: the catalog built over configured providers, live state, selection strategies,
and the latency histograms the router reads percentiles from."""

from __future__ import annotations

import time

import pytest

from llmbus.config import Config, parse_config
from llmbus.proto import LATENCY_BUCKETS_MS, Needs, Target, WorkerStatus
from llmbus.providers import BUILTIN, AuthType, ConfiguredProvider, ProviderKind, configured_providers
from llmbus.router.cluster import Cluster
from llmbus.router.registry import Registry
from llmbus.routing import (
    Candidates,
    Catalog,
    Health,
    LiveState,
    NoRoute,
    RateLimited,
    RoutingError,
    Selector,
    UnknownModel,
    UnsupportedRequest,
)
from llmbus.telemetry.stats import add_counts, bucket_of, empty_counts, percentile

NOW = 1_700_000_000.0


def providers_of(text: str) -> dict[str, ConfiguredProvider]:
    return configured_providers(parse_config(text, "cfg.yaml", environ={}))


def catalog_of(text: str) -> Catalog:
    config = parse_config(text, "cfg.yaml", environ={})
    return Catalog(configured_providers(config), force_model_prefix=config.force_model_prefix)


def names(catalog: Catalog, state: LiveState | None = None) -> set[str]:
    return {route.name for route in catalog.routes(state or LiveState())}


def flat(candidates: Candidates) -> list[Target]:
    return [target for tier in candidates.tiers for target in tier]


def upstreams(candidates: Candidates) -> dict[str, str]:
    return {t.provider: t.upstream_model for t in [*flat(candidates), *candidates.fallback]}


def target(provider: str, credential: str = "key-1", model: str = "shared") -> Target:
    return Target(provider=provider, credential=credential, upstream_model=model)


# Three custom providers serving one model: two at priority 10 (alpha with two keys), one at 1.
TIERED = """
providers:
  alpha:
    endpoint: http://alpha/v1
    api_keys: [ka1, ka2]
    priority: 10
    models: [shared]
  beta:
    endpoint: http://beta/v1
    api_key: kb
    priority: 10
    models: [shared]
  gamma:
    endpoint: http://gamma/v1
    api_key: kg
    priority: 1
    models: [shared]
"""


# --- the providers every configuration has ----------------------------------------------


DIRECT = {"claude", "gemini", "openai", "mistral", "groq", "deepseek"}
AGGREGATORS = {"openrouter", "together", "fireworks", "novita", "siliconflow"}
PROPRIETARY = {"kiro", "copilot", "roocode", "kiloai", "minimax"}


def test_registry_holds_sixteen_builtins_split_into_direct_aggregator_and_proprietary() -> None:
    assert len(BUILTIN) == 16
    assert {n for n, s in BUILTIN.items() if s.kind is ProviderKind.DIRECT} == DIRECT
    assert {n for n, s in BUILTIN.items() if s.kind is ProviderKind.AGGREGATOR} == AGGREGATORS
    assert {n for n, s in BUILTIN.items() if s.kind is ProviderKind.PROPRIETARY} == PROPRIETARY


def test_an_empty_config_still_registers_every_builtin_with_the_registry_kind() -> None:
    providers = configured_providers(Config())
    assert set(providers) == set(BUILTIN)
    for name, provider in providers.items():
        assert provider.kind is BUILTIN[name].kind, name
        assert provider.configured is False, name
        assert provider.type == name


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_an_unconfigured_builtin_is_not_routable_for_lack_of_credentials(name: str) -> None:
    provider = configured_providers(Config())[name]
    assert provider.credentials == ()
    assert provider.unroutable_reason is not None
    assert "no credentials" in provider.unroutable_reason


def test_unconfigured_copilot_points_at_its_device_flow_sign_in() -> None:
    copilot = configured_providers(Config())["copilot"]
    assert copilot.auth_type is AuthType.OAUTH_DEVICE_FLOW
    assert copilot.unroutable_reason is not None
    assert "/v0/oauth/copilot" in copilot.unroutable_reason


def test_unconfigured_api_key_provider_asks_for_an_api_key() -> None:
    reason = configured_providers(Config())["openai"].unroutable_reason
    assert reason == "no credentials: configure an API key"


def test_an_empty_config_gives_a_catalog_with_no_routable_names() -> None:
    catalog = Catalog(configured_providers(Config()))
    assert catalog.routes(LiveState()) == []
    with pytest.raises(UnknownModel):
        catalog.resolve("gpt-4o", Needs(), LiveState(), now=NOW)


def test_a_provider_with_a_key_is_routable_and_marked_configured() -> None:
    openai = providers_of("providers:\n  openai:\n    api_key: sk\n")["openai"]
    assert openai.configured is True
    assert openai.unroutable_reason is None
    assert [c.name for c in openai.credentials] == ["key-1"]


def test_a_provider_disabled_in_config_says_disabled() -> None:
    openai = providers_of("providers:\n  openai:\n    api_key: sk\n    enabled: false\n")["openai"]
    assert openai.unroutable_reason == "disabled"


# --- model mappings ----------------------------------------------------------------------

KEYED = """
providers:
  claude:
    api_key: kc
  openai:
    api_key: ko
  openrouter:
    api_key: kr
"""


def test_claude_3_5_sonnet_maps_to_the_spec_default_upstreams() -> None:
    candidates = catalog_of(KEYED).resolve("claude-3-5-sonnet", Needs(), LiveState(), now=NOW)
    assert upstreams(candidates) == {
        "claude": "claude-3-5-sonnet-20241022",
        "openrouter": "anthropic/claude-3.5-sonnet",
    }


def test_gpt_4_turbo_maps_to_the_spec_default_upstreams() -> None:
    candidates = catalog_of(KEYED).resolve("gpt-4-turbo", Needs(), LiveState(), now=NOW)
    assert upstreams(candidates) == {"openai": "gpt-4-turbo-preview", "openrouter": "openai/gpt-4-turbo"}


def test_a_model_without_a_default_mapping_keeps_its_name_upstream() -> None:
    candidates = catalog_of(KEYED).resolve("gpt-4o", Needs(), LiveState(), now=NOW)
    assert upstreams(candidates) == {"openai": "gpt-4o"}


def test_an_explicit_upstream_wins_over_the_default_mapping() -> None:
    catalog = catalog_of(
        "providers:\n  claude:\n    api_key: k\n"
        "    models: [{name: claude-3-5-sonnet, upstream: claude-3-5-sonnet-latest}]\n"
    )
    candidates = catalog.resolve("claude-3-5-sonnet", Needs(), LiveState(), now=NOW)
    assert upstreams(candidates) == {"claude": "claude-3-5-sonnet-latest"}


def test_a_model_mappings_entry_wins_over_the_default_mapping() -> None:
    catalog = catalog_of(
        "providers:\n  openai:\n    api_key: k\n    model_mappings: {gpt-4-turbo: gpt-4-turbo-2024-04-09}\n"
    )
    candidates = catalog.resolve("gpt-4-turbo", Needs(), LiveState(), now=NOW)
    assert upstreams(candidates) == {"openai": "gpt-4-turbo-2024-04-09"}


def test_an_explicit_upstream_wins_over_model_mappings() -> None:
    catalog = catalog_of(
        "providers:\n  openai:\n    api_key: k\n    models: [{name: gpt-4-turbo, upstream: from-entry}]\n"
        "    model_mappings: {gpt-4-turbo: from-mappings}\n"
    )
    candidates = catalog.resolve("gpt-4-turbo", Needs(), LiveState(), now=NOW)
    assert upstreams(candidates) == {"openai": "from-entry"}


def test_model_mappings_keys_alone_make_a_custom_provider_serve_them() -> None:
    text = (
        "providers:\n  custom:\n    endpoint: https://llm.example.com/v1\n    api_key: sk-custom\n"
        '    model_mappings: {"gpt-4": "my-provider-v1-large"}\n'
    )
    custom = providers_of(text)["custom"]
    assert custom.kind is ProviderKind.CUSTOM
    assert [(m.name, m.upstream) for m in custom.models] == [("gpt-4", "my-provider-v1-large")]
    catalog = catalog_of(text)
    assert names(catalog) == {"gpt-4", "custom/gpt-4"}
    candidates = catalog.resolve("gpt-4", Needs(), LiveState(), now=NOW)
    assert flat(candidates) == [
        Target(provider="custom", credential="key-1", upstream_model="my-provider-v1-large")
    ]


def test_model_mappings_add_to_a_builtins_default_models() -> None:
    openai = providers_of("providers:\n  openai:\n    api_key: k\n    model_mappings: {o1: o1-2024-12-17}\n")[
        "openai"
    ]
    served = {m.name: m.upstream for m in openai.models}
    assert served["o1"] == "o1-2024-12-17"
    assert {"gpt-4o", "gpt-4-turbo", "gpt-3.5-turbo"} <= set(served)


# --- catalog names -----------------------------------------------------------------------


def test_a_model_is_reachable_plain_by_alias_and_qualified_by_provider() -> None:
    catalog = catalog_of(
        "providers:\n  openai:\n    api_key: k\n    models: [{name: gpt-4o-mini, alias: mini}]\n"
    )
    assert names(catalog) == {"gpt-4o-mini", "mini", "openai/gpt-4o-mini", "openai/mini"}


def test_a_prefixed_provider_is_also_reachable_as_prefix_slash_model() -> None:
    catalog = catalog_of(
        "providers:\n  openai:\n    api_key: k\n    prefix: oa\n"
        "    models: [{name: gpt-4o-mini, alias: mini}]\n"
    )
    assert names(catalog) == {
        "gpt-4o-mini",
        "mini",
        "oa/gpt-4o-mini",
        "oa/mini",
        "openai/gpt-4o-mini",
        "openai/mini",
    }


def test_every_name_of_a_model_resolves_to_the_same_upstream() -> None:
    catalog = catalog_of(
        "providers:\n  openai:\n    api_key: k\n    prefix: oa\n"
        "    models: [{name: fast, upstream: gpt-4o-mini, alias: mini}]\n"
    )
    for name in ("fast", "mini", "oa/fast", "oa/mini", "openai/fast", "openai/mini"):
        candidates = catalog.resolve(name, Needs(), LiveState(), now=NOW)
        assert flat(candidates) == [target("openai", model="gpt-4o-mini")], name
        route = catalog.route(name)
        assert route is not None
        assert route.canonical == "fast"


def test_force_model_prefix_hides_a_prefixed_providers_plain_names_only() -> None:
    catalog = catalog_of(
        "force-model-prefix: true\n"
        "providers:\n"
        "  openai:\n    api_key: k\n    prefix: oa\n    models: [{name: gpt-4o-mini, alias: mini}]\n"
        "  claude:\n    api_key: k\n    models: [claude-haiku-4-5]\n"
    )
    assert names(catalog) == {
        "oa/gpt-4o-mini",
        "oa/mini",
        "openai/gpt-4o-mini",
        "openai/mini",
        "claude-haiku-4-5",
        "claude/claude-haiku-4-5",
    }
    with pytest.raises(UnknownModel):
        catalog.resolve("gpt-4o-mini", Needs(), LiveState(), now=NOW)
    assert flat(catalog.resolve("oa/mini", Needs(), LiveState(), now=NOW)) == [
        target("openai", model="gpt-4o-mini")
    ]


def test_without_force_model_prefix_a_plain_name_reaches_prefixed_and_plain_providers() -> None:
    catalog = catalog_of(
        "providers:\n"
        "  openai:\n    api_key: k\n    prefix: oa\n    models: [gpt-4o]\n"
        "  openrouter:\n    api_key: k\n    models: [{name: gpt-4o, upstream: openai/gpt-4o}]\n"
    )
    assert upstreams(catalog.resolve("gpt-4o", Needs(), LiveState(), now=NOW)) == {
        "openai": "gpt-4o",
        "openrouter": "openai/gpt-4o",
    }
    assert upstreams(catalog.resolve("oa/gpt-4o", Needs(), LiveState(), now=NOW)) == {"openai": "gpt-4o"}
    assert upstreams(catalog.resolve("openrouter/gpt-4o", Needs(), LiveState(), now=NOW)) == {
        "openrouter": "openai/gpt-4o"
    }


def test_routes_for_one_provider_list_only_the_names_reaching_it() -> None:
    catalog = catalog_of(
        TIERED + "  solo:\n    endpoint: http://solo/v1\n    api_key: ks\n    models: [only]\n"
    )
    solo = {route.name for route in catalog.routes(LiveState(), provider="solo")}
    assert solo == {"only", "solo/only"}


def test_routes_leave_out_names_served_only_by_disabled_providers() -> None:
    catalog = catalog_of(
        TIERED + "  solo:\n    endpoint: http://solo/v1\n    api_key: ks\n    models: [only]\n"
    )
    visible = names(catalog, LiveState(enabled={"solo": False}))
    assert "only" not in visible
    assert "solo/only" not in visible
    assert "shared" in visible


# --- exclusions --------------------------------------------------------------------------


def test_a_top_level_exact_exclusion_hides_the_model_under_every_name() -> None:
    catalog = catalog_of("excluded-models: [gpt-4o]\nproviders:\n  openai:\n    api_key: k\n")
    visible = names(catalog)
    assert "gpt-4o" not in visible
    assert "openai/gpt-4o" not in visible
    assert "gpt-4o-mini" in visible
    for name in ("gpt-4o", "openai/gpt-4o"):
        with pytest.raises(UnknownModel) as caught:
            catalog.resolve(name, Needs(), LiveState(), now=NOW)
        assert caught.value.status == 404
        assert caught.value.code == "model_not_found"
        assert caught.value.model == name


def test_a_top_level_wildcard_exclusion_hides_every_matching_model() -> None:
    catalog = catalog_of('excluded-models: ["gpt-4*"]\nproviders:\n  openai:\n    api_key: k\n')
    assert names(catalog) == {"gpt-3.5-turbo", "openai/gpt-3.5-turbo"}
    with pytest.raises(UnknownModel):
        catalog.resolve("gpt-4o-mini", Needs(), LiveState(), now=NOW)


def test_a_top_level_exclusion_applies_to_every_provider() -> None:
    catalog = catalog_of("excluded-models: [gpt-4-turbo]\n" + KEYED)
    with pytest.raises(UnknownModel):
        catalog.resolve("gpt-4-turbo", Needs(), LiveState(), now=NOW)
    assert "openrouter/gpt-4-turbo" not in names(catalog)


def test_a_provider_exclusion_hides_the_model_at_that_provider_only() -> None:
    catalog = catalog_of(
        "providers:\n  openai:\n    api_key: k\n    excluded_models: [gpt-4-turbo]\n"
        "  openrouter:\n    api_key: k\n"
    )
    assert upstreams(catalog.resolve("gpt-4-turbo", Needs(), LiveState(), now=NOW)) == {
        "openrouter": "openai/gpt-4-turbo"
    }
    with pytest.raises(UnknownModel):
        catalog.resolve("openai/gpt-4-turbo", Needs(), LiveState(), now=NOW)


def test_a_provider_wildcard_exclusion_hides_matching_models() -> None:
    catalog = catalog_of(
        'providers:\n  openai:\n    api_key: k\n    excluded_models: ["*mini", "gpt-3.5-*"]\n'
    )
    assert {n for n in names(catalog) if "/" not in n} == {"gpt-4-turbo", "gpt-4", "gpt-4o"}


def test_an_exclusion_matching_the_upstream_name_hides_the_client_name() -> None:
    catalog = catalog_of("excluded-models: [gpt-4-turbo-preview]\nproviders:\n  openai:\n    api_key: k\n")
    with pytest.raises(UnknownModel):
        catalog.resolve("gpt-4-turbo", Needs(), LiveState(), now=NOW)


def test_a_wildcard_exclusion_does_not_treat_brackets_as_a_character_class() -> None:
    catalog = catalog_of(
        'excluded-models: ["[ab]*"]\nproviders:\n  x:\n    endpoint: http://x/v1\n    api_key: k\n'
        "    models: [a1, '[ab]1']\n"
    )
    assert names(catalog) == {"a1", "x/a1"}


def test_an_excluded_alias_is_refused_like_any_excluded_name() -> None:
    catalog = catalog_of(
        "excluded-models: [mini]\nproviders:\n  openai:\n    api_key: k\n"
        "    models: [{name: gpt-4o-mini, alias: mini}]\n"
    )
    with pytest.raises(UnknownModel):
        catalog.resolve("mini", Needs(), LiveState(), now=NOW)


def test_an_unknown_model_is_a_404_routing_error() -> None:
    with pytest.raises(RoutingError) as caught:
        catalog_of(TIERED).resolve("nope", Needs(), LiveState(), now=NOW)
    assert isinstance(caught.value, UnknownModel)
    assert caught.value.status == 404
    assert "`nope`" in caught.value.message


# --- capabilities ------------------------------------------------------------------------

CAPABILITIES = """
providers:
  plain:
    endpoint: http://plain/v1
    api_key: kp
    models:
      - {name: m, supports_functions: false, supports_streaming: false, supports_vision: false}
  full:
    endpoint: http://full/v1
    api_key: kf
    models: [m]
"""


@pytest.mark.parametrize(
    "needs",
    [Needs(tools=True), Needs(streaming=True), Needs(vision=True)],
    ids=["tools", "streaming", "vision"],
)
def test_a_request_needing_a_capability_skips_providers_without_it(needs: Needs) -> None:
    candidates = catalog_of(CAPABILITIES).resolve("m", needs, LiveState(), now=NOW)
    assert flat(candidates) == [target("full", model="m")]


def test_a_request_needing_nothing_special_reaches_every_provider() -> None:
    candidates = catalog_of(CAPABILITIES).resolve("m", Needs(), LiveState(), now=NOW)
    assert flat(candidates) == [target("plain", model="m"), target("full", model="m")]


def test_tools_on_a_model_without_function_support_is_a_400() -> None:
    catalog = catalog_of(
        "providers:\n  openai:\n    api_key: k\n    models: [{name: gpt-4o, supports_functions: false}]\n"
    )
    assert flat(catalog.resolve("gpt-4o", Needs(), LiveState(), now=NOW)) == [
        target("openai", model="gpt-4o")
    ]
    with pytest.raises(UnsupportedRequest) as caught:
        catalog.resolve("gpt-4o", Needs(tools=True), LiveState(), now=NOW)
    assert caught.value.status == 400
    assert caught.value.code == "unsupported_capability"
    assert "tools" in caught.value.message


def test_images_on_a_provider_without_vision_is_a_400() -> None:
    catalog = catalog_of("providers:\n  groq:\n    api_key: k\n")
    with pytest.raises(UnsupportedRequest) as caught:
        catalog.resolve("llama-3.3-70b-versatile", Needs(vision=True), LiveState(), now=NOW)
    assert "vision" in caught.value.message


def test_streaming_on_a_model_that_cannot_stream_is_a_400() -> None:
    catalog = catalog_of(
        "providers:\n  openai:\n    api_key: k\n    models: [{name: gpt-4o, supports_streaming: false}]\n"
    )
    with pytest.raises(UnsupportedRequest) as caught:
        catalog.resolve("gpt-4o", Needs(streaming=True), LiveState(), now=NOW)
    assert "streaming" in caught.value.message


def test_a_provider_feature_override_turns_a_capability_off_for_its_models() -> None:
    catalog = catalog_of("providers:\n  openai:\n    api_key: k\n    features: {vision: false}\n")
    with pytest.raises(UnsupportedRequest):
        catalog.resolve("gpt-4o", Needs(vision=True), LiveState(), now=NOW)
    assert flat(catalog.resolve("gpt-4o", Needs(tools=True), LiveState(), now=NOW))


def test_a_model_override_turns_a_capability_on_against_the_provider_features() -> None:
    catalog = catalog_of(
        "providers:\n  groq:\n    api_key: k\n"
        "    models: [{name: llama-3.3-70b-versatile, supports_vision: true}]\n"
    )
    candidates = catalog.resolve("llama-3.3-70b-versatile", Needs(vision=True), LiveState(), now=NOW)
    assert [t.provider for t in flat(candidates)] == ["groq"]


# --- enabled, cooling down, health -------------------------------------------------------


def test_a_provider_disabled_at_run_time_is_skipped() -> None:
    candidates = catalog_of(TIERED).resolve("shared", Needs(), LiveState(enabled={"beta": False}), now=NOW)
    assert "beta" not in {t.provider for t in [*flat(candidates), *candidates.fallback]}
    assert {t.provider for t in flat(candidates)} == {"alpha", "gamma"}


def test_a_model_served_only_by_disabled_providers_is_a_503_provider_disabled() -> None:
    state = LiveState(enabled={"alpha": False, "beta": False, "gamma": False})
    with pytest.raises(NoRoute) as caught:
        catalog_of(TIERED).resolve("shared", Needs(), state, now=NOW)
    assert caught.value.code == "provider_disabled"
    assert caught.value.status == 503
    assert "alpha, beta, gamma" in caught.value.message


def test_a_provider_disabled_in_config_can_be_enabled_at_run_time() -> None:
    catalog = catalog_of(
        "providers:\n  x:\n    endpoint: http://x/v1\n    api_key: k\n    enabled: false\n    models: [m]\n"
    )
    with pytest.raises(NoRoute):
        catalog.resolve("m", Needs(), LiveState(), now=NOW)
    assert flat(catalog.resolve("m", Needs(), LiveState(enabled={"x": True}), now=NOW)) == [
        target("x", model="m")
    ]


def test_a_cooling_credential_is_skipped_while_its_siblings_stay() -> None:
    state = LiveState()
    state.cool_down("alpha", "key-1", NOW + 30, "429 from upstream")
    candidates = catalog_of(TIERED).resolve("shared", Needs(), state, now=NOW)
    assert flat(candidates) == [target("alpha", "key-2"), target("beta"), target("gamma")]


def test_every_credential_cooling_is_a_429_with_the_shortest_wait() -> None:
    state = LiveState()
    state.cool_down("alpha", "key-1", NOW + 50, "rate limited")
    state.cool_down("alpha", "key-2", NOW + 40, "rate limited")
    state.cool_down("beta", "key-1", NOW + 30, "auth failed")
    state.cool_down("gamma", "key-1", NOW + 60, "rate limited")
    with pytest.raises(RateLimited) as caught:
        catalog_of(TIERED).resolve("shared", Needs(), state, now=NOW)
    assert caught.value.status == 429
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after == pytest.approx(30.0)
    assert "beta/key-1: auth failed" in caught.value.message
    assert "retry in 30s" in caught.value.message


def test_a_cooldown_that_has_expired_frees_the_credential() -> None:
    state = LiveState()
    state.cool_down("beta", "key-1", NOW - 1, "rate limited")
    candidates = catalog_of(TIERED).resolve("shared", Needs(), state, now=NOW)
    assert target("beta") in flat(candidates)
    assert ("beta", "key-1", "") not in state.cooldowns
    assert ("beta", "key-1", "") not in state.cooldown_reasons


def test_a_shorter_cooldown_does_not_cut_a_longer_one() -> None:
    state = LiveState()
    state.cool_down("beta", "key-1", NOW + 60, "first")
    state.cool_down("beta", "key-1", NOW + 10, "second")
    assert state.cooling_until("beta", "key-1", now=NOW) == NOW + 60
    assert state.reason("beta", "key-1") == "first"


def test_cooling_wins_over_incapable_when_explaining_why_nothing_can_serve() -> None:
    state = LiveState()
    state.cool_down("full", "key-1", NOW + 5, "rate limited")
    with pytest.raises(RateLimited):
        catalog_of(CAPABILITIES).resolve("m", Needs(tools=True), state, now=NOW)


def test_an_unhealthy_provider_goes_to_the_fallback_list() -> None:
    state = LiveState(health={"beta": Health(ok=False, checked_at=NOW, error="timeout")})
    candidates = catalog_of(TIERED).resolve("shared", Needs(), state, now=NOW)
    assert flat(candidates) == [target("alpha", "key-1"), target("alpha", "key-2"), target("gamma")]
    assert candidates.fallback == [target("beta")]


def test_a_healthy_check_keeps_the_provider_in_its_tier() -> None:
    state = LiveState(health={"beta": Health(ok=True, checked_at=NOW)})
    candidates = catalog_of(TIERED).resolve("shared", Needs(), state, now=NOW)
    assert target("beta") in candidates.tiers[0]
    assert candidates.fallback == []


def test_all_providers_unhealthy_still_gives_candidates_in_config_order() -> None:
    state = LiveState(health={n: Health(ok=False, checked_at=NOW) for n in ("alpha", "beta", "gamma")})
    candidates = catalog_of(TIERED).resolve("shared", Needs(), state, now=NOW)
    assert candidates.tiers == []
    assert candidates.fallback == [
        target("alpha", "key-1"),
        target("alpha", "key-2"),
        target("beta"),
        target("gamma"),
    ]


def test_a_provider_without_a_live_worker_goes_to_the_fallback_once_heartbeats_are_seen() -> None:
    state = LiveState(workers_seen={"alpha": time.monotonic(), "gamma": time.monotonic()})
    candidates = catalog_of(TIERED).resolve("shared", Needs(), state, now=NOW)
    assert candidates.fallback == [target("beta")]
    assert target("beta") not in flat(candidates)


def test_priority_tiers_come_highest_first_each_in_config_order() -> None:
    candidates = catalog_of(TIERED).resolve("shared", Needs(), LiveState(), now=NOW)
    assert candidates.tiers == [
        [target("alpha", "key-1"), target("alpha", "key-2"), target("beta")],
        [target("gamma")],
    ]
    assert candidates.fallback == []


def test_negative_priorities_sort_below_the_default() -> None:
    catalog = catalog_of(
        "providers:\n"
        "  low:\n    endpoint: http://l/v1\n    api_key: k\n    priority: -5\n    models: [m]\n"
        "  mid:\n    endpoint: http://m/v1\n    api_key: k\n    models: [m]\n"
        "  high:\n    endpoint: http://h/v1\n    api_key: k\n    priority: 3\n    models: [m]\n"
    )
    candidates = catalog.resolve("m", Needs(), LiveState(), now=NOW)
    assert [[t.provider for t in tier] for tier in candidates.tiers] == [["high"], ["mid"], ["low"]]


# --- selection ---------------------------------------------------------------------------

A, B, C = target("a"), target("b"), target("c")
D, E = target("d"), target("e")
F = target("f")


def two_tiers() -> Candidates:
    return Candidates(tiers=[[A, B, C], [D, E]], fallback=[F])


def test_priority_rotates_inside_the_top_tier() -> None:
    selector = Selector("priority")
    plans = [selector.order("m", two_tiers()) for _ in range(3)]
    assert [plan[:3] for plan in plans] == [[A, B, C], [B, C, A], [C, A, B]]


def test_priority_keeps_lower_tiers_after_the_top_tier_and_fallback_last() -> None:
    selector = Selector("priority")
    for _ in range(4):
        plan = selector.order("m", two_tiers())
        assert len(plan) == 6
        assert set(plan[3:5]) == {D, E}
        assert plan[5] == F


def test_priority_is_the_default_strategy() -> None:
    assert Selector().strategy == "priority"
    selector = Selector()
    firsts = [selector.order("m", two_tiers())[0] for _ in range(3)]
    assert firsts == [A, B, C]


def test_round_robin_rotates_across_every_tier() -> None:
    selector = Selector("round-robin")
    plans = [selector.order("m", two_tiers()) for _ in range(5)]
    assert [plan[0] for plan in plans] == [A, B, C, D, E]
    assert plans[3] == [D, E, A, B, C, F]


def test_fill_first_keeps_config_order_every_time() -> None:
    selector = Selector("fill-first")
    for _ in range(3):
        assert selector.order("m", two_tiers()) == [A, B, C, D, E, F]


@pytest.mark.parametrize("strategy", ["priority", "round-robin", "fill-first"])
def test_the_fallback_list_always_comes_last(strategy: str) -> None:
    selector = Selector(strategy)  # type: ignore[arg-type]
    candidates = Candidates(tiers=[[A, B], [C]], fallback=[D, E])
    for _ in range(3):
        assert selector.order("m", candidates)[-2:] == [D, E]
    assert selector.order("m", Candidates(tiers=[], fallback=[D, E])) == [D, E]


@pytest.mark.parametrize("strategy", ["priority", "round-robin", "fill-first"])
def test_a_single_candidate_is_the_whole_plan(strategy: str) -> None:
    selector = Selector(strategy)  # type: ignore[arg-type]
    for _ in range(2):
        assert selector.order("m", Candidates(tiers=[[A]], fallback=[])) == [A]


def test_each_model_keeps_its_own_rotation() -> None:
    selector = Selector("round-robin")
    candidates = Candidates(tiers=[[A, B]], fallback=[])
    assert selector.order("m1", candidates)[0] == A
    assert selector.order("m2", candidates)[0] == A
    assert selector.order("m1", candidates)[0] == B


def test_selector_follows_the_strategy_of_the_config_over_resolved_candidates() -> None:
    config = parse_config("routing:\n  strategy: fill-first\n" + TIERED, "cfg.yaml", environ={})
    catalog = Catalog(configured_providers(config))
    selector = Selector(config.routing.strategy)
    plans = [
        selector.order("shared", catalog.resolve("shared", Needs(), LiveState(), now=NOW)) for _ in range(2)
    ]
    assert (
        plans[0]
        == plans[1]
        == [target("alpha", "key-1"), target("alpha", "key-2"), target("beta"), target("gamma")]
    )


# --- latency histograms ------------------------------------------------------------------

OVERFLOW = len(LATENCY_BUCKETS_MS)


def test_empty_counts_have_one_slot_per_bucket_plus_overflow() -> None:
    assert empty_counts() == [0] * (len(LATENCY_BUCKETS_MS) + 1)


@pytest.mark.parametrize(
    ("milliseconds", "bucket"),
    [(0.0, 0), (5.0, 0), (5.1, 1), (10.0, 1), (99.0, 4), (300_000.0, OVERFLOW - 1), (300_000.1, OVERFLOW)],
)
def test_bucket_of_puts_a_value_on_an_upper_bound_into_that_bucket(milliseconds: float, bucket: int) -> None:
    assert bucket_of(milliseconds) == bucket


def test_add_counts_sums_histograms_bucket_by_bucket() -> None:
    one = empty_counts()
    two = empty_counts()
    one[0], one[OVERFLOW] = 2, 1
    two[0], two[3] = 5, 7
    total = add_counts([one, two])
    assert total[0] == 7
    assert total[3] == 7
    assert total[OVERFLOW] == 1
    assert sum(total) == 15


def test_add_counts_of_nothing_is_empty_and_ignores_extra_slots() -> None:
    assert add_counts([]) == empty_counts()
    longer = [1] * (OVERFLOW + 3)
    assert add_counts([longer]) == [1] * (OVERFLOW + 1)


def test_percentile_of_an_empty_histogram_is_none() -> None:
    assert percentile(empty_counts(), 0.5) is None
    assert percentile([], 0.99) is None


def test_percentile_interpolates_inside_its_bucket() -> None:
    counts = empty_counts()
    counts[bucket_of(75.0)] = 10  # the (50, 100] bucket
    assert percentile(counts, 0.5) == pytest.approx(75.0)
    assert percentile(counts, 0.1) == pytest.approx(55.0)


def test_percentiles_are_monotonic() -> None:
    counts = empty_counts()
    for ms, n in ((3.0, 40), (40.0, 30), (400.0, 20), (4_000.0, 9), (400_000.0, 1)):
        counts[bucket_of(ms)] += n
    p50, p95, p99 = (percentile(counts, q) for q in (0.5, 0.95, 0.99))
    assert p50 is not None
    assert p95 is not None
    assert p99 is not None
    assert p50 <= p95 <= p99
    assert p50 < p99


def test_the_overflow_bucket_reports_its_lower_bound() -> None:
    counts = empty_counts()
    counts[bucket_of(10_000_000.0)] = 4
    assert percentile(counts, 0.5) == float(LATENCY_BUCKETS_MS[-1])
    assert percentile(counts, 0.99) == float(LATENCY_BUCKETS_MS[-1])


# --- providers without a live worker -----------------------------------------------------

# An OpenAI provider and a Kiro provider, both with credentials and models.
TWO_FAMILIES = """
providers:
  openai:
    api_key: k
    models: [gpt-4o]
  spare:
    type: openai
    api_key: k
    models: [gpt-4o]
kiro:
  - token-file: /t.json
"""


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def registry_of(text: str, clock: Clock) -> Registry:
    state = LiveState()
    return Registry(catalog_of(text), state, Cluster(state, clock=clock))


def heartbeat(registry: Registry, family: str, providers: list[str], instance: str = "w1") -> None:
    registry.cluster.update(WorkerStatus(instance=instance, family=family, providers=providers, interval=2.0))


def reasons(registry: Registry) -> dict[str, str | None]:
    listing = registry.providers({})["data"]
    return {item["id"]: item["reason"] for item in listing if item["id"] in {"openai", "spare", "kiro"}}


def test_a_provider_whose_family_has_no_live_worker_is_not_routable_with_that_reason() -> None:
    clock = Clock()
    registry = registry_of(TWO_FAMILIES, clock)
    heartbeat(registry, "openai", ["openai", "spare"])
    assert reasons(registry) == {"openai": None, "spare": None, "kiro": "no live worker for family kiro"}
    status = registry.provider_status("kiro")
    assert (status["routable"], status["reason"], status["family"]) == (
        False,
        "no live worker for family kiro",
        "kiro",
    )


def test_a_provider_left_out_by_the_live_workers_of_its_family_says_so() -> None:
    clock = Clock()
    registry = registry_of(TWO_FAMILIES, clock)
    heartbeat(registry, "openai", ["openai"])
    reason = reasons(registry)["spare"]
    assert reason is not None
    assert reason.startswith("no live worker serves it: the live workers of family openai leave it out")


def test_a_worker_that_stops_reporting_takes_its_providers_with_it() -> None:
    clock = Clock()
    registry = registry_of(TWO_FAMILIES, clock)
    heartbeat(registry, "openai", ["openai", "spare"])
    heartbeat(registry, "kiro", ["kiro"], instance="w2")
    assert reasons(registry)["kiro"] is None
    clock.now += 5.0  # both within three intervals of 2 s
    heartbeat(registry, "openai", ["openai", "spare"])
    clock.now += 2.0  # the kiro worker is 7 s silent: gone
    assert reasons(registry) == {"openai": None, "spare": None, "kiro": "no live worker for family kiro"}


def test_right_after_start_no_provider_is_blamed_on_missing_workers() -> None:
    clock = Clock()
    registry = registry_of(TWO_FAMILIES, clock)
    assert reasons(registry) == {"openai": None, "spare": None, "kiro": None}


def test_when_no_worker_reports_within_the_staleness_window_every_provider_lacks_one() -> None:
    clock = Clock()
    registry = registry_of(TWO_FAMILIES, clock)
    clock.now += registry.state.worker_timeout
    assert reasons(registry) == {
        "openai": "no live worker for family openai",
        "spare": "no live worker for family openai",
        "kiro": "no live worker for family kiro",
    }


def test_missing_credentials_explain_a_provider_before_missing_workers() -> None:
    clock = Clock()
    registry = registry_of(TWO_FAMILIES, clock)
    heartbeat(registry, "openai", ["openai"])
    claude = registry.provider("claude")
    assert claude["reason"] == "no credentials: configure an API key"


def test_a_provider_disabled_in_config_and_switched_on_is_explained_by_its_other_reasons() -> None:
    clock = Clock()
    registry = registry_of("providers:\n  openai:\n    enabled: false\n", clock)
    registry.state.enabled["openai"] = True
    assert registry.provider("openai")["reason"] == "no credentials: configure an API key"


def test_a_provider_whose_worker_went_silent_is_tried_after_those_with_live_workers() -> None:
    now = time.monotonic()
    state = LiveState(workers_seen={"alpha": now, "beta": now - 100.0, "gamma": now})
    candidates = catalog_of(TIERED).resolve("shared", Needs(), state, now=NOW)
    assert candidates.fallback == [target("beta")]
    assert Selector("fill-first").order("shared", candidates)[-1] == target("beta")
