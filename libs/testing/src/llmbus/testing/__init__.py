"""llmbus testing."""
