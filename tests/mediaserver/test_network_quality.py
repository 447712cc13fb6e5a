"""What a citizen sees on a bad network, short (issue 14): two Chromium pages
call through the real SFU, the citizen's leg through the impairment relay, and
Chromium's own getStats is judged against the issue's targets, loosened for a
20-second run on a shared machine. The full figures: bench/network_quality.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page

from tests.mediaserver.sfu_page import SCRIPTS, chromium
from tests.network_quality import (
    CONDITIONS,
    SHORT_DOWNSTEP,
    SHORT_STEP,
    Limits,
    Run,
    measure,
    table,
    verdicts,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: 20 s under the condition; a capped sender must be below 1.25 times the cap
#: (500 kbit/s for 400) in the last 5 s. A freeze may last 1.5 s: at 3 % loss
#: the SFU at 4c81582 and 39d594a froze 0.6-1.1 s now and then (the issue's 1 s
#: is judged over 60 s by the bench); the SFU that froze 3 s at a time (79bb9a3)
#: still fails. After a dip the rate must be back within 20 s: Chrome's estimate
#: alone climbs ~8 % a second, and its encoder stayed at 240p without the page's
#: help (web/static/js/sharpness.js).
SHORT = Limits(
    longest_freeze=1.5,
    concealed=0.05,
    settle=15,
    cap_margin=1.25,
    rtt=0.5,
    fps=8,
    follow=20,
)


def assert_targets_met(run: Run) -> None:
    print(table(run, SHORT))
    failed = [v.what for v in verdicts(run, SHORT) if not v.passed]
    assert not failed, f"{failed}\n{table(run, SHORT)}"


async def test_three_percent_loss_freezes_no_video_and_conceals_little_audio():
    """Chromium's own fake camera (~500 kbit/s): a modest stream, as from a phone."""
    run = await measure(
        CONDITIONS["loss3"], "sfu", warmup=5, seconds=20, busy_video=False
    )
    assert_targets_met(run)


async def test_citizens_send_rate_settles_below_a_capped_uplink():
    """The busy clip (~1.5 Mbit/s): the cap is well below what the camera wants."""
    run = await measure(CONDITIONS["uplink400"], "sfu", warmup=8, seconds=20)
    assert_targets_met(run)


async def test_citizens_video_comes_back_after_a_dip():
    """The busy clip, the citizen's uplink 2 Mbit/s, 300 kbit/s for 20 s, and 2
    Mbit/s again: Chrome's encoder steps down to 360p or 240p at the low rate and
    kept that long after the link came back. The page clears that once the
    estimate has doubled, and the larger picture makes Chrome probe the link."""
    run = await measure(SHORT_STEP, "sfu", warmup=5)
    assert_targets_met(run)


async def test_employees_video_comes_back_after_a_dip_in_the_citizens_downlink():
    """The same dip on the citizen's downlink: the SFU's own estimate of it
    (mediaserver/estimator.py) follows the link down, and its probes find the
    link again; the citizen's own estimate (REMB) stayed at ~250 kbit/s for
    18 s after the link came back."""
    run = await measure(SHORT_DOWNSTEP, "sfu", warmup=5)
    assert_targets_met(run)


@asynccontextmanager
async def scripts_page(aiohttp_server: Any) -> AsyncIterator[Page]:
    """A Chromium page on a server of web/static/js, for importing a module."""
    app = web.Application()
    app.router.add_static("/js", SCRIPTS)
    server = await aiohttp_server(app)
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(str(server.make_url("/js/sharpness.js")))
        yield page


async def test_the_resolution_is_reset_only_when_the_link_has_clearly_recovered(
    aiohttp_server: Any,
) -> None:
    """web/static/js/sharpness.js's decision, in Chromium, sample by sample."""
    async with scripts_page(aiohttp_server) as page:
        decisions = await page.evaluate(
            """async () => {
              const m = await import('/js/sharpness.js');
              const run = (samples) => {
                const watch = new m.SharpnessWatch();
                return samples.map(([limited, available, at]) =>
                  watch.update({limited, available, at}));
              };
              return [
                run([
                  [false, 1000e3, 0],     // the call's first sample
                  [true, 300e3, 20000],   // held back: the lowest is 300k
                  [true, 590e3, 21000],   // under twice the lowest
                  [true, 600e3, 22000],   // twice, once
                  [true, 620e3, 23000],   // twice in a row, but held 3 s only
                  [true, 630e3, 25000],   // held 5 s: reset
                  [false, 700e3, 26000],  // not held back: starts anew
                  [true, 250e3, 27000],
                  [true, 500e3, 33000],
                  [true, 520e3, 34000],   // again, but within 10 s of the last
                  [true, 530e3, 35000],   // 10 s later: reset
                  [true, null, 36000],    // no estimate: nothing
                ]),
                run([  // the start's ramp: Chrome's own probes decide
                  [true, 300e3, 0],
                  [true, 700e3, 6000],
                  [true, 800e3, 7000],
                  [true, 900e3, 15000],   // 15 s into the call: reset
                ]),
              ];
            }"""
        )
    assert decisions == [
        [
            False,
            False,
            False,
            False,
            False,
            True,
            False,
            False,
            False,
            False,
            True,
            False,
        ],
        [False, False, False, True],
    ]


async def test_a_resolution_reset_leaves_the_senders_preference_as_it_was(
    aiohttp_server: Any,
) -> None:
    """resetResolution switches to or from ``balanced`` and back: a sender with
    no preference set (Chrome's camera default) and one set to ``balanced`` keep
    theirs."""
    async with scripts_page(aiohttp_server) as page:
        preferences = await page.evaluate(
            """async () => {
              const m = await import('/js/sharpness.js');
              const pc = new RTCPeerConnection();
              const canvas = document.createElement('canvas');
              const track = canvas.captureStream(10).getVideoTracks()[0];
              const sender = pc.addTrack(track);
              const seen = [];
              await m.resetResolution(sender);
              seen.push(String(sender.getParameters().degradationPreference));
              const set = sender.getParameters();
              set.degradationPreference = 'balanced';
              await sender.setParameters(set);
              await m.resetResolution(sender);
              seen.push(String(sender.getParameters().degradationPreference));
              pc.close();
              return seen;
            }"""
        )
    assert preferences == ["undefined", "balanced"]
