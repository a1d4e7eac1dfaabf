"""Credential rests in the router's live state: a 429 rests one model, a 401 every
model; when a rest ends exactly one request probes the credential; recovery, a new
refusal or the probe window end the probation; a management clear ends rests now."""

from __future__ import annotations

import pytest

from llmbus.proto import Needs
from llmbus.routing import LiveState, RateLimited
from tests.unit.test_routing import NOW, TIERED, catalog_of, flat, target

TWO_MODELS = """
providers:
  alpha:
    endpoint: http://alpha/v1
    api_key: ka
    models: [m1, m2]
"""


def test_a_rest_for_one_model_leaves_the_credential_to_the_others() -> None:
    state = LiveState()
    state.cool_down("alpha", "key-1", NOW + 30, "429", model="m1")
    catalog = catalog_of(TWO_MODELS)
    with pytest.raises(RateLimited):
        catalog.resolve("m1", Needs(), state, now=NOW)
    assert flat(catalog.resolve("m2", Needs(), state, now=NOW)) == [target("alpha", model="m2")]


def test_a_rest_for_every_model_rests_each_of_them() -> None:
    state = LiveState()
    state.cool_down("alpha", "key-1", NOW + 30, "401", model="")
    catalog = catalog_of(TWO_MODELS)
    for model in ("m1", "m2"):
        with pytest.raises(RateLimited):
            catalog.resolve(model, Needs(), state, now=NOW)


def test_exactly_one_request_probes_a_credential_whose_rest_ended() -> None:
    state = LiveState()
    state.cool_down("beta", "key-1", NOW + 10, "429", model="shared")
    catalog = catalog_of(TIERED)
    later = NOW + 11
    first = catalog.resolve("shared", Needs(), state, now=later)
    second = catalog.resolve("shared", Needs(), state, now=later + 0.1)
    assert target("beta") in flat(first)
    assert target("beta") not in flat(second), "the others wait for the probe"


def test_a_recovery_report_ends_the_probation() -> None:
    state = LiveState()
    state.cool_down("beta", "key-1", NOW + 10, "429", model="shared")
    catalog = catalog_of(TIERED)
    catalog.resolve("shared", Needs(), state, now=NOW + 11)
    state.recovered("beta", "key-1", "shared")
    assert target("beta") in flat(catalog.resolve("shared", Needs(), state, now=NOW + 11.5))


def test_a_probe_that_never_reports_frees_the_credential_after_the_window() -> None:
    state = LiveState(probe_window=5)
    state.cool_down("beta", "key-1", NOW + 10, "429", model="shared")
    catalog = catalog_of(TIERED)
    catalog.resolve("shared", Needs(), state, now=NOW + 11)
    assert target("beta") not in flat(catalog.resolve("shared", Needs(), state, now=NOW + 15))
    assert target("beta") in flat(catalog.resolve("shared", Needs(), state, now=NOW + 16.1))


def test_a_refused_probe_rests_the_credential_again() -> None:
    state = LiveState()
    state.cool_down("beta", "key-1", NOW + 10, "429", model="shared")
    catalog_of(TIERED).resolve("shared", Needs(), state, now=NOW + 11)
    state.cool_down("beta", "key-1", NOW + 40, "429 again", model="shared")
    assert state.probation == {}
    assert state.cooling_until("beta", "key-1", "shared", now=NOW + 12) == NOW + 40


def test_while_every_credential_waits_for_its_probe_the_client_gets_a_short_retry_after() -> None:
    state = LiveState(probe_window=3)
    state.cool_down("alpha", "key-1", NOW + 10, "429", model="m1")
    catalog = catalog_of(TWO_MODELS)
    catalog.resolve("m1", Needs(), state, now=NOW + 10)
    with pytest.raises(RateLimited) as caught:
        catalog.resolve("m1", Needs(), state, now=NOW + 11)
    assert caught.value.retry_after == pytest.approx(2.0)
    assert "probing" in caught.value.message


def test_clearing_ends_the_matching_rests_only() -> None:
    state = LiveState()
    state.cool_down("alpha", "key-1", NOW + 30, "429", model="m1")
    state.cool_down("alpha", "key-1", NOW + 30, "429", model="m2")
    state.cool_down("alpha", "key-2", NOW + 30, "401")
    state.cool_down("beta", "key-1", NOW + 30, "401")
    assert state.clear("alpha", credential="key-1", model="m1") == 1
    assert set(state.cooldowns) == {
        ("alpha", "key-1", "m2"),
        ("alpha", "key-2", ""),
        ("beta", "key-1", ""),
    }
    assert state.clear("alpha") == 2
    assert set(state.cooldowns) == {("beta", "key-1", "")}


def test_the_rests_of_a_credential_are_listed_per_model() -> None:
    state = LiveState()
    state.cool_down("alpha", "key-1", NOW + 30, "429", model="m1")
    state.cool_down("alpha", "key-1", NOW + 5, "401")
    state.cool_down("alpha", "key-1", NOW - 5, "old", model="m2")
    assert state.rests("alpha", "key-1", now=NOW) == [("", NOW + 5, "401"), ("m1", NOW + 30, "429")]
