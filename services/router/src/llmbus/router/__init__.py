"""llmbus router."""
