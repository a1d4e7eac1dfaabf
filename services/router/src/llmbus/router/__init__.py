"""llmbus router: picks provider, credential and upstream model; forwards on NATS."""
