"""Configuration: defaults < TOML < environment; every wrong key or value is named."""

from __future__ import annotations

import pytest

from common.config import ConfigError, Secret, load_config


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
    ],
)
def test_wrong_keys_and_values_are_named(tmp_path, toml, environ, named):
    path = tmp_path / "beeldbel.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=None) as caught:
        load_config(path, environ)
    assert named in str(caught.value)


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
    path.write_text("[security]\nsecret_key = 'hunter2-very-secret'\n")
    config = load_config(path, {})
    assert config.security.secret_key.reveal() == "hunter2-very-secret"
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(Secret("hunter2"))


def test_example_config_is_valid_and_complete():
    """config.example.toml documents every key and loads as is."""
    import dataclasses
    import tomllib
    from pathlib import Path

    from common.config import Config

    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    load_config(example, {})
    data = tomllib.loads(example.read_text())
    for section in dataclasses.fields(Config):
        assert section.name in data, f"[{section.name}] missing from example"
        keys = {f.name for f in dataclasses.fields(getattr(Config(), section.name))}
        missing = keys - set(data[section.name])
        assert not missing, f"[{section.name}] lacks {sorted(missing)}"
