"""What a citizen sees on a bad network (issue 14), from Chromium's own getStats:
the conditions, the sampling once a second on both pages, the verdicts against
the issue's targets and the table. Used by ``bench/network_quality.py`` (the full
figures) and ``tests/mediaserver/test_network_quality.py`` (a short version).

The relay is in the citizen's leg: *uplink* is citizen → far end, *downlink* far
end → citizen. Each condition starts after a warm-up on a clean link, at t = 0.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from tests.browser_call import Call, p2p_call, sfu_call
from tests.helpers import wait_for
from tests.impairment import Impairment

#: A queue of 64 kB: 1.3 s at 400 kbit/s, a bufferbloat-prone access link; a
#: sender that fills it sees the RTT grow far beyond the targets.
QUEUE_BYTES = 64_000


@dataclass(frozen=True, slots=True)
class Change:
    """At ``at`` seconds, the citizen's leg becomes this."""

    at: float
    uplink: Impairment = field(default_factory=Impairment)
    downlink: Impairment = field(default_factory=Impairment)


@dataclass(frozen=True, slots=True)
class Limits:
    """The issue's targets; the short test loosens them."""

    longest_freeze: float = 1.0
    concealed: float = 0.03
    #: A capped sender's rate must be below the cap times ``cap_margin`` from here on.
    settle: float = 10.0
    cap_margin: float = 1.0
    rtt: float = 0.3
    fps: float = 10.0
    follow: float = 15.0


@dataclass(frozen=True, slots=True)
class Condition:
    name: str
    description: str
    changes: tuple[Change, ...]
    seconds: float
    #: Who sends into the impaired direction: "citizen", "employee" or "" (both).
    sender: str
    #: The cap the sender must adapt to (0: none).
    cap: int = 0


def _cap(rate: int) -> Impairment:
    return Impairment(rate_bps=rate, queue_bytes=QUEUE_BYTES)


def _step(
    name: str,
    direction: str,
    sender: str,
    times: tuple[float, float, float] = (20, 40, 60),
) -> Condition:
    """The citizen's ``direction`` at 2 Mbit/s, 300 kbit/s from ``times[0]`` to
    ``times[1]``, the run ending at ``times[2]``."""
    down, up, end = times

    def at(t: float, rate: int) -> Change:
        return Change(t, **{direction: _cap(rate)})

    return Condition(
        name,
        f"citizen's {direction} 2 Mbit/s, 300 kbit/s at {down:g} s,"
        f" 2 Mbit/s at {up:g} s",
        (at(-10, 2_000_000), at(0, 2_000_000), at(down, 300_000), at(up, 2_000_000)),
        end,
        sender=sender,
        cap=300_000,
    )


CONDITIONS = {
    c.name: c
    for c in (
        Condition(
            "loss3",
            "3 % random loss, both directions of the citizen's leg",
            (Change(0, Impairment(loss=0.03), Impairment(loss=0.03)),),
            60,
            sender="",
        ),
        Condition(
            "uplink400",
            "citizen's uplink capped at 400 kbit/s",
            (Change(0, uplink=_cap(400_000)),),
            30,
            sender="citizen",
            cap=400_000,
        ),
        Condition(
            "downlink400",
            "citizen's downlink capped at 400 kbit/s",
            (Change(0, downlink=_cap(400_000)),),
            30,
            sender="employee",
            cap=400_000,
        ),
        _step("step", "uplink", sender="citizen"),
        _step("downstep", "downlink", sender="employee"),
    )
}
#: The short tests' steps: 20 s at the low rate, as in the issue, and 20 s after.
SHORT_STEP = _step("step", "uplink", sender="citizen", times=(5, 25, 45))
SHORT_DOWNSTEP = _step("downstep", "downlink", sender="employee", times=(5, 25, 45))
STEPS = {"step", "downstep"}


@dataclass(frozen=True, slots=True)
class Second:
    """One page over one second: rates from the counters' deltas."""

    t: float
    send_kbps: float
    video_kbps: float
    out_fps: float
    limitation: str
    #: The height of the video it sends: the encoder's answer to a low rate.
    height: int
    in_fps: float
    freezes: int
    #: Seconds of freeze that ended in this second (one freeze when ``freezes`` is 1).
    frozen: float
    concealed: int
    samples: int
    rtt_ms: float | None
    available_kbps: float | None
    remote: int


def _second(t: float, before: dict[str, Any], now: dict[str, Any], dt: float) -> Second:
    def rate(key: str) -> float:
        return float(now[key] - before[key]) / dt

    return Second(
        t=t,
        send_kbps=rate("sent") * 8 / 1000,
        video_kbps=rate("videoSent") * 8 / 1000,
        out_fps=rate("framesEncoded"),
        limitation=str(now["limitation"]),
        height=int(now["height"]),
        in_fps=rate("framesDecoded"),
        freezes=int(now["freezeCount"] - before["freezeCount"]),
        frozen=float(now["freezesDuration"] - before["freezesDuration"]),
        concealed=int(now["concealed"] - before["concealed"]),
        samples=int(now["samples"] - before["samples"]),
        rtt_ms=None if now["rtt"] is None else now["rtt"] * 1000,
        available_kbps=None if now["available"] is None else now["available"] / 1000,
        remote=int(now["remote"]),
    )


@dataclass(slots=True)
class Run:
    """A condition as both pages saw it, second by second."""

    condition: Condition
    path: str
    employee: list[Second] = field(default_factory=list)
    citizen: list[Second] = field(default_factory=list)
    #: The loopback port each page's media went to: (employee, citizen), and
    #: where it should go (the citizen's to the relay, the employee's not).
    legs: tuple[int, int] = (0, 0)
    expected_legs: tuple[int, int] = (0, 0)


CALLS: dict[str, Callable[[bool], AbstractAsyncContextManager[Call]]] = {
    "sfu": sfu_call,
    "p2p": p2p_call,
}


async def measure(
    condition: Condition,
    path: str,
    warmup: float = 10,
    seconds: float | None = None,
    busy_video: bool = True,
) -> Run:
    """Run ``condition`` on a fresh call over ``path`` ("sfu" or "p2p"); the
    cameras send the busy clip, or with ``busy_video`` false Chromium's own
    pattern (~500 kbit/s)."""
    run = Run(condition, path)
    async with CALLS[path](busy_video) as call:
        run.expected_legs = (call.employee_remote, call.citizen_remote)
        if condition.cap and condition.sender:
            await _sending_above(call, condition.sender, condition.cap)
        async for employee, citizen in _seconds(call, condition, warmup, seconds):
            run.employee.append(employee)
            run.citizen.append(citizen)
        run.legs = await call.legs()
    return run


async def _sending_above(call: Call, sender: str, bps: int) -> None:
    """Wait until ``sender`` sends above ``bps`` (its rate over the last
    ``SMOOTHING`` seconds, as the verdicts judge), so that the cap meets a sender
    that wants more: its estimate starts low and climbs at a pace that depends on
    how busy the machine is (on a loaded CI run 8 s were not enough, and one
    second above ``bps`` was followed by seconds below it)."""
    page = call.citizen if sender == "citizen" else call.employee
    loop = asyncio.get_running_loop()
    samples = collections.deque([((await call.sample(page))["sent"], loop.time())])

    async def above() -> bool:
        samples.append(((await call.sample(page))["sent"], loop.time()))
        if len(samples) <= SMOOTHING:
            return False
        (first, start), (last, end) = samples[0], samples[-1]
        samples.popleft()
        return bool((last - first) * 8 / max(end - start, 1e-3) > bps)

    await wait_for(above, 40, f"the {sender} sends above {bps} bit/s", interval=1.0)


async def _seconds(
    call: Call, condition: Condition, warmup: float, seconds: float | None
) -> AsyncIterator[tuple[Second, Second]]:
    """Sample both pages once a second from -``warmup`` to the end, applying the
    condition's changes when due."""
    loop = asyncio.get_running_loop()
    pages = (call.employee, call.citizen)
    changes = sorted(condition.changes, key=lambda c: c.at)
    end = condition.seconds if seconds is None else seconds
    before = [await call.sample(p) for p in pages]
    taken = start = loop.time()
    for t in range(-round(warmup), round(end)):
        while changes and changes[0].at <= t:
            change = changes.pop(0)
            call.relay.uplink.impairment = dataclasses.replace(change.uplink)
            call.relay.downlink.impairment = dataclasses.replace(change.downlink)
        # the sampling interval of the measurement, on a fixed grid
        await asyncio.sleep(max(0.0, start + t + warmup + 1 - loop.time()))
        now = list(await asyncio.gather(*(call.sample(p) for p in pages)))
        dt, taken = loop.time() - taken, loop.time()
        employee, citizen = (
            _second(t + 1, b, n, dt) for b, n in zip(before, now, strict=True)
        )
        before = now
        yield employee, citizen


@dataclass(frozen=True, slots=True)
class Verdict:
    what: str
    measured: str
    target: str
    passed: bool


def _after(seconds: Sequence[Second], start: float, end: float = 1e9) -> list[Second]:
    return [s for s in seconds if start < s.t <= end]


def _longest_freeze(seconds: Sequence[Second]) -> float:
    """The longest freeze: what one ended freeze lasted (all of a second's freeze
    time when more than one ended in it: an upper bound), or a run of seconds
    with no frame decoded (a freeze not yet over when the run ends)."""
    ended = max((s.frozen for s in seconds if s.freezes), default=0.0)
    run = stalled = 0
    for second in seconds:
        run = run + 1 if second.in_fps == 0 else 0
        stalled = max(stalled, run)
    return max(ended, float(stalled))


def _concealed(seconds: Sequence[Second]) -> float:
    samples = sum(s.samples for s in seconds)
    return sum(s.concealed for s in seconds) / samples if samples else 1.0


def _fps(seconds: Sequence[Second]) -> float:
    return sum(s.in_fps for s in seconds) / len(seconds) if seconds else 0.0


def _max_rtt(seconds: Sequence[Second]) -> float:
    return max((s.rtt_ms or 0.0 for s in seconds), default=0.0)


#: A sender's rate is judged by its mean over this many seconds: a bandwidth
#: estimator probes above a link's rate for a moment (the queue takes it), which
#: is not failing to settle.
SMOOTHING = 3


def _smoothed(seconds: Sequence[Second]) -> list[tuple[float, float]]:
    """(t, send kbit/s averaged over the ``SMOOTHING`` seconds up to t)."""
    rates = [s.send_kbps for s in seconds]
    return [
        (s.t, sum(rates[max(0, i + 1 - SMOOTHING) : i + 1]) / min(i + 1, SMOOTHING))
        for i, s in enumerate(seconds)
    ]


def _settled(
    seconds: Sequence[Second], ok: Callable[[float], bool], start: float
) -> float:
    """Seconds after ``start`` from which the smoothed send rate is ``ok`` for
    good (inf: not at the end)."""
    rates = [(t, kbps) for t, kbps in _smoothed(seconds) if t > start]
    failing = [t for t, kbps in rates if not ok(kbps)]
    if failing and failing[-1] == rates[-1][0]:
        return float("inf")
    return max([start, *failing]) - start


def _after_text(seconds: float) -> str:
    return "not by the end" if seconds == float("inf") else f"after {seconds:.0f} s"


def _mean_send(seconds: Sequence[Second]) -> float:
    return sum(s.send_kbps for s in seconds) / len(seconds) if seconds else 0.0


def _loss_verdicts(run: Run, limits: Limits) -> list[Verdict]:
    verdicts = []
    for who, seen in (("employee", run.employee), ("citizen", run.citizen)):
        during = _after(seen, 0)
        freeze = _longest_freeze(during)
        freezes = sum(s.freezes for s in during)
        verdicts.append(
            Verdict(
                f"{who} sees no video freeze > {limits.longest_freeze:g} s",
                f"{freezes} freezes, longest ≤ {freeze:.2f} s",
                f"≤ {limits.longest_freeze:g} s",
                freeze <= limits.longest_freeze,
            )
        )
        concealed = _concealed(during)
        verdicts.append(
            Verdict(
                f"{who} hears concealed audio",
                f"{concealed:.2%}",
                f"< {limits.concealed:.0%}",
                concealed < limits.concealed,
            )
        )
    return verdicts


def _cap_verdicts(run: Run, limits: Limits) -> list[Verdict]:
    condition = run.condition
    sender, receiver = (
        (run.citizen, run.employee)
        if condition.sender == "citizen"
        else (run.employee, run.citizen)
    )
    cap = condition.cap * limits.cap_margin / 1000
    before = _mean_send(_after(sender, -1e9, 0))
    settle = _settled(sender, lambda kbps: kbps <= cap, 0)
    later = _after(run.citizen, limits.settle)
    rtt, fps = _max_rtt(later), _fps(_after(receiver, limits.settle))
    return [
        Verdict(
            f"{condition.sender} sent above the cap before it",
            f"{before:.0f} kbit/s",
            f"> {condition.cap / 1000:.0f} kbit/s",
            before > condition.cap / 1000,
        ),
        Verdict(
            f"{condition.sender}'s send rate ({SMOOTHING} s mean) settles below"
            f" {cap:.0f} kbit/s",
            _after_text(settle),
            f"≤ {limits.settle:g} s",
            settle <= limits.settle,
        ),
        Verdict(
            f"citizen's RTT after {limits.settle:g} s",
            f"max {rtt:.0f} ms",
            f"< {limits.rtt * 1000:.0f} ms",
            0 < rtt < limits.rtt * 1000,
        ),
        Verdict(
            f"the other page decodes after {limits.settle:g} s",
            f"{fps:.1f} fps",
            f"≥ {limits.fps:g} fps",
            fps >= limits.fps,
        ),
    ]


def _step_verdicts(run: Run, limits: Limits) -> list[Verdict]:
    sender = run.condition.sender
    sent = run.citizen if sender == "citizen" else run.employee
    # the last two changes: the fall and the climb back
    fall, climb = (change.at for change in run.condition.changes[-2:])
    before = _mean_send(_after(sent, fall - 5, fall))
    low = run.condition.cap / 1000
    down = _settled(_after(sent, -1e9, climb), lambda kbps: kbps <= low, fall)
    up = _settled(sent, lambda kbps: kbps >= 0.8 * before, climb)
    return [
        Verdict(
            f"{sender}'s send rate falls below {low:.0f} kbit/s",
            f"{_after_text(down)} (from {before:.0f} kbit/s)",
            f"≤ {limits.follow:g} s, from above {low:.0f}",
            # a sender already under the low rate shows nothing
            before > low and down <= limits.follow,
        ),
        Verdict(
            f"and comes back to 80 % of {before:.0f} kbit/s",
            _after_text(up),
            f"≤ {limits.follow:g} s",
            up <= limits.follow,
        ),
    ]


def verdicts(run: Run, limits: Limits = Limits()) -> list[Verdict]:
    """The condition's targets, and that only the citizen's leg had the relay."""
    judge = (
        _step_verdicts
        if run.condition.name in STEPS
        else _loss_verdicts
        if run.condition.name == "loss3"
        else _cap_verdicts
    )
    legs = Verdict(
        "only the citizen's leg goes through the relay",
        f"ports: employee → {run.legs[0]}, citizen → {run.legs[1]}",
        f"{run.expected_legs[0]}, {run.expected_legs[1]}",
        run.legs == run.expected_legs,
    )
    return [legs, *judge(run, limits)]


def _cell(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _limit(second: Second) -> str:
    """What limits a page's video, and the height it sends at."""
    return f"{second.limitation or '-'} {second.height}p"


def table(run: Run, limits: Limits = Limits()) -> str:
    """The time series and the verdicts of one run, as Markdown."""
    condition = run.condition
    lines = [
        f"### {condition.name} via {run.path}: {condition.description}",
        "",
        "| t s | cit. send kbit/s | cit. video kbit/s | cit. limit, height"
        " | emp. send kbit/s | emp. limit, height | fps seen by emp./cit."
        " | freezes emp./cit."
        " | concealed % emp./cit. | RTT ms emp./cit. | avail. kbit/s emp./cit. |",
        "|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for e, c in zip(run.employee, run.citizen, strict=True):
        concealed = [100 * s.concealed / s.samples if s.samples else 0 for s in (e, c)]
        lines.append(
            f"| {c.t:.0f} | {c.send_kbps:.0f} | {c.video_kbps:.0f} | {_limit(c)}"
            f" | {e.send_kbps:.0f} | {_limit(e)} | {e.in_fps:.0f}/{c.in_fps:.0f}"
            f" | {e.freezes}/{c.freezes} | {concealed[0]:.1f}/{concealed[1]:.1f}"
            f" | {_cell(e.rtt_ms)}/{_cell(c.rtt_ms)}"
            f" | {_cell(e.available_kbps)}/{_cell(c.available_kbps)} |"
        )
    lines += ["", "| target | measured | limit | |", "|---|---|---|---|"]
    for v in verdicts(run, limits):
        result = "PASS" if v.passed else "FAIL"
        lines.append(f"| {v.what} | {v.measured} | {v.target} | {result} |")
    return "\n".join(lines)
