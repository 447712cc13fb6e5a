"""Media server configuration, SDP policy and ICE servers handed to clients."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from beeldbel.config import ConfigError, MediaServerConfig, Secret, load_config
from mediaserver.__main__ import worker_config
from mediaserver.ice_servers import ice_servers_for


def test_environment_configures_the_media_server():
    config = load_config(
        None,
        {
            "BEELDBEL_MEDIASERVER_UDP_PORT": "41000",
            "BEELDBEL_MEDIASERVER_ADVERTISED_ADDRESS": "198.51.100.7",
            "BEELDBEL_MEDIASERVER_TURN_URLS": '["turns:turn.example:443"]',
            "BEELDBEL_MEDIASERVER_TURN_SECRET": "s",
        },
    ).mediaserver
    assert config.udp_port == 41000
    assert config.advertised_address == "198.51.100.7"
    assert "s" not in repr(config.turn_secret)


@pytest.mark.parametrize("window", ["-1", "5001"])
def test_batch_window_out_of_range_is_refused(window):
    with pytest.raises(ConfigError, match="batch_window_us"):
        load_config(None, {"BEELDBEL_MEDIASERVER_BATCH_WINDOW_US": window})


def test_plain_http_jwks_is_refused():
    with pytest.raises(ConfigError, match="jwks_url"):
        load_config(None, {"BEELDBEL_MEDIASERVER_JWKS_URL": "http://cp/jwks.json"})


def test_workers_get_their_own_ports_and_node_id():
    config = worker_config(MediaServerConfig(port=8444, udp_port=40000), 2)
    assert (config.port, config.udp_port, config.node_id) == (8446, 40002, "media-1-2")


def test_no_ice_servers_unless_configured():
    assert ice_servers_for(MediaServerConfig(), "p1") == []


def test_turn_rest_credentials():
    config = MediaServerConfig(
        turn_urls=("turns:turn.example:443?transport=tcp",),
        turn_secret=Secret("shared"),
        turn_ttl_seconds=600,
    )
    (server,) = ice_servers_for(config, "p1", now=1000)
    assert server["username"] == "1600:p1"
    digest = hmac.new(b"shared", b"1600:p1", hashlib.sha1).digest()
    assert server["credential"] == base64.b64encode(digest).decode()
