"""Every refused join token is refused at the WebSocket, before any media."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from beeldbel.tokens import TOKEN_TYPE
from tests.mediaserver.conftest import create_room


async def try_join(server, room: str, token: str) -> dict[str, Any]:
    async with server.session.ws_connect(server.make_url("/ws")) as ws:
        await ws.send_json({"type": "join", "room_id": room, "token": token})
        reply: dict[str, Any] = await ws.receive_json(timeout=10)
        return reply


def payload_of(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(token.split(".")[1] + "==")
    )
    return payload


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda t, k: t(exp=int(time.time()) - 60), "token_expired"),
        (lambda t, k: t(nbf=int(time.time()) + 60), "token_not_yet_valid"),
        (lambda t, k: t(aud="media-other"), "token_invalid"),
        (
            lambda t, k: jwt.encode(
                payload_of(t()),
                None,  # type: ignore[arg-type]
                algorithm="none",
                headers={"kid": "k1", "typ": TOKEN_TYPE},
            ),
            "token_invalid",
        ),
        (
            lambda t, k: jwt.encode(
                payload_of(t()),
                "x" * 32,
                algorithm="HS256",
                headers={"kid": "k1", "typ": TOKEN_TYPE},
            ),
            "token_invalid",
        ),
        (
            lambda t, k: jwt.encode(
                payload_of(t()),
                Ed25519PrivateKey.generate(),
                algorithm="EdDSA",
                headers={"kid": "k1", "typ": TOKEN_TYPE},
            ),
            "token_invalid",
        ),
        (
            lambda t, k: jwt.encode(
                payload_of(t()),
                k,
                algorithm="EdDSA",
                headers={"kid": "k7", "typ": TOKEN_TYPE},
            ),
            "token_unknown_key",
        ),
        (lambda t, k: t(room="r2"), "forbidden"),
    ],
    ids=[
        "expired",
        "not_yet_valid",
        "wrong_aud",
        "alg_none",
        "hs256",
        "bad_signature",
        "unknown_kid",
        "wrong_room",
    ],
)
async def test_refused_tokens(server, token, signing_key, make, code):
    await create_room(server)
    reply = await try_join(server, "r1", make(token, signing_key))
    assert reply["type"] == "error"
    assert reply["code"] == code


async def test_replayed_token_is_refused(server, token):
    await create_room(server)
    once = token()
    assert (await try_join(server, "r1", once))["type"] == "joined"
    reply = await try_join(server, "r1", once)
    assert reply["code"] == "token_replayed"


async def test_unknown_room_is_refused(server, token):
    reply = await try_join(server, "nope", token(room="nope"))
    assert reply["code"] == "room_not_found"
