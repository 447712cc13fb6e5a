"""A user-space UDP relay between a test client and the SFU that can drop packets
(``tc netem`` is not available on these machines)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.impairment import Address, DatagramSide


class LossyRelay:
    """Client ↔ relay ↔ server; ``drop_to_client(data)`` decides what is lost."""

    def __init__(self, server: Address) -> None:
        self.server = server
        self.client: Address | None = None
        self.drop_to_client: Callable[[bytes], bool] = lambda data: False
        self.dropped = 0
        self._client_side = DatagramSide(self._from_client)
        self._server_side = DatagramSide(self._from_server)

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self._client_side, local_addr=("127.0.0.1", 0)
        )
        await loop.create_datagram_endpoint(
            lambda: self._server_side, local_addr=("127.0.0.1", 0)
        )
        return int(transport.get_extra_info("sockname")[1])

    def _from_client(self, data: bytes, addr: Address) -> None:
        self.client = addr
        assert self._server_side.transport is not None
        self._server_side.transport.sendto(data, self.server)

    def _from_server(self, data: bytes, addr: Address) -> None:
        if self.client is None:
            return
        if self.drop_to_client(data):
            self.dropped += 1
            return
        assert self._client_side.transport is not None
        self._client_side.transport.sendto(data, self.client)

    def close(self) -> None:
        for side in (self._client_side, self._server_side):
            if side.transport is not None:
                side.transport.close()
