"""llmbus providers."""
