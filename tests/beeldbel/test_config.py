"""Configuration: defaults < TOML < environment; every wrong key or value is named."""

from __future__ import annotations

import pytest

from beeldbel.config import (
    ConfigError,
    MediaNodeConfig,
    Secret,
    load_config,
    media_nodes,
)


def test_defaults_load():
    config = load_config(None, {})
    assert config.server.port == 8443
    assert config.database.url.startswith("sqlite+aiosqlite://")
    assert config.desk.topics[0].code == "report_crime"


def test_toml_then_environment_wins(tmp_path):
    path = tmp_path / "beeldbel.toml"
    path.write_text("[server]\nport = 9000\n[desk]\nmax_attempts = 5\n")
    config = load_config(path, {"BEELDBEL_SERVER_PORT": "9100"})
    assert config.server.port == 9100
    assert config.desk.max_attempts == 5


def test_config_file_from_environment(tmp_path):
    path = tmp_path / "beeldbel.toml"
    path.write_text('[logging]\nlevel = "debug"\n')
    assert load_config(None, {"BEELDBEL_CONFIG": str(path)}).logging.level == "debug"


def _node(**fields: str | int) -> str:
    """``[calls] media_nodes`` with one node: a valid one, changed by ``fields``."""
    node = {"node_id": "a", "api_url": "http://h:1", "ws_url": "ws://h:1/ws"} | fields
    items = ", ".join(f"{key} = {value!r}" for key, value in node.items())
    return f"[calls]\nmedia_nodes = [{{{items}}}]\n"


_TWO = (
    "[calls]\nmedia_nodes = [\n"
    "  {{node_id = '{}', api_url = 'http://h:1/', ws_url = 'ws://h:1/ws'}},\n"
    "  {{node_id = '{}', api_url = 'http://h:2/', ws_url = 'ws://h:2/ws'}},\n"
    "]\n"
)


@pytest.mark.parametrize(
    ("toml", "environ", "named"),
    [
        ("[server]\nprot = 1\n", {}, "server.prot"),
        ("[nonsense]\nx = 1\n", {}, "nonsense"),
        ("[server]\nport = 'high'\n", {}, "server.port"),
        ("[server]\nport = 70000\n", {}, "port 70000"),
        ("", {"BEELDBEL_SERVER_PORT": "abc"}, "BEELDBEL_SERVER_PORT"),
        ("", {"BEELDBEL_NOPE_X": "1"}, "BEELDBEL_NOPE_X"),
        ("[database]\nurl = 'mysql://x'\n", {}, "mysql://x"),
        ("[desk]\nopening_hours = {mon = '20:00-08:00'}\n", {}, "20:00-08:00"),
        ("[desk]\nopening_hours = {maandag = '08:00-17:00'}\n", {}, "maandag"),
        ("[[desk.topics]]\ncode = 'x'\nnl = 'X'\nen = 'X'\n", {}, "'x'"),
        ("[server\n", {}, "not valid TOML"),
        ("[mediaserver]\nnode_id = 'media 1'\n", {}, "node_id 'media 1'"),
        ("[calls]\nmedia_nodes = {a = 1}\n", {}, "calls.media_nodes must be a list"),
        ("[calls]\nmedia_nodes = ['a']\n", {}, "[calls.media_nodes[0]]"),
        (_node(x=1), {}, "unknown config key calls.media_nodes[0].x"),
        (_node(ws_url=8444), {}, "calls.media_nodes[0].ws_url must be a string"),
        ("[calls]\nmedia_nodes = [{node_id = 'a'}]", {}, "[0].api_url is missing"),
        (_node(node_id="a/b"), {}, "node_id 'a/b'"),
        (_node(node_id=""), {}, "node_id ''"),
        (_node(api_url="h:1"), {}, "api_url 'h:1' must be http(s)"),
        (_node(ws_url="https://h:1"), {}, "ws_url 'https://h:1' must be ws(s)"),
        (_TWO.format("a", "a"), {}, "node_id 'a' twice"),
        (_TWO.format("a", "b").replace("h:2", "h:1"), {}, "'http://h:1/' twice"),
        (
            _TWO.format("a", "b") + "media_ws_url = 'wss://old:8444/ws'\n",
            {},
            "media_ws_url and media_nodes exclude each other",
        ),
        ("", {"BEELDBEL_CALLS_MEDIA_NODES": "[{"}, "BEELDBEL_CALLS_MEDIA_NODES"),
    ],
)
def test_wrong_keys_and_values_are_named(tmp_path, toml, environ, named):
    path = tmp_path / "beeldbel.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=None) as caught:
        load_config(path, environ)
    assert named in str(caught.value)


_KEY = "hunter2-very-secret-and-long-enough-now"


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("desk", "timezone", "'Mars/Olympus'"),
        ("desk", "timezone", "''"),
        ("desk", "slot_minutes", "0"),
        ("desk", "booking_days", "0"),
        ("desk", "retry_delay_minutes", "0"),
        ("desk", "max_attempts", "0"),
        ("desk", "expire_after_hours", "0"),
        ("desk", "stale_claim_minutes", "-1"),
        ("server", "trusted_proxies", "-1"),
        ("security", "secret_key", "'short'"),
        ("security", "secret_key", "'" + " " * 40 + "'"),
        ("security", "session_idle_minutes", "0"),
        ("security", "session_absolute_hours", "0"),
        ("security", "intake_per_ip_per_hour", "0"),
        ("security", "intake_global_per_minute", "0"),
        ("security", "login_per_ip_per_minute", "-5"),
        ("security", "api_per_key_per_minute", "0"),
        ("security", "max_body_bytes", "0"),
        ("security", "lockout_threshold", "0"),
        ("retention", "personal_data_days", "-1"),
        ("retention", "audit_days", "0"),
        ("retention", "purge_interval_minutes", "0"),
        ("metrics", "port", "-1"),
        ("metrics", "port", "70000"),
        ("mediaserver", "api_secret", "'x'"),
        ("mediaserver", "api_secret", "'" + " " * 20 + "'"),
        ("mediaserver", "turn_ttl_seconds", "0"),
        ("mediaserver", "drain_timeout_seconds", "-1"),
        ("mediaserver", "max_participants", "1"),
        ("mediaserver", "peer_timeout_seconds", "0"),
        ("mediaserver", "workers", "-1"),
    ],
)
def test_bad_values_stop_the_start_naming_the_key(tmp_path, section, key, value):
    """Each value that would start a broken or weak server is refused at load,
    in one line that names the section and the key."""
    path = tmp_path / "beeldbel.toml"
    path.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    message = str(caught.value)
    assert f"[{section}]" in message, message
    assert key in message, message
    assert "\n" not in message


def test_topics_from_toml(tmp_path):
    path = tmp_path / "beeldbel.toml"
    path.write_text(
        "[[desk.topics]]\ncode = 'fraud'\nnl = 'Fraude'\nen = 'Fraud'\n"
        "[[desk.topics]]\ncode = 'other'\nnl = 'Anders'\nen = 'Other'\n"
    )
    topics = load_config(path, {}).desk.topics
    assert [t.code for t in topics] == ["fraud", "other"]
    assert topics[0].label("en") == "Fraud"


def test_secret_never_shows_itself(tmp_path):
    path = tmp_path / "beeldbel.toml"
    path.write_text(f"[security]\nsecret_key = '{_KEY}'\n")
    config = load_config(path, {})
    assert config.security.secret_key.reveal() == _KEY
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(Secret("hunter2"))


def test_example_config_is_valid_and_complete():
    """config.example.toml documents every key and loads as is."""
    import dataclasses
    import tomllib
    from pathlib import Path

    from beeldbel.config import Config

    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    load_config(example, {})
    data = tomllib.loads(example.read_text())
    for section in dataclasses.fields(Config):
        assert section.name in data, f"[{section.name}] missing from example"
        keys = {f.name for f in dataclasses.fields(getattr(Config(), section.name))}
        missing = keys - set(data[section.name])
        assert not missing, f"[{section.name}] lacks {sorted(missing)}"


def test_one_media_node_by_default():
    """Without media_nodes: the node of media_api_url, media_ws_url and node_id."""
    config = load_config(None, {"BEELDBEL_MEDIASERVER_NODE_ID": "media-x"})
    assert media_nodes(config) == (
        MediaNodeConfig("media-x", "http://127.0.0.1:8444", "ws://127.0.0.1:8444/ws"),
    )


def test_several_media_nodes_from_toml_or_environment(tmp_path):
    path = tmp_path / "beeldbel.toml"
    path.write_text(
        "[calls]\n"
        "[[calls.media_nodes]]\n"
        "node_id = 'media-1-0'\napi_url = 'http://10.0.0.5:8444'\n"
        "ws_url = 'wss://media.example.org:8444/ws'\n"
        "[[calls.media_nodes]]\n"
        "node_id = 'media-1-1'\napi_url = 'http://10.0.0.5:8445'\n"
        "ws_url = 'wss://media.example.org:8445/ws'\n"
    )
    nodes = media_nodes(load_config(path, {}))
    assert [n.node_id for n in nodes] == ["media-1-0", "media-1-1"]
    assert nodes[1].api_url == "http://10.0.0.5:8445"
    env = (
        '[{"node_id": "m-0", "api_url": "http://127.0.0.1:8444",'
        ' "ws_url": "ws://127.0.0.1:8444/ws"}]'
    )
    (node,) = media_nodes(load_config(None, {"BEELDBEL_CALLS_MEDIA_NODES": env}))
    assert node.node_id == "m-0"


def test_test_hooks_only_on_loopback(tmp_path):
    """window.beeldbel (the live connection, a quality simulator) is for browser
    tests: a server others reach refuses to start with it."""
    path = tmp_path / "beeldbel.toml"
    path.write_text(
        '[server]\npublic_url = "https://desk.example.org"\n'
        "[calls]\ntest_hooks = true\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert "[calls] test_hooks" in str(caught.value)
    path.write_text("[calls]\ntest_hooks = true\n")
    assert load_config(path, {}).calls.test_hooks
    assert not load_config(None, {}).calls.test_hooks
