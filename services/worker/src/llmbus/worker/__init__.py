"""llmbus worker."""
