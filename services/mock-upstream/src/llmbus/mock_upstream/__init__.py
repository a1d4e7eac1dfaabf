"""llmbus mock_upstream."""
