"""A media node is ready only while it can carry media: not draining, and its UDP
port (every peer's ICE, DTLS and SRTP) bound."""

from __future__ import annotations

from mediaserver.app import MUX


async def test_readyz_is_503_while_the_udp_port_is_not_bound(server):
    assert (await server.get("/readyz")).status == 200
    mux = server.app[MUX]
    port = mux.port
    mux.close()  # what the worker's shutdown does
    response = await server.get("/readyz")
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "udp_not_bound"
    assert (await server.get("/healthz")).status == 200
    await mux.bind("127.0.0.1", port)
    assert (await server.get("/readyz")).status == 200
