"""The TLS server context both HTTPS listeners use (control plane and media server).

TLS 1.2 and 1.3 only; in TLS 1.2 only ECDHE key exchange with AEAD ciphers
(AES-GCM, ChaCha20-Poly1305), the "good" level of the Dutch NCSC's TLS
guidelines. TLS 1.3 suites are all AEAD and stay as OpenSSL offers them.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID

from beeldbel.config import Config, ConfigError, is_loopback_url

#: The subject of the CA `beeldbel certs dev` makes; it issues dev certificates.
DEV_CA_NAME = "Beeldbel dev CA"

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


def is_dev_certificate(cert_file: str) -> bool:
    """The first certificate in ``cert_file`` was issued by the dev CA."""
    try:
        leaf = x509.load_pem_x509_certificates(Path(cert_file).read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return False  # missing or not PEM: server_context names the problem
    issuers = leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return any(attribute.value == DEV_CA_NAME for attribute in issuers)


def refuse_dev_certificate(config: Config) -> None:
    """A :class:`ConfigError` when ``[server] public_url`` is reached from other
    machines and the control plane's certificate is missing or a dev one, which
    no browser there trusts. Behind a TLS-terminating proxy (``[tls] enabled =
    false``) there is no certificate to check."""
    public_url, tls = config.server.public_url, config.tls
    if not tls.enabled or is_loopback_url(public_url):
        return
    if Path(tls.cert_file).is_file() and not is_dev_certificate(tls.cert_file):
        return
    what = (
        "is a Beeldbel dev certificate"
        if Path(tls.cert_file).is_file()
        else ("does not exist")
    )
    host = urlsplit(public_url).hostname
    raise ConfigError(
        f"[server] public_url {public_url} is not a loopback address, but "
        f"[tls] cert_file {tls.cert_file} {what}; dev certificates are for one "
        "machine only and are not made for other hosts. Set [tls] cert_file to "
        f"the PEM certificate chain of a real certificate for {host} and "
        "[tls] key_file to its private key (the media server uses them too "
        "unless [mediaserver] tls_cert_file and tls_key_file are set), or set "
        "[tls] enabled = false behind a TLS-terminating proxy. See "
        "config.production.example.toml."
    )
