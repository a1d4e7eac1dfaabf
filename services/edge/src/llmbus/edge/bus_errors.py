"""Bus failures of a request/reply call, as the client's API errors: one table for every
edge route that asks another service something."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from llmbus.api import GatewayTimeout, Unavailable, error_from_status
from llmbus.bus import BusTimeout, BusUnavailable, NoResponders, RemoteError

__all__ = ["answered_by"]


@contextmanager
def answered_by(service: str) -> Iterator[None]:
    """Nobody listening → 503, no answer in time → 504, bus down → 503, an error reply →
    its own status and message."""
    try:
        yield
    except NoResponders:
        raise Unavailable(f"no llmbus {service} is available", code=f"no_{service}_available") from None
    except BusTimeout:
        raise GatewayTimeout(f"the {service} did not answer in time", code=f"{service}_timeout") from None
    except BusUnavailable:
        raise Unavailable("the message bus is unavailable", code="bus_unavailable") from None
    except RemoteError as exc:
        raise error_from_status(exc.status, exc.message, exc.code) from None
