"""Signing keys: JWKS served by the real app over HTTPS, rotation, retirement."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import jwt
import pytest
import sqlalchemy as sa
import trustme

from beeldbel.cli.main import main as cli_main
from beeldbel.tokens import (
    ALGORITHM,
    TOKEN_TYPE,
    HttpsJwksFetcher,
    KeySet,
    TokenVerifier,
    UnknownKey,
)
from controlplane.app.factory import create_app
from controlplane.base.errors import Conflict, NotFound
from controlplane.security import signing_keys
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.storage.database import DB
from controlplane.storage.schema import signing_keys as signing_keys_table

ISSUER = "https://desk.example"
AUDIENCE = "media-1"


@pytest.fixture
async def desk(aiohttp_server, config):
    """The real control plane over HTTPS (trustme certificate) and a client context."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    app = create_app(config)
    server = await aiohttp_server(app, ssl=server_ctx)
    url = f"https://127.0.0.1:{server.port}/.well-known/jwks.json"
    return app, url, client_ctx


def verifier_for(url: str, ctx: ssl.SSLContext) -> TokenVerifier:
    keys = KeySet(HttpsJwksFetcher(url, ssl=ctx), min_interval=0)
    return TokenVerifier(keys, audience=AUDIENCE, issuer=ISSUER)


async def token(app, *, room="room-1", role="citizen", sub="p1") -> str:
    return await signing_keys.issue_media_token(
        app[DB],
        app[SECRET_KEY],
        issuer=ISSUER,
        audience=AUDIENCE,
        room=room,
        role=role,
        sub=sub,
        ttl_seconds=30,
    )


async def test_first_key_is_made_at_start_and_served_briefly_cacheable(
    desk, aiohttp_client
):
    app, url, ctx = desk
    listed = await signing_keys.list_keys(app[DB])
    assert len(listed) == 1
    assert listed[0].signing
    fetched = await HttpsJwksFetcher(url, ssl=ctx)()
    (jwk,) = fetched["keys"]
    assert jwk["kid"] == listed[0].kid
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("OKP", "Ed25519", ALGORITHM)
    assert "d" not in jwk


async def test_jwks_cache_control_is_short(client):
    response = await client.get("/.well-known/jwks.json")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=60"
    assert len((await response.json())["keys"]) == 1


async def test_tokens_verify_against_served_jwks_across_rotation(desk):
    app, url, ctx = desk
    verifier = verifier_for(url, ctx)
    before = await token(app, sub="before")
    claims = await verifier.verify(before)
    assert (claims.room, claims.role, claims.sub) == ("room-1", "citizen", "before")

    new_kid = await signing_keys.rotate(app[DB], app[SECRET_KEY])
    after = await token(app, sub="after")
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    assert jwt.get_unverified_header(before)["kid"] != new_kid
    # the verifier has never seen new_kid: it refetches the JWKS and accepts
    assert (await verifier.verify(after)).sub == "after"
    # a token signed just before the rotation still works: old keys stay published
    fresh = verifier_for(url, ctx)
    assert (await fresh.verify(before)).sub == "before"


async def test_retired_key_is_unpublished_and_its_tokens_refused(desk):
    app, url, ctx = desk
    old = await token(app)
    old_kid = jwt.get_unverified_header(old)["kid"]
    new_kid = await signing_keys.rotate(app[DB], app[SECRET_KEY])
    await signing_keys.retire(app[DB], old_kid)

    document = await HttpsJwksFetcher(url, ssl=ctx)()
    assert [k["kid"] for k in document["keys"]] == [new_kid]
    with pytest.raises(UnknownKey):
        await verifier_for(url, ctx).verify(old)
    assert (await verifier_for(url, ctx).verify(await token(app))).room == "room-1"


async def test_current_key_cannot_be_retired_and_unknown_kid_is_not_found(desk):
    app, _, _ = desk
    (current,) = await signing_keys.list_keys(app[DB])
    with pytest.raises(Conflict, match="rotate first"):
        await signing_keys.retire(app[DB], current.kid)
    with pytest.raises(NotFound):
        await signing_keys.retire(app[DB], "no-such-kid")
    await signing_keys.rotate(app[DB], app[SECRET_KEY])
    await signing_keys.retire(app[DB], current.kid)
    with pytest.raises(NotFound):
        await signing_keys.retire(app[DB], current.kid)


async def test_algorithm_and_type_are_pinned(desk):
    app, _, _ = desk
    header = jwt.get_unverified_header(await token(app))
    assert header["alg"] == ALGORITHM == "EdDSA"
    assert header["typ"] == TOKEN_TYPE


async def test_private_key_is_encrypted_and_needs_the_same_secret(db):
    kid = await signing_keys.ensure_signing_key(db, b"first secret")
    assert await signing_keys.ensure_signing_key(db, b"first secret") == kid
    async with db.read() as conn:
        stored = (
            await conn.execute(sa.select(signing_keys_table.c.private_key))
        ).scalar_one()
    _, key = await signing_keys.current_key(db, b"first secret")
    assert key.private_bytes_raw().hex() not in stored
    with pytest.raises(signing_keys.SigningKeyUnreadable, match="secret_key"):
        await signing_keys.current_key(db, b"another secret")


def test_cli_rotate_list_retire(sqlite_url, tmp_path: Path, capsys):
    path = tmp_path / "beeldbel.toml"
    path.write_text(
        f'[database]\nurl = "{sqlite_url}"\n'
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n',
        encoding="utf-8",
    )
    base = ["--config", str(path), "keys"]
    assert cli_main([*base, "rotate"]) == 0
    assert cli_main([*base, "rotate"]) == 0
    capsys.readouterr()
    assert cli_main([*base, "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("published\tsigning")
    newest, oldest = (line.split("\t")[0] for line in lines)
    assert cli_main([*base, "retire", newest]) == 1
    assert "rotate first" in capsys.readouterr().err
    assert cli_main([*base, "retire", oldest]) == 0
    assert cli_main([*base, "list"]) == 0
    assert "retired" in capsys.readouterr().out.splitlines()[-1]


async def test_concurrent_first_start_leaves_a_usable_key(db):
    """Two processes starting at once may both add a key; the newest signs."""
    await asyncio.gather(
        signing_keys.ensure_signing_key(db, b"s"),
        signing_keys.ensure_signing_key(db, b"s"),
    )
    kid, _ = await signing_keys.current_key(db, b"s")
    assert kid == (await signing_keys.list_keys(db))[0].kid
