"""llmbus auth."""
