"""A development CA and a server certificate for localhost (and any extra names a
lab needs), made with ``cryptography``.

Only for running Beeldbel on one machine or in a lab: production uses a real
certificate (``beeldbel run`` refuses a dev one for a public ``public_url``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from beeldbel.tls import DEV_CA_NAME

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}")


@dataclass(frozen=True, slots=True)
class DevCertificates:
    ca_file: Path
    cert_file: Path
    key_file: Path
    #: Made just now (a new CA), not found in place.
    made: bool = False


def ensure_dev_certificates(
    directory: Path, names: tuple[str, ...] = ()
) -> DevCertificates:
    """Create the CA and server certificate in ``directory`` unless they exist and
    the server certificate covers localhost and ``names`` (DNS names or IP
    addresses); otherwise both are made anew (the CA key is never kept)."""
    hosts = tuple(dict.fromkeys((*LOCAL_NAMES, *(_checked(n) for n in names))))
    certs = DevCertificates(
        directory / "ca.crt", directory / "server.crt", directory / "server.key"
    )
    if (
        certs.ca_file.exists()
        and certs.key_file.exists()
        and _covers(certs.cert_file, hosts)
    ):
        return certs
    _make(certs, hosts)
    return DevCertificates(certs.ca_file, certs.cert_file, certs.key_file, made=True)


def _checked(name: str) -> str:
    """A name for the certificate's SAN list: an IP address or a DNS name."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if len(name) > 253 or not _DNS_NAME.fullmatch(name):
        raise ValueError(f"--name {name!r} is neither a DNS name nor an IP address")
    return name.lower()


def _covers(cert_file: Path, hosts: tuple[str, ...]) -> bool:
    """``cert_file`` exists and its SAN list holds every one of ``hosts``."""
    try:
        cert = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (OSError, ValueError, IndexError, x509.ExtensionNotFound):
        return False
    present = {str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)}
    present |= {n.lower() for n in san.value.get_values_for_type(x509.DNSName)}
    return set(hosts) <= present


def _make(certs: DevCertificates, hosts: tuple[str, ...]) -> None:
    """Write a new CA certificate, and a server certificate and key it signed."""
    certs.ca_file.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key, ca_cert = _ca(now)
    key, cert = _server(ca_key, ca_cert, hosts, now)
    certs.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certs.cert_file.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    fd = os.open(certs.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def _ca(now: datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEV_CA_NAME)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca_cert


def _server(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: tuple[str, ...],
    now: datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert
