"""llmbus config."""
