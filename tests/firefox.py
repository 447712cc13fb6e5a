"""Debian's Firefox ESR for the tests, driven through its own Marionette server.

Each Firefox gets a fresh profile: a fake camera and microphone with no prompt,
ICE candidates on loopback, and every service that would reach out (updates,
telemetry, safe browsing, add-ons, DNS over HTTPS...) switched off. The origins a
test serves get a stored camera and microphone permission: in a loopback-only
network namespace Firefox gathers no candidate at all without one (its ICE
gathering never starts, although getUserMedia works by the prefs). Nothing is
downloaded: no geckodriver, marionette_driver talks to the Marionette server that
Firefox itself runs (``-marionette``). The client blocks, so each call runs in a
thread and the test's event loop (the servers the page talks to) keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from marionette_driver.marionette import Marionette

from tests.helpers import free_port, wait_for

FIREFOX = "/usr/bin/firefox-esr"
STARTUP_TIMEOUT = 30.0
# a schema version of permissions.sqlite (moz_perms as below) older than Firefox
# ESR 153's own (13): Firefox migrates the file up, adding its newer tables
PERMISSIONS_SCHEMA_VERSION = 12

PREFS: dict[str, bool | int | str] = {
    # fake camera and microphone, no prompt, media plays without a gesture
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    # host candidates on 127.0.0.1 (the namespace has nothing else), IPv4 only
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.no_host": False,
    "network.dns.disableIPv6": True,
    # no DNS over HTTPS, no proxy, no prefetching or speculative connections
    "network.trr.mode": 5,
    "network.proxy.type": 0,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    # no updates of Firefox, add-ons, system add-ons, search engines or plugins
    "app.update.enabled": False,
    "app.update.auto": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "extensions.systemAddon.update.url": "",
    "browser.search.update": False,
    "browser.region.network.url": "",
    "media.gmp-manager.url": "",
    "media.gmp-gmpopenh264.enabled": False,
    "media.gmp-gmpopenh264.autoupdate": False,
    "media.gmp-widevinecdm.enabled": False,
    "media.eme.enabled": False,
    # no telemetry, studies or health reports
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.firstRunURL": "",
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "",
    "app.normandy.enabled": False,
    "app.normandy.api_url": "",
    "app.shield.optoutstudies.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "browser.ping-centre.telemetry": False,
    "browser.discovery.enabled": False,
    "services.settings.server": "",
    "dom.push.enabled": False,
    "dom.push.connection.enabled": False,
    "geo.enabled": False,
    # no safe browsing lists
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.google.updateURL": "",
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    # a quiet start: no default-browser check, welcome page or new-tab content
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "about:blank",
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.newtabpage.activity-stream.feeds.topsites": False,
    "browser.newtabpage.activity-stream.feeds.section.topstories": False,
    "browser.topsites.contile.enabled": False,
    "toolkit.startup.max_resumed_crashes": -1,
    # the page's console in Firefox's output (the log a failing test shows)
    "devtools.console.stdout.content": True,
}


def write_profile(profile: Path, marionette_port: int, origins: Iterable[str]) -> None:
    """A fresh profile: ``PREFS``, Marionette on ``marionette_port``, and camera
    and microphone allowed for each of ``origins`` (e.g. ``http://127.0.0.1:8080``)."""
    profile.mkdir(parents=True)
    prefs = {**PREFS, "marionette.port": marionette_port}
    (profile / "user.js").write_text(
        "".join(
            f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()
        )
    )
    grant_media(profile, origins)


def grant_media(profile: Path, origins: Iterable[str]) -> None:
    """Store ``allow`` for camera and microphone in the profile's permissions."""
    now_ms = int(time.time() * 1000)
    with contextlib.closing(sqlite3.connect(profile / "permissions.sqlite")) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS moz_perms (id INTEGER PRIMARY KEY, origin TEXT,"
            " type TEXT, permission INTEGER, expireType INTEGER, expireTime INTEGER,"
            " modificationTime INTEGER)"
        )
        db.executemany(
            "INSERT INTO moz_perms (origin, type, permission, expireType, expireTime,"
            " modificationTime) VALUES (?, ?, 1, 0, 0, ?)",
            [(o, kind, now_ms) for o in origins for kind in ("camera", "microphone")],
        )
        db.execute(f"PRAGMA user_version = {PERMISSIONS_SCHEMA_VERSION}")
        db.commit()


class Firefox:
    """One running Firefox and its Marionette session."""

    def __init__(
        self, process: asyncio.subprocess.Process, port: int, log: Path
    ) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.marionette = Marionette(host="127.0.0.1", port=port)

    async def start_session(self) -> None:
        await asyncio.to_thread(self.marionette.start_session, timeout=5)

    async def goto(self, url: str) -> None:
        await asyncio.to_thread(self.marionette.navigate, url)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if a promise),
        with the page's own globals (no sandbox)."""
        return await asyncio.to_thread(
            self.marionette.execute_script,
            f"return {expression};",
            sandbox=None,
            new_sandbox=False,
        )

    async def wait_for(self, expression: str, timeout: float) -> Any:  # noqa: ASYNC109
        """Poll a JavaScript expression until it is truthy; its value."""
        seen: list[Any] = [None]

        async def truthy() -> Any:
            seen[0] = await self.evaluate(expression)
            return seen[0]

        await wait_for(truthy, timeout, expression, interval=0.1)
        return seen[0]

    def output(self) -> str:
        """The end of Firefox's own output, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:]

    async def close(self) -> None:
        if self.marionette.session is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.marionette.delete_session)
        self.marionette.cleanup_ran = True
        # Firefox ends its content processes itself on SIGTERM; whatever of its
        # process group outlives it is killed
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if running_in_group(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            # a killed process ends when it next runs, not at once: on a busy
            # machine a content process was still there just after the kill
            await wait_for(
                lambda: not running_in_group(self.process.pid),
                10,
                "Firefox's processes to end",
            )


def running_in_group(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` still running (not zombies)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # after "pid (name)": state, ppid, process group, ...
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.asynccontextmanager
async def firefox(directory: Path, origins: Iterable[str]) -> AsyncIterator[Firefox]:
    """Firefox ESR, headless, with a fresh profile in ``directory``, its Marionette
    session started; quit (with its content processes) on the way out."""
    port = free_port()
    profile = directory / "profile"
    write_profile(profile, port, origins)
    log = directory / "firefox.log"
    command = [
        FIREFOX,
        "-marionette",
        "-headless",
        "-no-remote",
        "-profile",
        str(profile),
    ]
    env = {**os.environ, "HOME": str(directory), "MOZ_CRASHREPORTER_DISABLE": "1"}
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    browser = Firefox(process, port, log)
    try:
        await wait_for(
            lambda: process.returncode is not None or _accepts(port),
            STARTUP_TIMEOUT,
            lambda: f"Firefox's Marionette port {port}\n{browser.output()}",
        )
        assert process.returncode is None, f"Firefox exited:\n{browser.output()}"
        await browser.start_session()
        yield browser
    finally:
        await browser.close()
