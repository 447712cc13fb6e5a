#!/usr/bin/env python3
"""The image's HEALTHCHECK: healthy when any of the URLs given answers 200.

One image runs either process (the control plane on 8443, HTTPS or plain HTTP
behind a TLS-terminating proxy; the media server on 8444), so the check tries
each of them. Only loopback URLs are accepted: their certificate (a real one
for a public name, or none) is not verified, which is safe on 127.0.0.1 only.
Standard library only, no curl in the image.
"""

from __future__ import annotations

import ipaddress
import ssl
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 2.0


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def healthy(url: str) -> bool:
    """Does ``url`` answer 200 within the timeout?"""
    # the certificate names the public host, not 127.0.0.1: not verified here
    context = ssl._create_unverified_context()  # noqa: S323 - loopback only
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(url, timeout=TIMEOUT_SECONDS) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False


def main(urls: list[str]) -> int:
    if not urls:
        print("usage: beeldbel-healthcheck URL [URL ...]", file=sys.stderr)
        return 2
    for url in urls:
        if not url.startswith(("http://", "https://")) or not _loopback(url):
            print(f"beeldbel-healthcheck: {url} is not a loopback URL", file=sys.stderr)
            return 2
    if any(healthy(url) for url in urls):
        return 0
    print(
        "beeldbel-healthcheck: no answer 200 from " + ", ".join(urls), file=sys.stderr
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
