"""The TLS server context both HTTPS listeners use (control plane and media server).

TLS 1.2 and 1.3 only; in TLS 1.2 only ECDHE key exchange with AEAD ciphers
(AES-GCM, ChaCha20-Poly1305), the "good" level of the Dutch NCSC's TLS
guidelines. TLS 1.3 suites are all AEAD and stay as OpenSSL offers them.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from beeldbel.config import ConfigError

TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-RSA-AES128-GCM-SHA256",
    )
)


def server_context(
    cert_file: str, key_file: str, keys: tuple[str, str]
) -> ssl.SSLContext:
    """A server context with ``cert_file`` (PEM chain) and ``key_file``; ``keys``
    names the two config keys, e.g. ``("[tls] cert_file", "[tls] key_file")``, for
    the one-line :class:`ConfigError` a missing or unusable file gives."""
    for path, key in zip((cert_file, key_file), keys, strict=True):
        if not Path(path).is_file():
            raise ConfigError(f"{key}: no such file {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)  # TLS 1.2 only; 1.3 suites are all AEAD
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"{keys[0]} {cert_file} with {keys[1]} {key_file}: {reason}"
        ) from None
    return context
