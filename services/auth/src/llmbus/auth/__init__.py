"""llmbus auth: client keys, credentials, quotas and cooldowns; the only writer of that state in Redis."""
