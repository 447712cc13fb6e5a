"""Beeldbel as a real distribution: a wheel built with ``python -m build`` and a
plain ``pip install .`` both serve the citizen form with its CSS and JS from a
directory outside the repository, so templates, static files, translations and
migrations must travel as package data.

The suite runs in a network namespace without a way out, so nothing is fetched:
the fresh venv gets Beeldbel from the wheel (or the source tree) and borrows the
already installed third-party dependencies of the test venv through a ``.pth``
line. That line adds a directory only; its ``.pth`` files (among them the
editable install of the checkout) are not run, so the checkout stays invisible.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import wait_for
from tests.one_machine import beeldbel_run, run_config

ROOT = Path(__file__).resolve().parents[2]
# what a build needs from the checkout; everything else (venv, caches) stays out
_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "node_modules",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    "*.so",
    "var",
    "tests",
    "bench",
)


def _run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(  # noqa: S603
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _fresh_venv(where: Path) -> Path:
    """A venv without our packages; third-party dependencies borrowed (see top)."""
    _run(sys.executable, "-m", "venv", "--without-pip", where, cwd=where.parent)
    python = where / "bin" / "python"
    site = Path(
        _run(
            python,
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            cwd=where,
        ).strip()
    )
    (site / "borrowed_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )
    return python


def _install(how: str, tmp_path: Path) -> Path:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=_IGNORE)
    python = _fresh_venv(tmp_path / "venv")
    pip = (python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index")
    if how == "wheel":
        dist = tmp_path / "dist"
        _run(
            python,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            dist,
            source,
            cwd=tmp_path,
        )
        (wheel,) = dist.glob("beeldbel-*.whl")
        _run(*pip, wheel, cwd=tmp_path)
    else:
        _run(*pip, "--no-build-isolation", source, cwd=tmp_path)
    shutil.rmtree(source)  # nothing may be served from the copy it was built from
    return python


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["wheel", "pip install ."])
async def test_installed_distribution_serves_the_form_with_its_css_and_js(
    tmp_path, how
):
    python = _install(how, tmp_path)
    where = _run(
        python,
        "-c",
        "import beeldbel.assets, controlplane, mediaserver._fastpath as f;"
        "print(beeldbel.assets.WEB); print(controlplane.__file__); print(f.__file__)",
        cwd=tmp_path,
    ).split()
    venv = str(tmp_path / "venv")
    assert all(path.startswith(venv) for path in where), where
    assert (Path(where[0]) / "templates" / "base.html").is_file()

    config, port, _media_port = run_config(tmp_path)
    command = tmp_path / "venv" / "bin" / "beeldbel"
    base = f"https://127.0.0.1:{port}"
    async with (
        beeldbel_run(command, config, tmp_path) as started,
        aiohttp.ClientSession() as session,
    ):
        pages: list[str] = []

        async def form() -> bool:
            try:
                async with session.get(f"{base}/", ssl=started.tls) as response:
                    assert response.status == 200, await response.text()
                    pages.append(await response.text())
                    return True
            except aiohttp.ClientConnectionError:
                return False

        await wait_for(form, 30, "the installed control plane to answer")
        page = pages[-1]
        assert 'name="phone"' in page
        assets = re.findall(r'(?:href|src)="(/static/[^"]+\.(?:css|js)[^"]*)"', page)
        assert any(".css" in a for a in assets), page
        assert any(".js" in a for a in assets), page
        for asset in assets:
            async with session.get(base + asset, ssl=started.tls) as response:
                assert response.status == 200, asset
                kind = "text/css" if ".css" in asset else "javascript"
                assert kind in response.headers["Content-Type"], asset
                assert len(await response.read()) > 100, asset
