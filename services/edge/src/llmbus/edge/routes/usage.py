"""The gateway's usage, behind the management key; answered by auth from the daily
aggregates it keeps of the usage records (one per request).

    GET /v1/usage?by=key|provider|credential|model&days=N
        one row per UTC day and group (a key id, provider, hashed credential id or model
        asked for): requests, errors, input, output, cached and reasoning tokens; the
        last N days, today included (1 to the configured retention, 7 by default)"""

from __future__ import annotations

from typing import Final, get_args

import msgspec
from fastapi import APIRouter
from fastapi.responses import Response

from llmbus.api import InvalidRequest
from llmbus.edge import admin
from llmbus.edge.deps import Context, Manager
from llmbus.proto import UsageDimension, UsageRow

__all__ = ["router"]

router = APIRouter()
_encode = msgspec.json.Encoder().encode

_DIMENSIONS: Final[tuple[str, ...]] = get_args(UsageDimension)
_MAX_DAYS: Final = 3660
"""Beyond any retention the config allows (auth checks the configured one)."""


class RowView(msgspec.Struct):
    """A row as the API shows it: every count, zeros too."""

    day: str
    group: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int

    @classmethod
    def of(cls, row: UsageRow) -> RowView:
        return cls(
            row.day,
            row.group,
            row.requests,
            row.errors,
            row.input_tokens,
            row.output_tokens,
            row.cached_tokens,
            row.reasoning_tokens,
        )


class UsageView(msgspec.Struct):
    object: str
    by: str
    days: int
    data: list[RowView]


def _days(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= _MAX_DAYS:
        raise InvalidRequest(
            f"`days` must be a whole number of days from 1 to the usage retention, got `{value[:32]}`",
            code="invalid_days",
            param="days",
        )
    return int(value)


@router.get("/v1/usage")
async def usage(context: Context, _: Manager, by: str = "model", days: str = "7") -> Response:
    if by not in _DIMENSIONS:
        raise InvalidRequest(
            f"`by` must be one of {', '.join(_DIMENSIONS)}, got `{by[:32]}`", code="invalid_by", param="by"
        )
    report = await admin.usage_report(context.bus, by, _days(days))  # type: ignore[arg-type]  # checked above
    document = UsageView("usage", report.by, report.days, [RowView.of(row) for row in report.rows])
    return Response(_encode(document), media_type="application/json")
