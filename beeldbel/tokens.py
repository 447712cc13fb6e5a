"""Media join tokens: Ed25519-signed JWTs from the control plane, checked by media.

The control plane signs with :func:`sign_media_token` and publishes its public keys
as a JWKS (:func:`public_jwk`). A media node verifies with :class:`TokenVerifier`,
which fetches that JWKS over HTTPS, caches it and refetches (rate-limited) when a
token names an unknown ``kid``. The algorithm is pinned to EdDSA; ``alg: none`` or
HS256 tokens are refused before any key is looked at.
"""

from __future__ import annotations

import asyncio
import base64
import ssl as ssl_module
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALGORITHM = "EdDSA"
#: The JOSE ``typ`` header of a media join token; other JWTs are refused.
TOKEN_TYPE = "beeldbel-media+jwt"  # noqa: S105 (a type name, not a secret)
ROLES = ("agent", "citizen", "interpreter")


class TokenError(Exception):
    """A token was refused; ``code`` says why in one word for clients and metrics."""

    code: ClassVar[str] = "token_invalid"


class TokenExpired(TokenError):
    code = "token_expired"


class TokenNotYetValid(TokenError):
    code = "token_not_yet_valid"


class TokenReplayed(TokenError):
    code = "token_replayed"


class UnknownKey(TokenError):
    code = "token_unknown_key"


@dataclass(frozen=True, slots=True)
class MediaClaims:
    """What a media join token grants: one participant, one room, one role."""

    iss: str
    aud: str
    sub: str
    room: str
    role: str
    exp: int
    nbf: int
    iat: int
    jti: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r} must be one of {ROLES}")
        if not self.room or not self.sub or not self.jti:
            raise ValueError("room, sub and jti must not be empty")

    @classmethod
    def issue(
        cls,
        *,
        issuer: str,
        audience: str,
        participant: str,
        room: str,
        role: str,
        ttl: int = 60,
        now: float | None = None,
    ) -> MediaClaims:
        """Claims for a fresh token valid from now for ``ttl`` seconds."""
        issued = int(time.time() if now is None else now)
        return cls(
            iss=issuer,
            aud=audience,
            sub=participant,
            room=room,
            role=role,
            exp=issued + ttl,
            nbf=issued,
            iat=issued,
            jti=uuid.uuid4().hex,
        )


def sign_media_token(claims: MediaClaims, key: Ed25519PrivateKey, kid: str) -> str:
    """Sign ``claims`` with the control plane's Ed25519 key named ``kid``."""
    payload = {
        "iss": claims.iss,
        "aud": claims.aud,
        "sub": claims.sub,
        "room": claims.room,
        "role": claims.role,
        "exp": claims.exp,
        "nbf": claims.nbf,
        "iat": claims.iat,
        "jti": claims.jti,
    }
    headers = {"kid": kid, "typ": TOKEN_TYPE}
    return jwt.encode(payload, key, algorithm=ALGORITHM, headers=headers)


def public_jwk(key: Ed25519PublicKey, kid: str) -> dict[str, str]:
    """The JWK (RFC 8037 OKP) of ``key`` for the control plane's JWKS document."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": ALGORITHM}


#: Fetches the JWKS document, e.g. :class:`HttpsJwksFetcher`.
JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


class HttpsJwksFetcher:
    """GETs the JWKS document over HTTPS (plain HTTP is refused)."""

    def __init__(
        self, url: str, *, ssl: ssl_module.SSLContext | None = None, timeout: float = 10
    ) -> None:
        if not url.startswith("https://"):
            raise ValueError(f"jwks_url {url!r} must be an https:// URL")
        self._url = url
        self._ssl = ssl if ssl is not None else ssl_module.create_default_context()
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def __call__(self) -> Mapping[str, Any]:
        async with (
            aiohttp.ClientSession(timeout=self._timeout) as session,
            session.get(self._url, ssl=self._ssl) as response,
        ):
            response.raise_for_status()
            document = await response.json()
        if not isinstance(document, dict):
            raise TokenError("JWKS document is not an object")
        return document


class KeySet:
    """The control plane's public keys, refetched at most every ``min_interval``."""

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        max_age: float = 300.0,
        min_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._min_interval = min_interval
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> Ed25519PublicKey:
        """The key named ``kid``; refreshes the set when stale or when it is unknown."""
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at > self._max_age
        if stale or kid not in self._keys:
            await self._refresh()
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKey(f"no key {kid!r} in the JWKS") from None

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            if (
                self._fetched_at is not None
                and now - self._fetched_at < self._min_interval
            ):
                return
            document = await self._fetch()
            self._keys = _parse_jwks(document)
            self._fetched_at = now


def _parse_jwks(document: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in document.get("keys", []):
        if not isinstance(jwk, dict):
            continue
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        if "kid" not in jwk or "x" not in jwk:
            continue
        x = str(jwk["x"])
        raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
        keys[str(jwk["kid"])] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


class ReplayCache:
    """Remembers each ``jti`` until its token expires so it works only once."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seen: dict[str, float] = {}
        self._clock = clock

    def use(self, jti: str, expires: float) -> None:
        now = self._clock()
        if len(self._seen) > 1024:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
        if jti in self._seen and self._seen[jti] > now:
            raise TokenReplayed("token was already used")
        self._seen[jti] = expires


class TokenVerifier:
    """Checks media join tokens for one audience (this media node)."""

    def __init__(
        self,
        keys: KeySet,
        *,
        audience: str,
        issuer: str,
        leeway: float = 5.0,
        replay_cache: ReplayCache | None = None,
    ) -> None:
        self._keys = keys
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway
        self._replays = replay_cache or ReplayCache()

    async def verify(self, token: str, *, single_use: bool = True) -> MediaClaims:
        """The token's claims, or :class:`TokenError` saying why it was refused."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(f"malformed token: {exc}") from None
        if header.get("alg") != ALGORITHM:
            raise TokenError(f"algorithm {header.get('alg')!r} is not {ALGORITHM}")
        if header.get("typ") != TOKEN_TYPE:
            raise TokenError(f"token type {header.get('typ')!r} is not {TOKEN_TYPE}")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenError("token has no kid")
        key = await self._keys.get(kid)
        claims = self._decode(token, key)
        if single_use:
            self._replays.use(claims.jti, claims.exp + self._leeway)
        return claims

    def _decode(self, token: str, key: Ed25519PublicKey) -> MediaClaims:
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={
                    "require": ["exp", "nbf", "iat", "jti", "aud", "iss", "sub"],
                    # aud is this node's id as one string, never a list naming it
                    "strict_aud": True,
                },
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenNotYetValid("token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenError("token aud is not this node's id (one string)") from None
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None
        try:
            return MediaClaims(
                iss=str(payload["iss"]),
                aud=str(payload["aud"]),
                sub=str(payload["sub"]),
                room=str(payload["room"]),
                role=str(payload["role"]),
                exp=int(payload["exp"]),
                nbf=int(payload["nbf"]),
                iat=int(payload["iat"]),
                jti=str(payload["jti"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise TokenError(f"bad claims: {exc}") from None
