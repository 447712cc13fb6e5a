"""``beeldbel admin webhook-*``: an admin's webhook endpoints from the command
line (the browser page comes with the admin API-key page)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from beeldbel.config import Config

WithDb = Callable[[Config, Callable[[Any], Awaitable[int]]], int]
#: Who the audit log names for changes made here.
CLI_USER = "cli"


def add_parsers(admin_sub: Any, with_db: WithDb) -> None:
    """The webhook actions under ``beeldbel admin``; ``with_db`` runs one."""

    def command(name: str, help_text: str, func: Callable[..., Any]) -> Any:
        parser = admin_sub.add_parser(name, help=help_text)
        parser.set_defaults(func=lambda config, args: func(config, args, with_db))
        return parser

    add = command("webhook-add", "send an API key's events to a URL", _add)
    add.add_argument("prefix", help="the API key's prefix (apikey-list)")
    add.add_argument("url", help="https://… where the events go")
    add.add_argument(
        "--event", action="append", default=[], help="an event type (repeat); all"
    )
    command("webhook-list", "list webhook endpoints", _list)
    rotate = command("webhook-rotate", "a new signing secret", _rotate)
    rotate.add_argument("endpoint", type=int)
    remove = command("webhook-remove", "delete a webhook endpoint", _remove)
    remove.add_argument("endpoint", type=int)
    replay = command("webhook-replay", "send dead-lettered events again", _replay)
    replay.add_argument("endpoint", type=int)
    replay.add_argument("--message", help="only this message id (msg_…)")


def _secret_key(config: Config) -> bytes:
    from controlplane.security.secrets_store import load_secret_key

    return load_secret_key(config)


def _add(config: Config, args: argparse.Namespace, with_db: WithDb) -> int:
    from controlplane.webhooks import add_endpoint

    async def work(db: Any) -> int:
        endpoint, secret = await add_endpoint(
            db,
            _secret_key(config),
            args.prefix,
            args.url,
            tuple(args.event),
            allow_private=config.webhooks.allow_private_addresses,
            username=CLI_USER,
        )
        print(f"endpoint {endpoint.id}: {endpoint.url}")
        print(f"events: {','.join(endpoint.event_types)}")
        print("signing secret (shown once, store it safely):")
        print(secret)
        return 0

    return with_db(config, work)


def _list(config: Config, _args: argparse.Namespace, with_db: WithDb) -> int:
    from controlplane.webhooks import list_endpoints

    async def work(db: Any) -> int:
        for e in await list_endpoints(db):
            overlap = (
                f"\told secret until {e.previous_until:%Y-%m-%d %H:%M}Z"
                if (e.previous_until)
                else ""
            )
            print(
                f"{e.id}\tkey {e.api_key_id}\t{e.url}\t{','.join(e.event_types)}"
                f"\tpending={e.pending}\tdead={e.dead}{overlap}"
            )
        return 0

    return with_db(config, work)


def _rotate(config: Config, args: argparse.Namespace, with_db: WithDb) -> int:
    from controlplane.webhooks import rotate_secret

    hours = config.webhooks.secret_overlap_hours

    async def work(db: Any) -> int:
        secret = await rotate_secret(
            db, _secret_key(config), args.endpoint, hours, username=CLI_USER
        )
        print(f"new signing secret (shown once; the old one signs too for {hours} h):")
        print(secret)
        return 0

    return with_db(config, work)


def _remove(config: Config, args: argparse.Namespace, with_db: WithDb) -> int:
    from controlplane.webhooks import remove_endpoint

    async def work(db: Any) -> int:
        await remove_endpoint(db, args.endpoint, username=CLI_USER)
        print(f"removed endpoint {args.endpoint}")
        return 0

    return with_db(config, work)


def _replay(config: Config, args: argparse.Namespace, with_db: WithDb) -> int:
    from controlplane.webhooks import replay

    async def work(db: Any) -> int:
        count = await replay(db, args.endpoint, args.message, username=CLI_USER)
        print(f"endpoint {args.endpoint}: {count} event(s) pending again")
        return 0

    return with_db(config, work)
