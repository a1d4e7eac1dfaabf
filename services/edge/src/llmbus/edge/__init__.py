"""llmbus edge: the client-facing HTTP API."""
