"""llmbus api."""
