"""Retry-After as upstreams send it: seconds or an HTTP date."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from llmbus.providers.errors import parse_retry_after


@pytest.mark.parametrize(
    ("value", "seconds"), [("20", 20.0), ("1.5", 1.5), ("-3", 0.0), (None, None), ("", None)]
)
def test_retry_after_in_seconds(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_as_an_http_date_is_the_time_left() -> None:
    parsed = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert parsed is not None
    assert 28 <= parsed <= 31


def test_unreadable_retry_after_is_none() -> None:
    assert parse_retry_after("soon") is None
