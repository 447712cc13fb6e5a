"""Media join tokens: signing, JWKS over HTTPS, and every refusal."""

from __future__ import annotations

import base64
import json
import ssl
import time
from typing import Any

import jwt
import pytest
import trustme
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from beeldbel.tokens import (
    TOKEN_TYPE,
    HttpsJwksFetcher,
    KeySet,
    MediaClaims,
    TokenError,
    TokenExpired,
    TokenNotYetValid,
    TokenReplayed,
    TokenVerifier,
    UnknownKey,
    public_jwk,
    sign_media_token,
)

ISSUER = "https://desk.example"
AUDIENCE = "media-1"


@pytest.fixture
def key():
    return Ed25519PrivateKey.generate()


@pytest.fixture
async def jwks_server(aiohttp_server, key):
    """A real HTTPS server with a trustme certificate serving the JWKS."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    state: dict[str, Any] = {"keys": [public_jwk(key.public_key(), "k1")], "hits": 0}

    async def jwks(request: web.Request) -> web.Response:
        state["hits"] += 1
        return web.json_response({"keys": state["keys"]})

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    server = await aiohttp_server(app, ssl=server_ctx)
    url = f"https://127.0.0.1:{server.port}/jwks.json"
    return url, client_ctx, state


@pytest.fixture
def verifier(jwks_server):
    url, ctx, _ = jwks_server
    keys = KeySet(HttpsJwksFetcher(url, ssl=ctx), min_interval=0)
    return TokenVerifier(keys, audience=AUDIENCE, issuer=ISSUER)


def claims(**changes) -> MediaClaims:
    base = MediaClaims.issue(
        issuer=ISSUER, audience=AUDIENCE, participant="p1", room="r1", role="agent"
    )
    values = {f: getattr(base, f) for f in base.__dataclass_fields__}
    values.update(changes)
    return MediaClaims(**values)


async def test_valid_token_is_accepted(verifier, key):
    token = sign_media_token(claims(), key, "k1")
    got = await verifier.verify(token)
    assert (got.room, got.role, got.sub) == ("r1", "agent", "p1")


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (lambda now: {"exp": now - 60}, TokenExpired),
        (lambda now: {"nbf": now + 60}, TokenNotYetValid),
        (lambda now: {"aud": "media-2"}, TokenError),
        (lambda now: {"iss": "https://evil.example"}, TokenError),
    ],
    ids=["expired", "not_yet_valid", "wrong_aud", "wrong_iss"],
)
async def test_claim_refusals(verifier, key, changes, error):
    """Times are taken when the test runs, not when it is collected."""
    refused = claims(**changes(int(time.time())))
    with pytest.raises(error):
        await verifier.verify(sign_media_token(refused, key, "k1"))


@pytest.mark.parametrize(
    "aud",
    [[AUDIENCE], [AUDIENCE, "media-2"], ["media-2", AUDIENCE]],
    ids=["list_of_one", "list_first", "list_second"],
)
async def test_audience_must_be_one_string(verifier, key, aud):
    """The token is for one node: an ``aud`` list naming this node is refused."""
    with pytest.raises(TokenError, match="aud"):
        await verifier.verify(sign_media_token(claims(aud=aud), key, "k1"))


async def test_bad_signature_is_refused(verifier):
    other = Ed25519PrivateKey.generate()
    with pytest.raises(TokenError, match="Signature"):
        await verifier.verify(sign_media_token(claims(), other, "k1"))


async def test_alg_none_and_hs256_are_refused(verifier, key):
    payload = json.loads(
        base64.urlsafe_b64decode(
            sign_media_token(claims(), key, "k1").split(".")[1] + "=="
        )
    )
    none_token = jwt.encode(
        payload,
        None,  # type: ignore[arg-type]
        algorithm="none",
        headers={"kid": "k1", "typ": TOKEN_TYPE},
    )
    hs_token = jwt.encode(
        payload,
        "a-shared-secret-of-enough-length-32b",
        algorithm="HS256",
        headers={"kid": "k1", "typ": TOKEN_TYPE},
    )
    for token in (none_token, hs_token):
        with pytest.raises(TokenError, match="algorithm"):
            await verifier.verify(token)


async def test_wrong_typ_is_refused(verifier, key):
    payload = {"sub": "x", "aud": AUDIENCE}
    token = jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": "k1"})
    with pytest.raises(TokenError, match="type"):
        await verifier.verify(token)


async def test_unknown_kid_refetches_then_refuses(verifier, key, jwks_server):
    _, _, state = jwks_server
    await verifier.verify(sign_media_token(claims(), key, "k1"))
    assert state["hits"] == 1
    with pytest.raises(UnknownKey):
        await verifier.verify(sign_media_token(claims(), key, "k9"))
    assert state["hits"] == 2


async def test_rotated_key_is_found_by_refetch(verifier, key, jwks_server):
    _, _, state = jwks_server
    await verifier.verify(sign_media_token(claims(), key, "k1"))
    new_key = Ed25519PrivateKey.generate()
    state["keys"].append(public_jwk(new_key.public_key(), "k2"))
    got = await verifier.verify(sign_media_token(claims(), new_key, "k2"))
    assert got.role == "agent"


async def test_refetch_is_rate_limited(jwks_server, key):
    url, ctx, state = jwks_server
    keys = KeySet(HttpsJwksFetcher(url, ssl=ctx), min_interval=60)
    verifier = TokenVerifier(keys, audience=AUDIENCE, issuer=ISSUER)
    for _ in range(3):
        with pytest.raises(UnknownKey):
            await verifier.verify(sign_media_token(claims(), key, "nope"))
    assert state["hits"] == 1


async def test_replayed_token_is_refused(verifier, key):
    token = sign_media_token(claims(), key, "k1")
    await verifier.verify(token)
    with pytest.raises(TokenReplayed):
        await verifier.verify(token)


def test_plain_http_jwks_url_is_refused():
    with pytest.raises(ValueError, match="https"):
        HttpsJwksFetcher("http://127.0.0.1/jwks.json")


def test_unknown_role_is_refused():
    with pytest.raises(ValueError, match="role"):
        claims(role="boss")
