"""Bus errors: what a caller of `llmbus.bus` can see. nats-py exceptions never pass this
module's boundary.

    BusFailure
    ├── BusUnavailable   no connection to NATS
    ├── NoResponders     nobody listens on the subject (NATS status 503)
    ├── BusTimeout       no reply in time
    └── RemoteError      the handler answered with an error (status, code, message)
"""

from __future__ import annotations

__all__ = ["BusFailure", "BusTimeout", "BusUnavailable", "NoResponders", "RemoteError"]


class BusFailure(Exception):
    """Base of every bus error."""


class BusUnavailable(BusFailure):
    pass


class NoResponders(BusFailure):
    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(f"no service is listening on {subject}")


class BusTimeout(BusFailure):
    def __init__(self, subject: str, timeout: float) -> None:
        self.subject = subject
        self.timeout = timeout
        super().__init__(f"no reply on {subject} within {timeout:g}s")


class RemoteError(BusFailure):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")
