"""A national rollout on paper: placement and failover of media nodes, in process.

25 regional desks with 600 agents between them take video calls that ramp up to
a peak of about 500 at once, on 8 media nodes that send heartbeats. At the peak
one node dies. The simulation runs the control plane's own code on a real
database (SQLite in a temporary directory by default; ``--db-url`` for
PostgreSQL): placement (:class:`~controlplane.calls.placement.MediaNodes`, with
node clients that make no media), heartbeats, the sweep that marks the silent
node down, and the database writes of ending each lost call. Time is a virtual
clock stepped by one second (arrivals, heartbeats and the sweep each second), so
an hour takes well under a minute; the ending of the lost calls is timed on the
wall clock and added to the virtual detection time.

It prints the calls per node (max and mean), rejected starts, the time until the
lost node's agents are told, the control-plane events per second the shared event
bus must carry, and the database work per second.

    .venv/bin/python bench/national_sim.py
    .venv/bin/python bench/national_sim.py --capacity 70   # too little for N-1
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from beeldbel.config import CallsConfig, MediaNodeConfig, Secret  # noqa: E402
from beeldbel.logging import configure_logging  # noqa: E402
from controlplane.base.errors import MediaUnavailable  # noqa: E402
from controlplane.calls import join_links  # noqa: E402
from controlplane.calls import node_registry as registry  # noqa: E402
from controlplane.calls import record as records  # noqa: E402
from controlplane.calls.media_node import MediaNode  # noqa: E402
from controlplane.calls.placement import MediaNodes  # noqa: E402
from controlplane.security import audit  # noqa: E402
from controlplane.storage.database import Database  # noqa: E402

#: What one video call publishes, from the code (controlplane/calls, staff,
#: requests): the request arrives (queue); the agent claims it and starts the
#: call (queue twice, link_sent); the citizen opens the link, passes the device
#: check, waits and is admitted (link_opened, three progress steps); hang-up ends
#: the room on both channels and the citizen's page says it left; the agent
#: closes the request after the survey (queue). A restart after a lost node
#: skips the claim; a lost call publishes only its two ``ended``.
ARRIVAL = {"queue": 1}
START = {"queue": 2, "link_sent": 1, "link_opened": 1, "progress": 3}
RESTART = {**START, "queue": 1}
END = {"ended": 2, "progress": 1, "queue": 1}
LOST = {"ended": 2}
#: One call in ten has an interpreter (link_opened + three progress steps);
#: one in five gets a waiting-room message.
INTERPRETER_SHARE, MESSAGE_SHARE = 0.10, 0.20


@dataclass
class Call:
    room_id: str
    record_id: int
    node: str
    desk: int
    ends_at: float


@dataclass
class Sim:
    args: argparse.Namespace
    db: Database
    nodes: MediaNodes
    rng: random.Random
    started: datetime
    now: float = 0.0
    calls: dict[str, Call] = field(default_factory=dict)
    free_agents: list[int] = field(default_factory=list)
    waiting: list[collections.deque[float]] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)
    killed_at: float | None = None
    #: (when, desk) of each restart the lost calls' agents will make
    restarts: list[tuple[float, int]] = field(default_factory=list)
    events: collections.Counter[int] = field(default_factory=collections.Counter)
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    db_ops: collections.Counter[str] = field(default_factory=collections.Counter)
    starts: int = 0
    rejected: int = 0
    restarted: int = 0
    peak: int = 0
    at_loss: list[int] = field(default_factory=list)
    told: list[float] = field(default_factory=list)
    detect: float = 0.0
    end_wall: float = 0.0
    lost_node: str = ""
    place_wall: list[float] = field(default_factory=list)

    def clock(self) -> datetime:
        return self.started + timedelta(seconds=self.now)

    def publish(self, kind: str, count: int = 1) -> None:
        self.events[int(self.now)] += count
        self.kinds[kind] += count

    def publish_all(self, counts: dict[str, int]) -> None:
        for kind, count in counts.items():
            self.publish(kind, count)


class NoMedia(MediaNode):
    """A node client that makes and ends rooms without a media server."""

    async def create_room(self, room_id: str, video_codec: str) -> None:
        return None

    async def end_room(self, room_id: str) -> None:
        return None


def media_nodes(count: int) -> MediaNodes:
    calls, secret = CallsConfig(), Secret("bench-secret-0123456789")
    clients = [
        NoMedia(
            MediaNodeConfig(f"media-{i}", f"http://10.0.0.{i}:8444", "wss://m/ws"),
            calls,
            secret,
        )
        for i in range(1, count + 1)
    ]
    return MediaNodes(clients, reservation_seconds=2 * calls.api_timeout_seconds + 30)


def arrival_rate(sim: Sim) -> float:
    """Calls per second: a ramp over ``--ramp-minutes``, then the peak rate that
    keeps ``--peak`` calls going (Little's law: rate times mean duration)."""
    peak: int = sim.args.peak
    call_seconds: float = sim.args.call_minutes * 60.0
    ramp_seconds: float = sim.args.ramp_minutes * 60.0
    return peak / call_seconds * min(1.0, sim.now / ramp_seconds)


async def start_call(sim: Sim, desk: int, restart: bool = False) -> None:
    room_id = secrets.token_urlsafe(18)
    started = time.perf_counter()
    sim.db_ops["placement"] += 2  # read the nodes, reserve on one
    try:
        node = await sim.nodes.create_room(sim.db, room_id, "VP8")
    except MediaUnavailable:
        sim.rejected += 1
        sim.free_agents[desk] += 1
        sim.publish("queue")  # the agent's start fails; the request goes back
        return
    record_id = await records.create_call_record(
        sim.db, room_id=room_id, request_id=None, media_node=node.node_id
    )
    sim.db_ops["placement"] += 1
    sim.place_wall.append(time.perf_counter() - started)
    duration = sim.rng.expovariate(1 / (sim.args.call_minutes * 60))
    sim.calls[room_id] = Call(
        room_id, record_id, node.node_id, desk, sim.now + duration
    )
    sim.starts += 1
    sim.restarted += restart
    sim.publish_all(RESTART if restart else START)
    if sim.rng.random() < INTERPRETER_SHARE:
        sim.publish("link_opened")
        sim.publish("progress", 3)
    if sim.rng.random() < MESSAGE_SHARE:
        sim.publish("lobby_message")


async def end_call(sim: Sim, call: Call, outcome: str) -> None:
    """The database writes of ``rooms.end_call``: void links, finish, audit."""
    await join_links.void_room(sim.db, call.room_id)
    await records.finish_call(sim.db, call.record_id, outcome=outcome)
    async with sim.db.write() as conn:
        await audit.record(
            conn, "video_call_ended", username="system", record_id=call.record_id
        )
    sim.db_ops["end"] += 3
    del sim.calls[call.room_id]
    if outcome == "completed":
        sim.publish_all(END)
        sim.free_agents[call.desk] += 1
    else:
        sim.publish_all(LOST)


async def heartbeats(sim: Sim) -> None:
    placed = collections.Counter(call.node for call in sim.calls.values())
    for index, node_id in enumerate(sim.nodes.registry.ids):
        if node_id in sim.dead or (int(sim.now) + index) % sim.args.heartbeat:
            continue
        rooms = placed[node_id]
        load = registry.Load(
            sim.args.capacity, rooms, 2 * rooms, 100.0 * rooms, rooms / 120, False
        )
        await registry.record_heartbeat(sim.db, node_id, load, sim.clock())
        sim.db_ops["heartbeat"] += 1


async def sweep(sim: Sim) -> None:
    """The control plane's sweep: mark silent nodes down, end their calls."""
    lost = await registry.mark_lost(sim.db, sim.args.down_after, sim.clock())
    await registry.node_states(sim.db, sim.nodes.registry, sim.clock())
    sim.db_ops["sweep"] += 2
    for node_id in lost:
        assert sim.killed_at is not None
        sim.detect = sim.now - sim.killed_at
        rooms = await registry.open_rooms_on(sim.db, sim.nodes.registry, node_id)
        started = time.perf_counter()
        for room_id in rooms:
            call = sim.calls[room_id]
            await end_call(sim, call, "media_lost")
            sim.told.append(sim.detect + time.perf_counter() - started)
            # the agent reads the message and starts again
            delay = sim.rng.uniform(*sim.args.restart_seconds)
            sim.restarts.append((sim.now + delay, call.desk))
        sim.end_wall = time.perf_counter() - started


async def step(sim: Sim) -> None:
    for room_id in [r for r, c in sim.calls.items() if c.ends_at <= sim.now]:
        await end_call(sim, sim.calls[room_id], "completed")
    for desk, queue in enumerate(sim.waiting):
        while queue and sim.free_agents[desk] > 0:
            queue.popleft()
            sim.free_agents[desk] -= 1
            await start_call(sim, desk)
    for _ in range(poisson(sim.rng, arrival_rate(sim))):
        desk = sim.rng.randrange(sim.args.desks)
        sim.publish_all(ARRIVAL)  # the request appears on the desk's consoles
        sim.waiting[desk].append(sim.now)
    for at, desk in [r for r in sim.restarts if r[0] <= sim.now]:
        sim.restarts.remove((at, desk))
        await start_call(sim, desk, restart=True)
    await heartbeats(sim)
    await sweep(sim)
    if int(sim.now) % 60 == 0:  # as the control plane's sweep does
        await registry.forget_reservations(sim.db, sim.nodes.registry, sim.clock())
        sim.db_ops["sweep"] += 1
    sim.peak = max(sim.peak, len(sim.calls))
    if sim.killed_at is None and sim.now >= sim.args.kill_minute * 60:
        kill(sim)


def kill(sim: Sim) -> None:
    """The busiest node dies between two heartbeats."""
    placed = collections.Counter(call.node for call in sim.calls.values())
    sim.at_loss = [placed[n] for n in sim.nodes.registry.ids]
    sim.lost_node = placed.most_common(1)[0][0]
    sim.dead.add(sim.lost_node)
    sim.killed_at = sim.now + sim.rng.random()  # somewhere in this second


def poisson(rng: random.Random, mean: float) -> int:
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


async def run(args: argparse.Namespace, db_url: str) -> Sim:
    db = Database(db_url)
    await db.migrate()
    nodes = media_nodes(args.nodes)
    await registry.ensure_nodes(db, nodes.registry.ids)
    agents = [args.agents // args.desks] * args.desks
    for desk in range(args.agents % args.desks):
        agents[desk] += 1
    sim = Sim(
        args,
        db,
        nodes,
        random.Random(args.seed),
        datetime(2026, 12, 7, 9, 0, tzinfo=UTC),
        free_agents=agents,
        waiting=[collections.deque() for _ in range(args.desks)],
    )
    clock: Callable[[], datetime] = sim.clock
    nodes.clock = clock
    try:
        while sim.now < args.minutes * 60:
            await step(sim)
            sim.now += 1
    finally:
        await db.close()
    return sim


def report(sim: Sim, wall: float, where: str) -> None:
    args = sim.args
    ids = sim.nodes.registry.ids
    placed = collections.Counter(call.node for call in sim.calls.values())
    after = [placed[n] for n in ids if n != sim.lost_node]
    peak_window = range(int(args.ramp_minutes * 60) + 600, int(args.minutes * 60))
    per_second = [sim.events[s] for s in peak_window]
    per_10s = [sum(per_second[i : i + 10]) / 10 for i in range(len(per_second) - 9)]
    place_ms = sorted(t * 1000 for t in sim.place_wall)
    seconds = args.minutes * 60
    print(
        f"national_sim: {args.desks} desks, {args.agents} agents, {args.nodes} media "
        f"nodes of capacity {args.capacity}, heartbeat {args.heartbeat} s, down "
        f"after {args.down_after} s, calls of {args.call_minutes} min on average"
    )
    print(
        f"simulated {args.minutes} min (ramp over {args.ramp_minutes:g}) in "
        f"{wall:.1f} s wall on {where}"
    )
    print(
        f"calls started: {sim.starts} ({sim.restarted} restarts after the loss); "
        f"peak concurrent: {sim.peak}"
    )
    print(
        f"calls per node at the loss: max {max(sim.at_loss)}, mean "
        f"{statistics.mean(sim.at_loss):.1f} ({sum(sim.at_loss)} calls); at the end "
        f"on the {len(after)} left: max {max(after)}, mean {statistics.mean(after):.1f}"
    )
    print(f"rejected starts (every node full or down): {sim.rejected}")
    print(
        f"lost node {sim.lost_node} at minute {args.kill_minute} with "
        f"{len(sim.told)} calls: marked down {sim.detect:.1f} s after it died "
        f"(virtual), its calls ended in {sim.end_wall * 1000:.0f} ms (wall); agents "
        f"told after max {max(sim.told):.1f} s, mean {statistics.mean(sim.told):.1f} s"
    )
    print(
        f"placement: p50 {place_ms[len(place_ms) // 2]:.1f} ms, p99 "
        f"{place_ms[int(len(place_ms) * 0.99)]:.1f} ms per start (2 reads, "
        "1 locked reservation, 1 record)"
    )
    kinds = ", ".join(f"{k} {v / seconds:.2f}" for k, v in sim.kinds.most_common())
    print(
        f"event bus at the peak: mean {statistics.mean(per_second):.1f} events/s, "
        f"busiest second {max(per_second)}, busiest 10 s "
        f"{max(per_10s):.1f}/s; by kind over the run (/s): {kinds}"
    )
    queue_rate = sim.kinds["queue"] / seconds
    print(
        f"queue re-renders if all {args.agents} consoles are open: "
        f"{queue_rate * args.agents:.0f} queries/s (queue events x consoles)"
    )
    ops = ", ".join(f"{k} {v / seconds:.2f}" for k, v in sim.db_ops.most_common())
    total = sum(sim.db_ops.values()) / seconds
    print(
        f"database per second for media nodes and calls: {total:.1f} ({ops}), "
        "per control-plane process that sweeps: +2 reads/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--desks", type=int, default=25)
    parser.add_argument("--agents", type=int, default=600)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--peak", type=int, default=500, help="calls at once")
    parser.add_argument(
        "--capacity",
        type=int,
        default=100,
        help="rooms per node (bench/README: one core ≈ 105-122 1:1 calls)",
    )
    parser.add_argument("--heartbeat", type=int, default=3)
    parser.add_argument("--down-after", type=int, default=10)
    parser.add_argument("--call-minutes", type=float, default=10.0)
    parser.add_argument("--minutes", type=int, default=40)
    parser.add_argument("--ramp-minutes", type=float, default=10.0)
    parser.add_argument("--kill-minute", type=float, default=30.0)
    parser.add_argument(
        "--restart-seconds",
        type=float,
        nargs=2,
        default=(15.0, 60.0),
        help="an agent told of a lost node starts again after this (uniform)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db-url", help="default: SQLite in a temporary directory")
    args = parser.parse_args()
    configure_logging("warning", "console")
    # tmpfs when there is one: the figures are the control plane's work, not the
    # fsyncs of this machine's disk (a database server has its own)
    shm = Path("/dev/shm")  # noqa: S108 (mkdtemp makes a private directory in it)
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        db_url = args.db_url or f"sqlite+aiosqlite:///{tmp}/national_sim.sqlite3"
        where = "PostgreSQL" if db_url.startswith("postgresql") else "SQLite " + tmp
        started = time.perf_counter()
        sim = asyncio.run(run(args, db_url))
        report(sim, time.perf_counter() - started, where)


if __name__ == "__main__":
    main()
