"""Both HTTPS listeners offer AEAD cipher suites only (TLS 1.2: ECDHE with AES-GCM
or ChaCha20-Poly1305; TLS 1.3 as OpenSSL offers it): a real handshake on
loopback against the context each process builds."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from beeldbel.config import Config, MediaServerConfig, TlsConfig
from controlplane.__main__ import ssl_context as control_plane_context
from mediaserver.__main__ import ssl_context as media_server_context


def _control_plane(cert: str, key: str) -> ssl.SSLContext | None:
    return control_plane_context(Config(tls=TlsConfig(cert_file=cert, key_file=key)))


def _media_server(cert: str, key: str) -> ssl.SSLContext | None:
    return media_server_context(MediaServerConfig(tls_cert_file=cert, tls_key_file=key))


async def _handshake(
    server: ssl.SSLContext, ca: trustme.CA, tls12_ciphers: str | None
) -> str:
    """Connect to a real TLS server on loopback; the negotiated cipher's name.
    With ``tls12_ciphers`` the client speaks TLS 1.2 with only those suites."""
    client = ssl.create_default_context()
    ca.configure_trust(client)
    if tls12_ciphers is not None:
        client.maximum_version = ssl.TLSVersion.TLSv1_2
        client.set_ciphers(tls12_ciphers)

    async def answer(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=client, server_hostname="127.0.0.1"
            ),
            10,
        )
        cipher = writer.get_extra_info("cipher")
        writer.close()
        return str(cipher[0])
    finally:
        listener.close()
        await listener.wait_closed()


@pytest.mark.parametrize("key_type", [trustme.KeyType.ECDSA, trustme.KeyType.RSA])
@pytest.mark.parametrize("build", [_control_plane, _media_server])
async def test_https_offers_aead_suites_only(
    tmp_path: Path,
    build: Callable[[str, str], ssl.SSLContext | None],
    key_type: trustme.KeyType,
) -> None:
    ca = trustme.CA(key_type=key_type)
    issued = ca.issue_cert("127.0.0.1", key_type=key_type)
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    server = build(str(cert), str(key))
    assert server is not None

    cbc = "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256"
    cbc += ":ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384"
    # no shared cipher: the client sees the alert, or the server's reset after it
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await _handshake(server, ca, cbc)

    gcm = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
    assert "GCM" in await _handshake(server, ca, gcm)
    chacha = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    assert "CHACHA20" in await _handshake(server, ca, chacha)
    assert (await _handshake(server, ca, None)).startswith("TLS_")  # TLS 1.3
