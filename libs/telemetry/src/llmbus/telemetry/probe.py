"""Container healthcheck: `python -m llmbus.telemetry.probe http://127.0.0.1:9464/healthz`.

Exits 0 when the URL answers 2xx within two seconds, 1 otherwise. The service images
are slim and carry no curl; the standard library is enough."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

__all__ = ["probe"]


def probe(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m llmbus.telemetry.probe URL", file=sys.stderr)
        return 2
    return 0 if probe(argv[0]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
