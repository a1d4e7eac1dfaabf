"""llmbus routing: the model catalog, live provider state, selection strategies and
routing errors."""

from llmbus.routing.catalog import Candidates, Catalog, ModelRoute, Offer
from llmbus.routing.errors import NoRoute, RateLimited, RoutingError, UnknownModel, UnsupportedRequest
from llmbus.routing.planning import plan
from llmbus.routing.selection import Selector
from llmbus.routing.state import Health, LiveState

__all__ = [
    "Candidates",
    "Catalog",
    "Health",
    "LiveState",
    "ModelRoute",
    "NoRoute",
    "Offer",
    "RateLimited",
    "RoutingError",
    "Selector",
    "UnknownModel",
    "UnsupportedRequest",
    "plan",
]
