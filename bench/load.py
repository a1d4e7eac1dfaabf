"""Closed-loop load: `concurrency` virtual users, each with its own keep-alive
connection, sending the next request as soon as the previous answer has ended.

A batch opens its connections (and, unless told not to, sends one unmeasured request on
each) before its clock starts, so connection set-up is not in the numbers.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bench.client import Connection, Sample, Target

__all__ = ["Batch", "run_batch", "run_window"]


@dataclass
class Batch:
    samples: list[Sample] = field(default_factory=list)
    elapsed: float = 0.0
    """Seconds from the first request sent to the last answer ended."""
    completed_in_window: int = 0
    """Streams that ended inside the window (`run_window` only)."""
    window: float = 0.0


async def _user(target: Target, warm: bool) -> Connection | Sample:
    try:
        conn = await Connection.open(target)
        if warm:
            await conn.send()
        return conn
    except OSError as exc:
        return Sample(began=time.perf_counter(), error=f"connect: {exc}")


async def _open(target: Target, concurrency: int, warm: bool) -> tuple[list[Connection], list[Sample]]:
    opened = await asyncio.gather(*(_user(target, warm) for _ in range(concurrency)))
    conns = [c for c in opened if isinstance(c, Connection)]
    failed = [s for s in opened if isinstance(s, Sample)]
    return conns, failed


async def _send(conn: Connection) -> tuple[Connection, Sample]:
    """One request; a connection the server closed is opened again first."""
    if conn.broken:
        conn.close()
        try:
            conn = await Connection.open(conn.target, conn.timeout)
        except OSError as exc:
            await asyncio.sleep(0.01)  # a server that is gone: no busy loop
            return conn, Sample(began=time.perf_counter(), error=f"connect: {exc}")
    sample = await conn.send()
    if sample.error:
        conn.broken = True
    return conn, sample


async def run_batch(target: Target, concurrency: int, count: int, max_seconds: float) -> Batch:
    """`count` requests (fewer if `max_seconds` runs out first) over `concurrency` users."""
    conns, failed = await _open(target, concurrency, warm=True)
    batch = Batch(samples=failed)
    left = count
    began = time.perf_counter()
    stop_at = began + max_seconds

    async def user(conn: Connection) -> Connection:
        nonlocal left
        while left > 0 and time.perf_counter() < stop_at:
            left -= 1
            conn, sample = await _send(conn)
            batch.samples.append(sample)
        return conn

    conns = await asyncio.gather(*(user(c) for c in conns))
    batch.elapsed = time.perf_counter() - began
    for conn in conns:
        conn.close()
    return batch


async def run_window(target: Target, concurrency: int, seconds: float) -> Batch:
    """Users start streams for `seconds`; those in flight at the end run to completion
    (and count in the latencies), but only those that ended inside the window count as
    completed."""
    conns, failed = await _open(target, concurrency, warm=False)
    batch = Batch(samples=failed, window=seconds)
    began = time.perf_counter()
    stop_at = began + seconds

    async def user(conn: Connection) -> Connection:
        while time.perf_counter() < stop_at:
            conn, sample = await _send(conn)
            batch.samples.append(sample)
            if not sample.error and sample.ended <= stop_at:
                batch.completed_in_window += 1
        return conn

    conns = await asyncio.gather(*(user(c) for c in conns))
    batch.elapsed = time.perf_counter() - began
    for conn in conns:
        conn.close()
    return batch
