"""The llmbus benchmark (not a test): added latency and throughput beside the upstream."""
