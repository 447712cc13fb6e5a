"""Sending one webhook: signed by Standard Webhooks, one POST, no redirects.

The body is the stored JSON as it is; ``webhook-signature`` holds one signature
per current secret (two during a rotation's overlap, as the specification
allows), so a receiver with either secret verifies it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from standardwebhooks.webhooks import Webhook

from controlplane.webhooks.addresses import AddressRefused, PublicResolver, check_url

USER_AGENT = "Beeldbel-Webhooks/1"


@dataclass(frozen=True, slots=True)
class Message:
    """One outbox row ready to send."""

    row_id: int
    message_id: str
    url: str
    payload: str
    secrets: tuple[str, ...]


def signature_header(message: Message, at: datetime) -> str:
    """``v1,<base64>`` for each secret, space-separated."""
    return " ".join(
        Webhook(secret).sign(message.message_id, at, message.payload)
        for secret in message.secrets
    )


class Sender:
    """An HTTP client for webhooks: public addresses only (unless allowed),
    ``timeout_seconds`` per try, redirects are an answer, not followed."""

    def __init__(
        self,
        *,
        timeout_seconds: int,
        allow_private: bool,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._ssl: ssl.SSLContext | bool = ssl_context or True
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=PublicResolver(allow_private=self._allow_private),
                use_dns_cache=False,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False
            )
        return self._session

    async def send(self, message: Message) -> str:
        """``delivered``, or why not: the status code (``"500"``), ``timeout``,
        ``address_refused`` or ``connection_failed``."""
        try:
            url = check_url(message.url, allow_private=self._allow_private)
            now = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                "webhook-id": message.message_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signature_header(message, now),
            }
            async with self._client().post(
                url,
                data=message.payload.encode(),
                headers=headers,
                allow_redirects=False,
            ) as response:
                await response.read()
                return (
                    "delivered"
                    if 200 <= response.status < 300
                    else str(response.status)
                )
        except AddressRefused:
            return AddressRefused.code
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientError:
            return "connection_failed"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
