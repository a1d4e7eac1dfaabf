"""The edge's HTTP routes."""
