"""llmbus worker: calls one adapter family's upstreams and streams the answer back."""
