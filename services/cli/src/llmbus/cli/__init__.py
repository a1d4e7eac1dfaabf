"""`llmbus`: the command line for a running gateway (client keys, provider logins)."""
