"""llmbus routing."""
