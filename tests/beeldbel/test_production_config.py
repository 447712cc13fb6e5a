"""config.production.example.toml loads with the real schema, so it cannot drift
from it, and it describes a production start: a public name, bring-your-own
certificates, no dev CA."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import trustme
from sqlalchemy.engine import make_url

from beeldbel.config import ConfigError, is_loopback_url, load_config
from beeldbel.tls import refuse_dev_certificate, server_context

EXAMPLE = Path(__file__).resolve().parents[2] / "config.production.example.toml"
PLACEHOLDERS = {
    "/etc/beeldbel/tls/fullchain.pem": "desk.crt",
    "/etc/beeldbel/tls/privkey.pem": "desk.key",
    "/etc/beeldbel/tls/media1-fullchain.pem": "media1.crt",
    "/etc/beeldbel/tls/media1-privkey.pem": "media1.key",
}


def _with_real_certificates(tmp_path: Path) -> Path:
    """The example with its certificate paths pointing at certificates for its
    host names (from a CA that is not the dev CA)."""
    ca = trustme.CA()
    for name in ("desk", "media1"):
        cert = ca.issue_cert(f"{name}.example.org")
        chain = b"".join(pem.bytes() for pem in cert.cert_chain_pems)
        (tmp_path / f"{name}.crt").write_bytes(chain)
        cert.private_key_pem.write_to_path(str(tmp_path / f"{name}.key"))
    text = EXAMPLE.read_text(encoding="utf-8")
    for placeholder, name in PLACEHOLDERS.items():
        assert placeholder in text
        text = text.replace(placeholder, str(tmp_path / name))
    path = tmp_path / "production.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_production_example_loads_and_starts_with_its_certificates(tmp_path):
    config = load_config(_with_real_certificates(tmp_path), {})
    assert not is_loopback_url(config.server.public_url)
    assert config.database.url.startswith("postgresql+asyncpg://")
    refuse_dev_certificate(config)  # its own certificates are accepted
    server_context(config.tls.cert_file, config.tls.key_file, ("cert", "key"))
    media = config.mediaserver
    server_context(media.tls_cert_file, media.tls_key_file, ("cert", "key"))
    assert media.udp_bind == "0.0.0.0"  # noqa: S104
    assert media.advertised_address
    assert media.turn_urls
    assert media.jwks_url.startswith(config.server.public_url)
    assert media.token_issuer == config.server.public_url
    # trust comes from the system's CA store: no dev CA anywhere
    assert media.jwks_ca_file == config.calls.media_api_ca_file == ""
    assert "var/certs" not in EXAMPLE.read_text(encoding="utf-8")


def test_the_production_example_keeps_secrets_out_of_the_file():
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert data["security"]["secret_key"] == ""
    for key in ("api_secret", "metrics_secret", "turn_secret"):
        assert data["mediaserver"][key] == "", key


def test_the_production_example_shares_state_through_redis():
    config = load_config(EXAMPLE, {})
    assert config.redis.url.startswith("redis://")
    assert make_url(config.database.url).password is None


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])  # noqa: S104
def test_a_wildcard_udp_bind_needs_an_advertised_address(wildcard):
    """ICE candidates carry advertised_address, else udp_bind: a wildcard there is
    an address no browser can send to, so the start stops and says what to set."""
    bind = {"BEELDBEL_MEDIASERVER_UDP_BIND": wildcard}
    with pytest.raises(ConfigError, match="advertised_address"):
        load_config(None, bind)
    with pytest.raises(ConfigError, match="advertised_address"):
        load_config(None, {"BEELDBEL_MEDIASERVER_ADVERTISED_ADDRESS": wildcard})
    address = {"BEELDBEL_MEDIASERVER_ADVERTISED_ADDRESS": "203.0.113.10"}
    assert load_config(None, {**bind, **address}).mediaserver.udp_bind == wildcard
