"""Readers for the deployment artefacts, for their tests: the Dockerfile and its
build context (.dockerignore), the compose file as ``docker compose`` would see
it (interpolated), the kustomize base as ``kubectl kustomize`` renders it, and
Beeldbel's config as a process in them would load it. Offline, no engine."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from beeldbel.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
KUSTOMIZE_DIR = DEPLOY / "kubernetes"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
#: what a listener inside a container or pod binds to
ANY_ADDRESS = "0.0.0.0"  # noqa: S104

# --- Dockerfile -----------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY ...
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def dockerfile_stages(text: str) -> list[Stage]:
    """The Dockerfile's build stages, each with its instructions (continuation
    lines joined, comments dropped, as the Dockerfile frontend reads them)."""
    stages: list[Stage] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, args = whole.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip(), start)
        if instruction.keyword == "FROM":
            parts = instruction.args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(parts[0], name, []))
        elif instruction.keyword == "ARG" and not stages:
            continue  # an ARG before the first FROM
        else:
            stages[-1].instructions.append(instruction)
    return stages


def exec_form(args: str) -> list[str]:
    """The JSON (exec) form of CMD, ENTRYPOINT or HEALTHCHECK ... CMD."""
    value = json.loads(args)
    assert isinstance(value, list), f"{args} is not the exec (JSON) form"
    return [str(v) for v in value]


def copy_sources(instruction: Instruction) -> tuple[list[str], str, dict[str, str]]:
    """``COPY [--flag=v ...] src... dest`` → sources, destination, flags."""
    words = instruction.args.split()
    flags = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    return words[:-1], words[-1], flags


# --- .dockerignore ----------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus ``**``) as a regex."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**/", i):
                out += "(?:.*/)?"
                i += 2
            elif pattern.startswith("**", i):
                out += ".*"
                i += 1
            else:
                out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            body = pattern[i + 1 : end]
            out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
            i = end
        elif c == "\\":
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


class DockerIgnore:
    """Which files of the build context ``docker build`` leaves out: the last
    pattern matching a path or one of its parent folders decides."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, str, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip().lstrip("/"))
            self.rules.append((keep, pattern, _glob_regex(pattern)))

    def excluded(self, path: str) -> bool:
        parts = path.strip("/").split("/")
        candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for keep, _, regex in self.rules:
            if any(regex.fullmatch(c) for c in candidates):
                result = not keep
        return result

    def excluded_whole(self, folder: str) -> bool:
        """Is ``folder`` left out with everything in it (no `!` pattern below)?"""
        prefix = folder.strip("/") + "/"
        return self.excluded(folder) and not any(
            keep and (pattern.startswith(prefix) or "*" in pattern)
            for keep, pattern, _ in self.rules
        )


def build_context(root: Path, ignore: DockerIgnore) -> set[str]:
    """The files (relative paths) ``docker build`` sends from ``root``."""
    files: set[str] = set()
    for folder, dirs, names in os.walk(root):
        rel = Path(folder).relative_to(root).as_posix()
        rel = "" if rel == "." else rel + "/"
        # a folder left out whole is not walked (.git, .venv, node_modules)
        dirs[:] = [d for d in dirs if not ignore.excluded_whole(rel + d)]
        files.update(rel + n for n in names if not ignore.excluded(rel + n))
    return files


# --- compose ------------------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable interpolation of every string in ``value``:
    ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$`` for ``$``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg")
        got = env.get(name, "")
        if op in (":?", "?") and not got:
            raise AssertionError(f"compose stops: {name} unset ({arg})")
        if op in (":-", "-") and not got:
            return str(arg)
        return got

    return _VARIABLE.sub(one, value)


def env_file(path: Path) -> dict[str, str]:
    """A compose env file: NAME=value lines, # comments."""
    values = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def compose_raw() -> dict[str, Any]:
    data = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def compose_model(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """compose.yaml as ``docker compose config`` sees it with .env.example's
    values (YAML anchors and merge keys are resolved by the YAML loader)."""
    if env is None:
        env = env_file(COMPOSE_DIR / ".env.example")
    model = interpolate(compose_raw(), env)
    assert isinstance(model, dict)
    return model


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {k: "" if v is None else str(v) for k, v in environment.items()}


# --- kustomize ----------------------------------------------------------------------

#: kinds without a namespace among those the base may use
CLUSTER_SCOPED = frozenset({"Namespace"})
#: what this renderer of a kustomization understands; anything more fails here,
#: rather than being silently skipped
KUSTOMIZATION_FIELDS = frozenset({"apiVersion", "kind", "namespace", "resources"})


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """The manifests of a kustomize base, as ``kubectl kustomize`` renders them
    for the fields this base uses (resources, namespace)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZATION_FIELDS
    assert not unknown, f"kustomization fields this renderer lacks: {unknown}"
    namespace = kustomization.get("namespace")
    rendered = []
    for resource in kustomization["resources"]:
        path = folder / resource
        if path.is_dir():
            docs = kustomize(path)
        else:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for doc in docs:
            if namespace and doc["kind"] not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = namespace
            rendered.append(doc)
    return rendered


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(doc: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every container (init ones too) of a workload's pod template."""
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod = spec["template"]["spec"]
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


# --- Beeldbel's config --------------------------------------------------------------


def env_key(name: str) -> tuple[str, str] | None:
    """``BEELDBEL_SECTION_KEY`` → (section, key), as beeldbel.config splits it."""
    if not name.startswith("BEELDBEL_") or name == "BEELDBEL_CONFIG":
        return None
    section, _, key = name[len("BEELDBEL_") :].lower().partition("_")
    return section, key


def load_beeldbel_config(
    toml_text: str, environ: Mapping[str, str], tmp_path: Path
) -> Config:
    """Load a config the way a process in the stack does: its file plus its
    ``BEELDBEL_*`` variables."""
    path = tmp_path / "beeldbel.toml"
    path.write_text(toml_text, encoding="utf-8")
    return load_config(path, environ)
