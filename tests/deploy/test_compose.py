"""The compose stack (deploy/compose, issue 10 item 5): valid against the
Compose Specification's JSON schema, and what a schema cannot see: every
long-running service has a healthcheck, HAProxy names both control planes and
each media node, Prometheus scrapes all four Beeldbel processes, no image is
`latest`, each media node publishes a UDP port of its own, the secrets are
made consistently and are nowhere in the repository, and every Beeldbel
process's config (file plus variables) is one Beeldbel accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trustme
import yaml
from yarl import URL

from beeldbel.config import Config, ConfigError
from tests.deploy.artefacts import (
    ANY_ADDRESS,
    COMPOSE_DIR,
    ROOT,
    SCHEMAS,
    compose_model,
    compose_raw,
    env_file,
    load_beeldbel_config,
    service_environment,
)

PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
    "version"
]
CONFIG_TEXT = (COMPOSE_DIR / "beeldbel.toml").read_text(encoding="utf-8")
ENV = env_file(COMPOSE_DIR / ".env.example")


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return compose_model()


@pytest.fixture(scope="module")
def services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(model["services"])


def _role(service: dict[str, Any]) -> str | None:
    """controlplane or mediaserver for a Beeldbel process's service."""
    if not str(service.get("image", "")).startswith("beeldbel:"):
        return None
    command = service.get("command", [])
    return (
        command[0]
        if command and command[0] in ("controlplane", "mediaserver")
        else None
    )


def _named(services: dict[str, dict[str, Any]], role: str) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if _role(s) == role}


def _one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no" or bool(service.get("profiles"))


def test_valid_against_the_compose_specification() -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}"
        for e in validator.iter_errors(compose_raw())
    ]
    assert not errors, "\n".join(errors)


def test_the_schema_catches_a_mistake() -> None:
    """The vendored schema is strict: a misspelt key fails (so the test above
    would catch one in compose.yaml)."""
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text(encoding="utf-8"))
    broken = compose_raw()
    broken["services"]["cp-1"]["healthchek"] = broken["services"]["cp-1"].pop(
        "healthcheck", {}
    )
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_the_stack_has_every_part(services: dict[str, dict[str, Any]]) -> None:
    images = {name: str(s.get("image", "")) for name, s in services.items()}

    def has(prefix: str) -> bool:
        return any(image.startswith(prefix) for image in images.values())

    for prefix in (
        "postgres:",
        "redis:",
        "haproxy:",
        "coturn/coturn:",
        "prom/prometheus:",
        "grafana/grafana:",
    ):
        assert has(prefix), (prefix, images)
    assert len(_named(services, "controlplane")) == 2
    assert len(_named(services, "mediaserver")) == 2


def test_no_image_is_latest_or_untagged(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        if repository == "beeldbel":
            assert tag == PROJECT_VERSION, f"{name}: {image} is not {PROJECT_VERSION}"


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if _one_shot(service):
            continue
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} has its healthcheck off"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_beeldbel_healthchecks_ask_healthz_on_the_process_port(
    services: dict[str, dict[str, Any]],
) -> None:
    config = tomllib.loads(CONFIG_TEXT)
    ports = {
        "controlplane": config["server"]["port"],
        "mediaserver": config["mediaserver"]["port"],
    }
    for role in ports:
        for name, service in _named(services, role).items():
            test = service["healthcheck"]["test"]
            assert test[1] == "beeldbel-healthcheck", name
            assert test[2:] == [f"http://127.0.0.1:{ports[role]}/healthz"], name


def test_media_nodes_publish_a_udp_port_each(
    services: dict[str, dict[str, Any]],
) -> None:
    published = []
    for name, service in _named(services, "mediaserver").items():
        env = service_environment(service)
        udp_port = int(env["BEELDBEL_MEDIASERVER_UDP_PORT"])
        udp = [p for p in service.get("ports", []) if str(p).endswith("/udp")]
        # ICE candidates carry udp_port: the host must publish the same number
        assert udp == [f"{udp_port}:{udp_port}/udp"], (name, udp)
        assert env["BEELDBEL_MEDIASERVER_ADVERTISED_ADDRESS"] == ENV["PUBLIC_IP"]
        published.append(udp_port)
        # SIGTERM drains: compose waits longer than the drain before SIGKILL
        grace = service["stop_grace_period"]
        assert grace.endswith("s")
        assert int(grace[:-1]) > _config("mediaserver", "drain_timeout_seconds")
    assert len(set(published)) == len(published) == 2


def _config(section: str, key: str) -> Any:
    return tomllib.loads(CONFIG_TEXT)[section][key]


def _haproxy() -> dict[str, list[str]]:
    """haproxy.cfg's sections: header line → its lines."""
    sections: dict[str, list[str]] = {}
    current = ""
    text = (COMPOSE_DIR / "haproxy" / "haproxy.cfg").read_text(encoding="utf-8")
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not raw[0].isspace():
            current = line.strip()
            sections[current] = []
        else:
            sections[current].append(line.strip())
    return sections


def _servers(lines: list[str]) -> set[str]:
    return {line.split()[2] for line in lines if line.startswith("server ")}


def test_haproxy_balances_over_both_control_planes(
    services: dict[str, dict[str, Any]],
) -> None:
    cfg = _haproxy()
    backend = cfg["backend controlplanes"]
    port = _config("server", "port")
    assert _servers(backend) == {
        f"{n}:{port}" for n in _named(services, "controlplane")
    }
    # a replica whose database is unreachable gets no requests
    assert "option httpchk GET /readyz" in backend
    assert "default_backend controlplanes" in cfg["frontend https"]
    # the internal listener the media nodes send heartbeats to
    heartbeat = URL(_config("mediaserver", "control_plane_url"))
    internal = [
        s
        for s in cfg
        if s.startswith("frontend")
        and any(line == f"bind :{heartbeat.port}" for line in cfg[s])
    ]
    assert heartbeat.host == "haproxy"
    assert len(internal) == 1
    assert "default_backend controlplanes" in cfg[internal[0]]


def test_haproxy_routes_each_media_websocket_to_its_node(
    services: dict[str, dict[str, Any]],
) -> None:
    cfg = _haproxy()
    frontend = cfg["frontend https"]
    media = _named(services, "mediaserver")
    nodes = json.loads(
        service_environment(next(iter(_named(services, "controlplane").values())))[
            "BEELDBEL_CALLS_MEDIA_NODES"
        ]
    )
    assert {n["node_id"] for n in nodes} == {
        service_environment(s)["BEELDBEL_MEDIASERVER_NODE_ID"] for s in media.values()
    }
    port = _config("mediaserver", "port")
    for node in nodes:
        ws = URL(node["ws_url"])
        assert ws.scheme == "wss", ws
        assert ws.host == ENV["PUBLIC_HOST"], ws
        api = URL(node["api_url"])
        assert api.host in media, api
        assert api.port == port, api
        # the public path reaches that node's /ws, and only that
        acl = next(line for line in frontend if line.endswith(f"path {ws.path}"))
        name = acl.split()[1]
        (use,) = [
            line
            for line in frontend
            if line.startswith("use_backend") and line.endswith(f"if {name}")
        ]
        backend = cfg[f"backend {use.split()[1]}"]
        assert _servers(backend) == {f"{api.host}:{port}"}
        assert "http-request set-path /ws" in backend
        # a draining node keeps its calls' signalling: checked on /healthz
        assert "option httpchk GET /healthz" in backend


def test_haproxy_logs_no_address_and_no_path() -> None:
    """A URL may carry a join token, and Beeldbel's logs hold no client's
    address: HAProxy's request log holds neither."""
    (log_format,) = [
        line for line in _haproxy()["defaults"] if line.startswith("log-format ")
    ]
    for field in ("%ci", "%cp", "%r", "%HU", "%HP", "%HQ", "%hr"):
        assert field not in log_format, field


def test_haproxy_config_is_valid(tmp_path: Path) -> None:
    """`haproxy -c` where HAProxy is installed (Debian's package)."""
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if haproxy is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy)")
    cert = trustme.CA().issue_cert(ENV["PUBLIC_HOST"])
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "site.pem"))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(tmp_path / "site.pem"), append=True)
    cert.private_key_pem.write_to_path(str(tmp_path / "site.pem.key"))
    text = (COMPOSE_DIR / "haproxy" / "haproxy.cfg").read_text(encoding="utf-8")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        text.replace(
            "/usr/local/etc/haproxy/certs/site.pem", str(tmp_path / "site.pem")
        )
    )
    done = subprocess.run(  # noqa: S603
        [haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # the only warnings allowed: the services' names, unknown outside compose
    warnings = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "WARNING" in line and "could not resolve address" not in line
    ]
    assert not warnings, warnings


def test_prometheus_scrapes_all_four_beeldbel_processes(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = yaml.safe_load(
        (COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    )
    targets: dict[str, dict[str, Any]] = {}
    for job in prometheus["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                targets[target] = job
    metrics_port = _config("metrics", "port")
    assert _config("metrics", "host") == ANY_ADDRESS
    for name in _named(services, "controlplane"):
        assert f"{name}:{metrics_port}" in targets, name
    media_port = _config("mediaserver", "port")
    for name in _named(services, "mediaserver"):
        job = targets[f"{name}:{media_port}"]
        # the media nodes' /metrics wants their metrics_secret as a bearer
        secret_file = job["authorization"]["credentials_file"]
        secret = Path(secret_file).name
        assert secret in services["prometheus"]["secrets"], secret
    assert "haproxy:8404" in targets


def test_grafana_is_provisioned_with_prometheus() -> None:
    folder = COMPOSE_DIR / "grafana"
    datasources = yaml.safe_load(
        (folder / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"]
    (prometheus,) = [d for d in datasources if d["type"] == "prometheus"]
    assert URL(prometheus["url"]) == URL("http://prometheus:9090")
    dashboards = sorted((COMPOSE_DIR.parent / "grafana").glob("*.json"))
    assert [d.name for d in dashboards] == ["beeldbel.json"]
    for dashboard in dashboards:
        panels = json.loads(dashboard.read_text())["panels"]
        assert panels
        for panel in panels:
            assert panel["datasource"]["uid"] == prometheus["uid"], panel["title"]


@pytest.fixture
def secrets_made(tmp_path: Path) -> Path:
    """init-secrets.sh run in a copy of deploy/compose."""
    copy = tmp_path / "compose"
    shutil.copytree(COMPOSE_DIR, copy, ignore=shutil.ignore_patterns(".env"))
    sh = shutil.which("sh")
    assert sh is not None
    done = subprocess.run(  # noqa: S603
        [sh, str(copy / "init-secrets.sh")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return copy


def test_init_secrets_makes_each_shared_secret_once(secrets_made: Path) -> None:
    secrets = secrets_made / "secrets"
    controlplane = env_file(secrets / "controlplane.env")
    media = env_file(secrets / "media.env")

    def read(name: str) -> str:
        return (secrets / name).read_text()

    values = [*controlplane.values(), *media.values()]
    assert not [v for v in values if "CHANGE_ME" in v]
    database = URL(controlplane["BEELDBEL_DATABASE_URL"])
    assert database.password == read("postgres_password")
    assert database.host == "postgres"
    assert database.user == "beeldbel"
    assert (
        controlplane["BEELDBEL_MEDIASERVER_API_SECRET"]
        == media["BEELDBEL_MEDIASERVER_API_SECRET"]
    )
    assert media["BEELDBEL_MEDIASERVER_TURN_SECRET"] == read("turn_secret")
    assert media["BEELDBEL_MEDIASERVER_METRICS_SECRET"] == read("media_metrics_secret")
    assert len(read("grafana_admin_password")) >= 16
    # every secret compose.yaml names is made
    for secret in compose_raw()["secrets"].values():
        assert (secrets_made / secret["file"]).is_file(), secret
    # once only: a second run would lock the database's password away
    sh = shutil.which("sh")
    assert sh is not None
    again = subprocess.run(  # noqa: S603
        [sh, str(secrets_made / "init-secrets.sh")], capture_output=True, check=False
    )
    assert again.returncode != 0
    assert env_file(secrets / "controlplane.env") == controlplane


def _process_environment(service: dict[str, Any], folder: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for path in service.get("env_file", []):
        env.update(env_file(folder / path))
    env.update(service_environment(service))
    return env


def test_every_beeldbel_process_config_loads(
    services: dict[str, dict[str, Any]], secrets_made: Path, tmp_path: Path
) -> None:
    """beeldbel.toml plus each service's variables is a config Beeldbel starts
    with: no unknown key or variable, the listeners reachable, no dev TLS."""
    configs: dict[str, Config] = {}
    for name, service in services.items():
        if not str(service.get("image", "")).startswith("beeldbel:"):
            continue
        env = _process_environment(service, secrets_made)
        folder = tmp_path / name
        folder.mkdir()
        configs[name] = load_beeldbel_config(CONFIG_TEXT, env, folder)
    for name in _named(services, "controlplane"):
        config = configs[name]
        assert config.server.host == ANY_ADDRESS
        assert config.server.public_url == f"https://{ENV['PUBLIC_HOST']}"
        # TLS ends at HAProxy with the site's own certificate
        assert not config.tls.enabled
        assert config.server.trusted_proxies == 1
        assert config.database.url.startswith("postgresql+asyncpg://")
        # rate limits, lockouts and events shared with the other replica
        assert URL(config.redis.url).host == "redis"
        assert config.security.secret_key
        assert len(config.calls.media_nodes) == 2
        # each media token's reply carries the TURN servers, with credentials
        # the control plane makes from coturn's secret: same as the nodes'
        assert config.mediaserver.turn_urls
        assert config.mediaserver.turn_secret.reveal() == (
            (secrets_made / "secrets" / "turn_secret").read_text()
        )
    node_ids = set()
    for name in _named(services, "mediaserver"):
        media = configs[name].mediaserver
        assert media.host == ANY_ADDRESS
        assert media.udp_bind == ANY_ADDRESS
        assert media.advertised_address == ENV["PUBLIC_IP"]
        assert media.api_secret
        assert media.turn_secret
        assert media.metrics_secret
        assert URL(media.jwks_url).host == ENV["PUBLIC_HOST"]
        node_ids.add(media.node_id)
    assert len(node_ids) == 2
    # the media nodes reach the public name (their JWKS) at HAProxy
    aliases = services["haproxy"]["networks"]["backend"]["aliases"]
    assert ENV["PUBLIC_HOST"] in aliases


def test_placeholder_secrets_are_refused(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Left in by mistake, the examples' placeholders stop Beeldbel at start."""
    for example in ("controlplane.env.example", "media.env.example"):
        env = env_file(COMPOSE_DIR / example)
        assert all("CHANGE_ME" in value for value in env.values()), example
        role = "controlplane" if example.startswith("controlplane") else "mediaserver"
        service = next(iter(_named(services, role).values()))
        env.update(service_environment(service))
        with pytest.raises(ConfigError, match="secret"):
            load_beeldbel_config(CONFIG_TEXT, env, tmp_path)


def test_no_secret_is_written_into_the_stack() -> None:
    """Secrets live in secrets/ (made on the host, ignored by git), never in
    compose.yaml or the files it mounts."""
    text = (COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8")
    for name in re.findall(r"\b(\w*(?:PASSWORD|SECRET|KEY)\w*)\s*:", text):
        assert name.endswith("_FILE"), f"compose.yaml sets {name} itself"
    config = tomllib.loads(CONFIG_TEXT)
    for section, values in config.items():
        for key in values:
            assert not re.search(r"secret|password", key), f"[{section}] {key}"
    ignored = (COMPOSE_DIR / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert {"/.env", "/secrets/*", "/certs/*"} <= set(ignored)
    git = shutil.which("git")
    assert git is not None
    tracked = subprocess.run(  # noqa: S603
        [git, "ls-files", "--", "secrets", "certs"],
        cwd=COMPOSE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(path.endswith("README.md") for path in tracked), tracked
