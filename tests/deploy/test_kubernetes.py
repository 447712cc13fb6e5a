"""The Kubernetes base (deploy/kubernetes, issue 10 item 5), rendered as
``kubectl kustomize`` renders it and validated offline against the Kubernetes
schemas kubernetes-validate ships, strictly (an unknown field fails). Then
what the schemas cannot see: the control plane replicated, kept up by a
PodDisruptionBudget, probed on /healthz and /readyz; media nodes that drain
before they stop, each with a UDP port of its own; coturn; NetworkPolicies that
deny by default; no `latest` image; placeholder Secrets only; and a config
Beeldbel accepts in every container."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from yarl import URL

from beeldbel.config import ConfigError
from tests.deploy.artefacts import (
    ANY_ADDRESS,
    KUSTOMIZE_DIR,
    ROOT,
    WORKLOADS,
    by_kind,
    containers,
    dockerfile_stages,
    env_key,
    kustomize,
    load_beeldbel_config,
)

#: the oldest Kubernetes the base is checked against, and the newest known
VERSIONS = ("1.29.0", latest_version())
COMPONENT = "app.kubernetes.io/component"
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
    "version"
]


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return kustomize(KUSTOMIZE_DIR)


def _one(docs: list[dict[str, Any]], kind: str, component: str) -> dict[str, Any]:
    (found,) = [
        d
        for d in docs
        if d["kind"] == kind
        and d["metadata"].get("labels", {}).get(COMPONENT) == component
    ]
    return found


def _pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = doc["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def _config_text(docs: list[dict[str, Any]]) -> str:
    text: str = by_kind(docs, "ConfigMap")["beeldbel-config"]["data"]["beeldbel.toml"]
    return text


def _config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return tomllib.loads(_config_text(docs))


def test_renders_as_kubectl_kustomize_does(docs: list[dict[str, Any]]) -> None:
    """Where kubectl is installed, its own kustomize gives the same manifests
    (in its order); elsewhere this module's renderer stands in for it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Python renderer alone is used")
    done = subprocess.run(  # noqa: S603
        [kubectl, "kustomize", str(KUSTOMIZE_DIR)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    theirs = [d for d in yaml.safe_load_all(done.stdout) if d]

    def key(d: dict[str, Any]) -> str:
        return json.dumps(d, sort_keys=True)

    assert sorted(map(key, theirs)) == sorted(map(key, docs))


@pytest.mark.parametrize("version", VERSIONS)
def test_valid_against_the_kubernetes_schemas(
    docs: list[dict[str, Any]], version: str
) -> None:
    errors = []
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{name}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_the_validation_catches_a_mistake(docs: list[dict[str, Any]]) -> None:
    """Strict: a misspelt field fails, so the test above would catch one."""
    deployment = copy.deepcopy(_one(docs, "Deployment", "controlplane"))
    pod = deployment["spec"]["template"]["spec"]
    pod["containers"][0]["livenesProbe"] = pod["containers"][0].pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_everything_in_one_namespace(docs: list[dict[str, Any]]) -> None:
    (namespace,) = by_kind(docs, "Namespace")
    labels = by_kind(docs, "Namespace")[namespace]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]


def test_control_plane_is_replicated_and_kept_up(docs: list[dict[str, Any]]) -> None:
    deployment = _one(docs, "Deployment", "controlplane")
    replicas = deployment["spec"]["replicas"]
    assert replicas >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = _pod_labels(deployment)
    assert _selects(deployment["spec"]["selector"], labels)
    budgets = [
        p
        for p in by_kind(docs, "PodDisruptionBudget").values()
        if _selects(p["spec"]["selector"], labels)
    ]
    assert len(budgets) == 1, "no PodDisruptionBudget selects the control plane"
    spec = budgets[0]["spec"]
    assert (
        1
        <= spec.get("minAvailable", replicas - spec.get("maxUnavailable", 0))
        < replicas
    )
    # and its Service reaches it
    service = by_kind(docs, "Service")["beeldbel-controlplane"]
    assert _selects({"matchLabels": service["spec"]["selector"]}, labels)


def _port(container: dict[str, Any], name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    (port,) = [p for p in container["ports"] if p["name"] == name_or_number]
    number: int = port["containerPort"]
    return number


def _probe(container: dict[str, Any], kind: str) -> tuple[str, int]:
    get = container[kind]["httpGet"]
    assert get.get("scheme", "HTTP") == "HTTP", get
    return get["path"], _port(container, get["port"])


def test_control_plane_probes(docs: list[dict[str, Any]]) -> None:
    (container,) = containers(_one(docs, "Deployment", "controlplane"))
    port = _config(docs)["server"]["port"]
    assert _probe(container, "livenessProbe") == ("/healthz", port)
    assert _probe(container, "readinessProbe") == ("/readyz", port)
    assert _probe(container, "startupProbe") == ("/healthz", port)
    assert container["args"] == ["controlplane"]


def test_media_nodes_drain_before_they_stop(docs: list[dict[str, Any]]) -> None:
    statefulset = _one(docs, "StatefulSet", "media")
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = containers(statefulset)
    port = _config(docs)["mediaserver"]["port"]
    assert _probe(container, "livenessProbe") == ("/healthz", port)
    # 503 while draining: no new rooms
    assert _probe(container, "readinessProbe") == ("/readyz", port)
    pre_stop = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    # SIGTERM makes the media server drain; the hook waits until it has exited
    assert "kill -TERM 1" in pre_stop
    assert "while kill -0 1" in pre_stop
    drain = _config(docs)["mediaserver"]["drain_timeout_seconds"]
    assert pod["terminationGracePeriodSeconds"] > drain
    assert "exec beeldbel mediaserver" in container["args"][0]
    # the Services of a node keep sending to it while it drains
    for service in by_kind(docs, "Service").values():
        if service["metadata"]["labels"].get(COMPONENT) == "media":
            assert service["spec"]["publishNotReadyAddresses"] is True


def test_each_media_node_has_its_own_udp_port(docs: list[dict[str, Any]]) -> None:
    statefulset = _one(docs, "StatefulSet", "media")
    name = statefulset["metadata"]["name"]
    pods = [f"{name}-{i}" for i in range(statefulset["spec"]["replicas"])]
    assert len(pods) >= 2
    (container,) = containers(statefulset)
    udp_port = _config(docs)["mediaserver"]["udp_port"]
    (media_port,) = [p for p in container["ports"] if p["protocol"] == "UDP"]
    assert media_port["containerPort"] == udp_port
    services = by_kind(docs, "Service").values()
    addresses = by_kind(docs, "ConfigMap")["beeldbel-media-addresses"]["data"]
    for pod in pods:
        (udp,) = [
            s
            for s in services
            if s["spec"].get("selector") == {"statefulset.kubernetes.io/pod-name": pod}
            and s["spec"].get("type") == "LoadBalancer"
        ]
        (port,) = udp["spec"]["ports"]
        assert port["protocol"] == "UDP", udp
        assert port["port"] == udp_port, udp
        assert port["targetPort"] in (udp_port, media_port["name"])
        # ICE carries the LoadBalancer's address: one per pod in the ConfigMap
        assert addresses[pod], pod
    assert set(addresses) == set(pods)
    env = {e["name"]: e for e in container["env"]}
    assert env["BEELDBEL_MEDIASERVER_UDP_BIND"]["value"] == ANY_ADDRESS
    field = env["BEELDBEL_MEDIASERVER_NODE_ID"]["valueFrom"]["fieldRef"]
    assert field["fieldPath"] == "metadata.name"


def test_control_plane_knows_every_media_node(docs: list[dict[str, Any]]) -> None:
    statefulset = _one(docs, "StatefulSet", "media")
    name = statefulset["metadata"]["name"]
    headless = statefulset["spec"]["serviceName"]
    assert by_kind(docs, "Service")[headless]["spec"]["clusterIP"] == "None"
    nodes = _config(docs)["calls"]["media_nodes"]
    pods = [f"{name}-{i}" for i in range(statefulset["spec"]["replicas"])]
    assert [n["node_id"] for n in nodes] == pods
    port = _config(docs)["mediaserver"]["port"]
    (ingress,) = by_kind(docs, "Ingress").values()
    rules = {r["host"]: r for r in ingress["spec"]["rules"]}
    tls_hosts = {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
    for node in nodes:
        api = URL(node["api_url"])
        assert api.host == f"{node['node_id']}.{headless}"
        assert api.port == port
        ws = URL(node["ws_url"])
        assert ws.scheme == "wss"
        assert ws.host in tls_hosts
        # the Ingress sends the node's host to the node's own Service, /ws only
        (path,) = rules[ws.host]["http"]["paths"]
        assert (path["path"], path["pathType"]) == (ws.path, "Exact")
        service = by_kind(docs, "Service")[path["backend"]["service"]["name"]]
        assert service["spec"]["selector"] == {
            "statefulset.kubernetes.io/pod-name": node["node_id"]
        }
    public = URL(_config(docs)["server"]["public_url"])
    (path,) = rules[public.host]["http"]["paths"]
    assert path["backend"]["service"]["name"] == "beeldbel-controlplane"


def test_coturn(docs: list[dict[str, Any]]) -> None:
    deployment = _one(docs, "Deployment", "coturn")
    (container,) = containers(deployment)
    script = container["args"][0]
    # the secret goes into a file, never a command line; a placeholder stops it
    assert "static-auth-secret=%s" in script
    assert "CHANGE_ME" in script
    assert "allowed-peer-ip" in script
    config = by_kind(docs, "ConfigMap")["beeldbel-coturn"]["data"]["turnserver.conf"]
    lines = set(config.splitlines())
    assert {
        "use-auth-secret",
        "no-udp",
        "no-tcp",
        "denied-peer-ip=0.0.0.0-255.255.255.255",
    } <= lines
    (service,) = [
        s
        for s in by_kind(docs, "Service").values()
        if s["metadata"]["labels"].get(COMPONENT) == "coturn"
    ]
    (port,) = service["spec"]["ports"]
    assert port["port"] == 443
    assert service["spec"]["type"] == "LoadBalancer"
    turn_urls = _config(docs)["mediaserver"]["turn_urls"]
    assert all(url.startswith("turns:") and ":443?" in url for url in turn_urls)


def test_admin_job_makes_the_first_admin_without_a_logged_password(
    docs: list[dict[str, Any]],
) -> None:
    job = _one(docs, "Job", "admin")
    (container,) = containers(job)
    command = container.get("command", []) + container.get("args", [])
    assert command[0] == "beeldbel-create-admin", command
    # the image has it
    final = dockerfile_stages((ROOT / "Dockerfile").read_text())[-1]
    assert any(
        i.args.endswith("/usr/local/bin/beeldbel-create-admin")
        for i in final.all("COPY")
    )
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


def test_no_image_is_latest_or_untagged(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        for container in containers(doc):
            repository, _, tag = container["image"].rpartition(":")
            assert repository, container["image"]
            assert "/" not in tag, container["image"]
            assert tag != "latest", container["image"]
            if repository == "beeldbel":
                assert tag == PROJECT_VERSION, container["image"]


def test_every_pod_runs_restricted(docs: list[dict[str, Any]]) -> None:
    """What the namespace's restricted Pod Security level demands, and the
    Dockerfile's user for the Beeldbel image."""
    final = dockerfile_stages((ROOT / "Dockerfile").read_text())[-1]
    image_uid = int(final.all("USER")[-1].args.split(":")[0])
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        pod = doc["spec"]["template"]["spec"]
        assert not pod.get("hostNetwork")
        assert not pod.get("hostPID")
        assert pod["automountServiceAccountToken"] is False
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["seccompProfile"]["type"] == "RuntimeDefault"
        for container in containers(doc):
            own = container["securityContext"]
            assert own["allowPrivilegeEscalation"] is False
            assert own["capabilities"]["drop"] == ["ALL"]
            assert own["readOnlyRootFilesystem"] is True
            if container["image"].startswith("beeldbel:"):
                assert security["runAsUser"] == image_uid


def test_secrets_are_placeholders_only(docs: list[dict[str, Any]]) -> None:
    secrets = by_kind(docs, "Secret")
    assert secrets
    for name, secret in secrets.items():
        assert "data" not in secret, f"{name}: encoded values hide what they are"
        for key, value in secret["stringData"].items():
            assert "CHANGE_ME" in value, f"{name}/{key} holds a real-looking value"


def test_every_reference_resolves(docs: list[dict[str, Any]]) -> None:
    """Each Secret key and ConfigMap a pod uses is in the base, except the TLS
    certificates the operator provides (named in the README)."""
    secrets = by_kind(docs, "Secret")
    config_maps = by_kind(docs, "ConfigMap")
    provided = {"beeldbel-tls", "beeldbel-turn-tls"}
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        pod = doc["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, volume
            if "secret" in volume:
                assert volume["secret"]["secretName"] in provided | set(secrets)
        for container in containers(doc):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"], ref
    (ingress,) = by_kind(docs, "Ingress").values()
    for tls in ingress["spec"]["tls"]:
        assert tls["secretName"] in provided


def _environment(
    container: dict[str, Any], pod_name: str, secrets: dict[str, Any], real: bool
) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env", []):
        source = item.get("valueFrom", {})
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = secrets[ref["name"]]["stringData"][ref["key"]]
            env[item["name"]] = value.replace("CHANGE_ME", "x" * 40) if real else value
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod_name
        elif source.get("fieldRef", {}).get("fieldPath") == "status.podIP":
            env[item["name"]] = "10.0.0.7"
    return env


def _beeldbel_containers(
    docs: list[dict[str, Any]],
) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            name = doc["metadata"]["name"]
            pod = f"{name}-0" if doc["kind"] == "StatefulSet" else name
            found += [
                (pod, c) for c in containers(doc) if c["image"].startswith("beeldbel:")
            ]
    return found


def test_every_beeldbel_container_config_loads(
    docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The ConfigMap's TOML plus each container's variables (the Secret's
    placeholders given real-looking values) is a config Beeldbel starts with."""
    secrets = by_kind(docs, "Secret")
    addresses = by_kind(docs, "ConfigMap")["beeldbel-media-addresses"]["data"]
    for i, (pod, container) in enumerate(_beeldbel_containers(docs)):
        env = _environment(container, pod, secrets, real=True)
        for name in env:
            # an unknown BEELDBEL_* variable stops the start
            assert env_key(name), name
        if "mediaserver" in " ".join(container.get("args", [])):
            env["BEELDBEL_MEDIASERVER_ADVERTISED_ADDRESS"] = addresses[pod]
        folder = tmp_path / str(i)
        folder.mkdir()
        config = load_beeldbel_config(_config_text(docs), env, folder)
        assert config.server.public_url.startswith("https://")
        assert not config.tls.enabled
        if container["args"] == ["controlplane"]:
            assert config.redis.url.startswith("redis://")
            # TURN servers and credentials go out with each media token
            assert config.mediaserver.turn_urls
            assert config.mediaserver.turn_secret
        assert config.mediaserver.control_plane_url.startswith(
            "http://beeldbel-controlplane:"
        )


def test_placeholder_secrets_are_refused(
    docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Deployed by mistake, the placeholders stop the control plane."""
    secrets = by_kind(docs, "Secret")
    (container,) = containers(_one(docs, "Deployment", "controlplane"))
    env = _environment(container, "cp", secrets, real=False)
    with pytest.raises(ConfigError, match="secret"):
        load_beeldbel_config(_config_text(docs), env, tmp_path)


def _policies(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(by_kind(docs, "NetworkPolicy").values())


def test_network_policies_deny_by_default(docs: list[dict[str, Any]]) -> None:
    deny = [
        p
        for p in _policies(docs)
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert len(deny) == 1


def _allowed(
    docs: list[dict[str, Any]], labels: dict[str, str], direction: str
) -> list[dict[str, Any]]:
    rules = []
    for policy in _policies(docs):
        if _selects(policy["spec"]["podSelector"] or {"matchLabels": {}}, labels):
            rules += policy["spec"].get(direction, [])
    return rules


def _ports(rules: list[dict[str, Any]], protocol: str) -> set[int]:
    return {
        p["port"]
        for r in rules
        for p in r.get("ports", [])
        if p["protocol"] == protocol
    }


def test_network_policies_let_through_what_is_needed(
    docs: list[dict[str, Any]],
) -> None:
    config = _config(docs)
    cp = _pod_labels(_one(docs, "Deployment", "controlplane"))
    media = _pod_labels(_one(docs, "StatefulSet", "media"))
    coturn = _pod_labels(_one(docs, "Deployment", "coturn"))
    admin = _pod_labels(_one(docs, "Job", "admin"))
    # everyone resolves names
    for labels in (cp, media, coturn, admin):
        assert 53 in _ports(_allowed(docs, labels, "egress"), "UDP")
    # control plane: served on its port and its metrics port; reaches the
    # media API, PostgreSQL and Redis
    assert {config["server"]["port"], config["metrics"]["port"]} <= _ports(
        _allowed(docs, cp, "ingress"), "TCP"
    )
    assert {config["mediaserver"]["port"], 5432, 6379} <= _ports(
        _allowed(docs, cp, "egress"), "TCP"
    )
    # media: media from anywhere on its UDP port, signalling and API on its
    # port; heartbeats out to the control planes
    media_in = _allowed(docs, media, "ingress")
    (udp_rule,) = [
        r for r in media_in if config["mediaserver"]["udp_port"] in _ports([r], "UDP")
    ]
    assert "from" not in udp_rule, "citizens come from anywhere"
    assert config["mediaserver"]["port"] in _ports(media_in, "TCP")
    assert config["server"]["port"] in _ports(_allowed(docs, media, "egress"), "TCP")
    # coturn: TLS in from anywhere; relayed media out to the media port
    assert 5349 in _ports(_allowed(docs, coturn, "ingress"), "TCP")
    assert config["mediaserver"]["udp_port"] in _ports(
        _allowed(docs, coturn, "egress"), "UDP"
    )
    # the admin Job reaches PostgreSQL and nothing is let in
    assert 5432 in _ports(_allowed(docs, admin, "egress"), "TCP")
    assert not _allowed(docs, admin, "ingress")
