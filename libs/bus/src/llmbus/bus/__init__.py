"""llmbus bus."""
