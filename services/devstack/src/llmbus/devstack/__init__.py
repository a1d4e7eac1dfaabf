"""llmbus devstack."""
