"""Browser-test fixtures: the real system as processes over HTTPS, and Debian Chromium.

Playwright drives /usr/bin/chromium; it never downloads a browser of its own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright

from beeldbel.cli.devca import ensure_dev_certificates
from tests.helpers import beeldbel_cli, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    # the fake camera gives 20 fps by default; EN 301 549 asks for at least 20
    "--use-fake-device-for-media-stream=fps=30",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HAVE_CHROMIUM = Path(CHROMIUM).exists()
AXE_SOURCE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
# SCREENSHOTS_DIR=DIR: every page state the browser tests check with axe is
# also photographed at phone and laptop sizes, for a person to look at
SCREENSHOTS = os.environ.get("SCREENSHOTS_DIR")
VIEWPORTS = ((390, 844), (844, 390), (1366, 768))
# elements past the viewport's right edge that no scroll container holds in
# (an absolutely positioned one escapes a container that is not positioned)
_TOO_WIDE = """(width) => {
  const held = (e) => {
    const free = ['absolute', 'fixed'].includes(getComputedStyle(e).position);
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      const style = getComputedStyle(a);
      if (style.overflowX !== 'visible' && (!free || style.position !== 'static')) {
        return true;
      }
    }
    return false;
  };
  return [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > width + 1 && !held(e))
    .slice(0, 5)
    .map((e) => `${e.tagName.toLowerCase()}.${e.className}`);
}"""


@dataclass
class LiveSystem:
    base_url: str
    db_url: str
    config_file: Path
    ca_file: Path
    process: subprocess.Popen[bytes]


async def wait_until_up(
    url: str, ca_file: Path, process: subprocess.Popen[bytes]
) -> None:
    """Poll until the server answers; fail early if the process died."""
    import ssl

    context = ssl.create_default_context(cafile=str(ca_file))
    async with aiohttp.ClientSession() as session:

        async def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}")
            try:
                async with session.get(url, ssl=context) as response:
                    return response.status < 500
            except aiohttp.ClientError:
                return False

        await wait_for(up, 30, f"the server at {url} to come up")


@pytest.fixture
async def live_system(tmp_path: Path) -> AsyncIterator[LiveSystem]:
    """The control plane as a real process, on HTTPS with a dev CA, SQLite in tmp."""
    certs = ensure_dev_certificates(tmp_path / "certs")
    port = free_port()
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'beeldbel.sqlite3'}"
    config_file = tmp_path / "beeldbel.toml"
    config_file.write_text(
        f"""
[server]
port = {port}
public_url = "https://127.0.0.1:{port}"
data_dir = "{tmp_path / "data"}"
[tls]
cert_file = "{certs.cert_file}"
key_file = "{certs.key_file}"
[database]
url = "{db_url}"
[metrics]
port = 0
[logging]
format = "json"
""",
        encoding="utf-8",
    )
    # migrate first, so tests can add staff accounts before the server starts
    code, out = await beeldbel_cli(config_file, "migrate")
    assert code == 0, f"beeldbel migrate failed: {out}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEELDBEL_")}
    log_file = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(  # noqa: S603, ASYNC220
        [sys.executable, "-m", "controlplane", "--config", str(config_file)],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    base = f"https://127.0.0.1:{port}"
    try:
        await wait_until_up(base + "/privacy", certs.ca_file, process)
        yield LiveSystem(base, db_url, config_file, certs.ca_file, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log_file.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


async def new_page(browser: Browser, **options: Any) -> Page:
    """A page in a fresh context that records CSP violations and page errors."""
    context = await browser.new_context(ignore_https_errors=True, **options)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    page.problems = problems  # type: ignore[attr-defined]
    return page


#: Records each browser notification the page raises in ``window.beeldbelNotes``
#: (the permission itself is granted by the context: ``permissions=[...]``).
RECORD_NOTIFICATIONS = """
window.beeldbelNotes = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) {
    super(title, options);
    window.beeldbelNotes.push(title);
  }
};
"""


async def notifying_page(browser: Browser) -> Page:
    """A page (as :func:`new_page`) allowed to show notifications, recording them."""
    # listing permissions replaces the defaults: camera and microphone stay
    allowed = ["notifications", "camera", "microphone"]
    page = await new_page(browser, permissions=allowed)
    await page.add_init_script(RECORD_NOTIFICATIONS)
    return page


async def notes(page: Page) -> list[str]:
    shown: list[str] = await page.evaluate("window.beeldbelNotes || []")
    return shown


async def assert_accessible(page: Page, what: str) -> None:
    """axe-core finds no WCAG 2.1 A/AA violation on the page as it is now, and
    at phone width the page does not scroll sideways (WCAG 1.4.10). With
    ``SCREENSHOTS_DIR`` each size of :data:`VIEWPORTS` is also photographed and
    checked by axe."""
    await _axe(page, what)
    own = page.viewport_size
    for width, height in VIEWPORTS if SCREENSHOTS else VIEWPORTS[:1]:
        await page.set_viewport_size({"width": width, "height": height})
        await _no_sideways_scroll(page, f"{what} at {width}x{height}", width)
        if SCREENSHOTS:
            await _photograph(page, what, Path(SCREENSHOTS), width, height)
    if own is not None:
        await page.set_viewport_size(own)


async def _no_sideways_scroll(page: Page, what: str, width: int) -> None:
    wide = await page.evaluate("document.documentElement.scrollWidth")
    if wide > width:
        culprits = await page.evaluate(_TOO_WIDE, width)
        raise AssertionError(f"{what} scrolls sideways ({wide}px): {culprits}")


async def _photograph(
    page: Page, what: str, folder: Path, width: int, height: int
) -> None:
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() else "-" for c in what.lower()).strip("-")
    await page.screenshot(path=folder / f"{name}-{width}x{height}.png")
    await _axe(page, f"{what} at {width}x{height}")


async def _axe(page: Page, what: str) -> None:
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        # evaluate() runs outside the page's CSP, so the policy stays strict
        await page.evaluate(AXE_SOURCE.read_text(encoding="utf-8"))
    result = await page.evaluate(
        """() => axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"""
    )
    violations = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:3])
        for v in result["violations"]
    ]
    assert not violations, f"axe on {what}:\n" + "\n".join(violations)
    problems = getattr(page, "problems", [])
    assert not problems, f"{what}: {problems}"
