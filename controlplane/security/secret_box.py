"""Encryption at rest for secrets the database holds: signing keys, TOTP secrets;
and the keys of other purposes derived from the server's ``secret_key``.

Fernet, with its key derived by HKDF-SHA256 from the server's ``secret_key``.
Each purpose has its own HKDF ``info``, hence its own key: a ciphertext of one
purpose never decrypts as another (a TOTP secret cannot pass for a signing key).
:func:`derive_key` gives the same separation to a purpose that needs a raw key,
e.g. for an HMAC.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: Ed25519 private keys of media join tokens; fixed, stored rows depend on it.
SIGNING_KEYS = b"beeldbel signing keys v1"
#: Staff TOTP shared secrets (``users.totp_secret``).
TOTP_SECRETS = b"beeldbel totp secrets v1"
#: Join links of running calls, kept for the employee to copy (``live_calls``).
LIVE_LINKS = b"beeldbel live call links v1"
#: HMAC of the citizen's status links (``controlplane.requests.status_links``).
STATUS_LINKS = b"beeldbel status links v1"
#: HMAC of the citizen's survey links after a phone callback
#: (``controlplane.security.survey_links``).
SURVEY_LINKS = b"beeldbel survey links v1"


class SecretUnreadable(Exception):
    """A ciphertext does not decrypt: another ``secret_key``, purpose or garbage."""


def derive_key(secret_key: bytes, purpose: bytes) -> bytes:
    """A 32-byte key for ``purpose`` alone, derived from ``secret_key``."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret_key
    )


class SecretBox:
    """Seals and opens the secrets of one purpose under one ``secret_key``."""

    __slots__ = ("_fernet",)

    def __init__(self, secret_key: bytes, purpose: bytes) -> None:
        derived = derive_key(secret_key, purpose)
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, plain: bytes) -> str:
        """The Fernet token (ASCII, starts with ``gAAAAA``) of ``plain``."""
        return self._fernet.encrypt(plain).decode("ascii")

    def open(self, token: str) -> bytes:
        try:
            return self._fernet.decrypt(token.encode("utf-8"))
        except InvalidToken:
            raise SecretUnreadable("ciphertext does not decrypt") from None


def seal_totp_secret(secret_key: bytes, secret: str) -> str:
    return SecretBox(secret_key, TOTP_SECRETS).seal(secret.encode("ascii"))


def open_totp_secret(secret_key: bytes, stored: str) -> str:
    """The base32 TOTP secret of a ``users.totp_secret`` value."""
    return SecretBox(secret_key, TOTP_SECRETS).open(stored).decode("ascii")
