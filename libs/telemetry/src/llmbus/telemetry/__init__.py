"""llmbus telemetry."""
