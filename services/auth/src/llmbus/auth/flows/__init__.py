"""Device-flow logins (GitHub for Copilot, AWS SSO OIDC for Kiro) that end as stored
credentials: the dialects (`github.py`, `aws_oidc.py`), flows in Redis (`store.py`), the
background polling (`runner.py`) and the bus handlers (`handlers.py`)."""

from llmbus.auth.flows.dialects import FlowRejected, LoginTarget, dialect_for
from llmbus.auth.flows.handlers import FlowHandlers
from llmbus.auth.flows.runner import CredentialSink, FlowRunner, TooManyFlows
from llmbus.auth.flows.service import serve_flows
from llmbus.auth.flows.store import FlowStore, UnknownFlow
from llmbus.auth.flows.types import DeviceGrant, FlowFailed, Login, Pending, Refused

__all__ = [
    "CredentialSink",
    "DeviceGrant",
    "FlowFailed",
    "FlowHandlers",
    "FlowRejected",
    "FlowRunner",
    "FlowStore",
    "Login",
    "LoginTarget",
    "Pending",
    "Refused",
    "TooManyFlows",
    "UnknownFlow",
    "dialect_for",
    "serve_flows",
]
