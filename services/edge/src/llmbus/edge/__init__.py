"""llmbus edge."""
