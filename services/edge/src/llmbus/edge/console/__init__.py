"""The web console under `/console`: server-rendered pages over the management API's
bus calls, behind the management key (see docs/console.md)."""

from llmbus.edge.console.routes import mount

__all__ = ["mount"]
