"""llmbus routing: the model catalog, selection strategies and routing errors."""

from llmbus.routing.catalog import Catalog, ModelRoute, Offer
from llmbus.routing.errors import NoRoute, RoutingError, UnknownModel
from llmbus.routing.selection import RoundRobin

__all__ = ["Catalog", "ModelRoute", "NoRoute", "Offer", "RoundRobin", "RoutingError", "UnknownModel"]
