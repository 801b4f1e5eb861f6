"""A container healthcheck: ``python deploy/probe.py URL`` exits 0 if URL answers 200.

Sends the first of ``DJANGO_ALLOWED_HOSTS`` as the Host header (Django answers 400 to any
other) and ``METRICS_TOKEN``, when set, as a bearer token (the metrics endpoints want it). In
the image, so a healthcheck is one plain command (compose.yaml): no shell, no quoting.
"""

import os
import sys
import urllib.request


def main() -> int:
    request = urllib.request.Request(sys.argv[1])  # noqa: S310 (a local URL given by the healthcheck)
    request.add_header("Host", os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(",")[0])
    if os.environ.get("METRICS_TOKEN"):
        request.add_header("Authorization", f"Bearer {os.environ['METRICS_TOKEN']}")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:  # noqa: S310
            return 0 if response.status == 200 else 1
    except OSError as error:  # refused, timed out, or an HTTP error status
        print(f"{sys.argv[1]}: {error}", file=sys.stderr)  # noqa: T201 (the healthcheck's output)
        return 1


if __name__ == "__main__":
    sys.exit(main())
