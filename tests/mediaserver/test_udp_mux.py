"""The shared UDP port's demultiplexer, without peers."""

from __future__ import annotations

from aioice import Connection, stun

from mediaserver.udp_mux import UdpMux


def binding_request(username: str, key: bytes) -> bytes:
    request = stun.Message(
        message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST
    )
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(key)
    request.add_fingerprint()
    return bytes(request)


async def test_new_address_is_remembered_only_after_message_integrity():
    mux = UdpMux("127.0.0.1")
    connection = Connection(ice_controlling=False)
    mux.adopt(connection)
    await connection.gather_candidates()
    (candidate,) = connection.local_candidates
    assert (candidate.host, candidate.port) == ("127.0.0.1", mux.port)
    username = f"{connection.local_username}:remote"

    forged = binding_request(username, b"not the password")
    mux.datagram_received(forged, ("127.0.0.1", 5000))
    assert mux._by_address == {}

    genuine = binding_request(username, connection.local_password.encode())
    mux.datagram_received(genuine, ("127.0.0.1", 5001))
    assert ("127.0.0.1", 5001) in mux._by_address

    mux.datagram_received(b"\x80" + bytes(20), ("127.0.0.1", 5002))
    assert mux.unknown_datagrams == 1
    await connection.close()
    assert mux.peer_count == 0
