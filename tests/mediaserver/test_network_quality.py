"""What a citizen sees on a bad network, short (issue 14): two Chromium pages
call through the real SFU, the citizen's leg through the impairment relay, and
Chromium's own getStats is judged against the issue's targets, loosened for a
20-second run on a shared machine. The full figures: bench/network_quality.py."""

from __future__ import annotations

import pytest

from tests.network_quality import CONDITIONS, Limits, Run, measure, table, verdicts

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: 20 s under the condition; a capped sender must be below 1.25 times the cap
#: (500 kbit/s for 400) in the last 5 s. A freeze may last 1.5 s: at 3 % loss
#: the SFU at 4c81582 and 39d594a froze 0.6-1.1 s now and then (the issue's 1 s
#: is judged over 60 s by the bench); the SFU that froze 3 s at a time (79bb9a3)
#: still fails.
SHORT = Limits(
    longest_freeze=1.5, concealed=0.05, settle=15, cap_margin=1.25, rtt=0.5, fps=8
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
