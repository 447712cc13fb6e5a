"""What Chromium does with a call's media through the real SFU when the
citizen's uplink loses packets: it numbers its packets and hears back about
them (transport-cc), protects its audio with Opus in-band FEC, repairs video by
NACK and RTX, and sends almost nothing while the microphone is silent (DTX).

The SFU's own counters show what arrived; the citizen's getStats shows what its
browser sent.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.browser_call import Call, sfu_call
from tests.helpers import wait_for
from tests.impairment import Impairment

pytestmark = pytest.mark.browser

OUTBOUND = """async (pc) => {
  const found = {};
  (await pc.getStats()).forEach((r) => {
    if (r.type === 'outbound-rtp') found[r.kind] = r;
  });
  return found;
}"""


async def sent(call: Call) -> dict[str, Any]:
    """The citizen's outbound-rtp reports, by kind."""
    pc = await call.citizen.evaluate_handle(call.pc)
    result: dict[str, Any] = await call.citizen.evaluate(OUTBOUND, pc)
    return result


async def microphone(call: Call, *, on: bool) -> None:
    """Mute or unmute the citizen's microphone as the call page does."""
    await call.citizen.evaluate(
        """([pc, on]) => {
          for (const sender of pc.getSenders()) {
            const track = sender.track;
            if (track && track.kind === 'audio') track.enabled = on;
          }
        }""",
        [await call.citizen.evaluate_handle(call.pc), on],
    )


async def test_chromium_protects_and_repairs_its_media_on_a_lossy_uplink():
    async with sfu_call(busy_video=False) as call:
        sfu = call.sfu
        assert sfu is not None
        await wait_for(
            lambda: sfu.transport_feedback >= 20, 10, "transport-cc feedback goes out"
        )

        # DTX: a muted microphone sends silence, which takes almost no packets
        await microphone(call, on=False)
        before, start = (await sent(call))["audio"]["packetsSent"], time.monotonic()
        await wait_for(lambda: time.monotonic() - start >= 3, 5, "three seconds pass")
        after = (await sent(call))["audio"]["packetsSent"]
        rate = (after - before) / (time.monotonic() - start)
        assert rate < 15, f"{rate:.0f} audio packets/s while muted: no DTX"
        await microphone(call, on=True)

        fec = sfu.opus_fec
        call.relay.uplink.impairment = Impairment(loss=0.03)
        await wait_for(
            lambda: sfu.opus_fec >= fec + 20, 20, "Chromium adds Opus in-band FEC"
        )

        async def repaired() -> bool:
            video = (await sent(call))["video"]
            return bool(
                video.get("nackCount", 0) > 0
                and video.get("retransmittedPacketsSent", 0) > 0
            )

        await wait_for(repaired, 15, "the SFU's NACKs are answered with RTX")
