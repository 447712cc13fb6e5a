"""Create a callback request and follow it to its end through webhooks.

    BB_API_KEY=bb_… BB_WEBHOOK_SECRET=whsec_… python -m examples.integrator \\
        --api-url https://beeldbel.example --listen 0.0.0.0:8443 \\
        --tls-cert receiver.pem

Prints one JSON line per fact: the new request, each verified event, and the
request's closing. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from examples.integrator.api import BeeldbelApi
from examples.integrator.receiver import Event, Receiver

#: The events after which nothing more happens to a request.
CLOSING = {"callback.completed", "callback.cancelled", "callback.expired"}


def _options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.integrator")
    parser.add_argument("--api-url", required=True, help="Beeldbel's base URL")
    parser.add_argument("--api-ca", help="CA file for Beeldbel's certificate")
    parser.add_argument("--listen", required=True, help="host:port for webhooks")
    parser.add_argument("--tls-cert", required=True, help="receiver's cert (PEM)")
    parser.add_argument("--tls-key", help="its key, unless in --tls-cert")
    parser.add_argument("--channel", choices=("phone", "video"), default="phone")
    parser.add_argument("--wait", type=float, default=3600, help="seconds at most")
    return parser.parse_args(argv)


def _say(**fact: Any) -> None:
    print(json.dumps(fact), flush=True)


async def follow(receiver: Receiver, reference: str) -> AsyncIterator[Event]:
    """The events about ``reference`` as they come, up to its closing one."""
    while True:
        event = await receiver.events.get()
        if event.reference != reference:
            continue  # another request of ours
        yield event
        if event.type in CLOSING:
            return


async def run(options: argparse.Namespace, key: str, secret: str) -> None:
    """Listen for webhooks, create the request, print its events until it closes."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(options.tls_cert, options.tls_key)
    host, port = options.listen.rsplit(":", 1)
    receiver = Receiver(secret)
    runner = await receiver.serve(host, int(port), tls)  # before anything can happen
    api_tls = ssl.create_default_context(cafile=options.api_ca)
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=api_tls)
        ) as session:
            api = BeeldbelApi(session, options.api_url, key)
            reference = await api.create_callback(
                _request(options.channel, (await api.topics())[0])
            )
        _say(created=reference)
        state = "new"
        async with asyncio.timeout(options.wait):
            async for event in follow(receiver, reference):
                _say(event=_told(event))
                state = event.state
        _say(closed=reference, state=state)
    finally:
        await runner.cleanup()


def _request(channel: str, topic: str) -> dict[str, Any]:
    """A sample citizen's request (in real life: from the integrator's own form)."""
    return {
        "name": "Jan de Vries",
        "phone": "06-12345678",
        "topic": topic,
        "channel": channel,
        "preferred": "asap",
        "language": "nl",
        "consent": True,  # the citizen agreed on the integrator's side
    }


def _told(event: Event) -> dict[str, Any]:
    return {
        "type": event.type,
        "reference": event.reference,
        "state": event.state,
        "webhook_id": event.webhook_id,
        "verified": True,  # the receiver queues nothing else
    }


def main() -> None:
    options = _options(sys.argv[1:])
    # secrets from the environment, not the command line (visible in ps)
    asyncio.run(run(options, os.environ["BB_API_KEY"], os.environ["BB_WEBHOOK_SECRET"]))


if __name__ == "__main__":
    main()
