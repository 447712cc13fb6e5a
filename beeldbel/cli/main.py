"""The ``beeldbel`` command: run the system, run one process, administer, purge."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from beeldbel.cli import webhooks
from beeldbel.config import Config, ConfigError, load_config
from beeldbel.processes import supervise


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        config = load_config(args.config, os.environ)
    except ConfigError as exc:
        print(f"beeldbel: {exc}", file=sys.stderr)
        return 2
    try:
        result: int = args.func(config, args)
    except ConfigError as exc:
        # found when used: a database or file the config names is unusable
        print(f"beeldbel: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # bad names, roles, scopes: the message says what is wrong
        print(f"beeldbel: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if getattr(exc, "status", 500) < 500 and hasattr(exc, "message"):
            print(f"beeldbel: {exc.message}", file=sys.stderr)
            return 1
        raise
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beeldbel", description="Beeldbel callback and video-calling desk"
    )
    parser.add_argument("--config", help="TOML config file (or BEELDBEL_CONFIG)")
    sub = parser.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="run everything on this machine")
    run.set_defaults(func=_run)
    cp = sub.add_parser("controlplane", help="run the control plane only")
    cp.set_defaults(func=_process("controlplane"))
    ms = sub.add_parser("mediaserver", help="run the media server only")
    ms.set_defaults(func=_process("mediaserver"))
    mig = sub.add_parser("migrate", help="bring the database schema up to date")
    mig.set_defaults(func=_migrate)
    purge = sub.add_parser("purge", help="erase personal data past its retention")
    purge.set_defaults(func=_purge)

    certs = sub.add_parser("certs", help="TLS certificates")
    certs_sub = certs.add_subparsers(metavar="WHAT")
    dev = certs_sub.add_parser("dev", help="make a dev CA and server certificate")
    dev.add_argument(
        "--name",
        action="append",
        default=[],
        help="another DNS name or IP address the certificate covers (repeat)",
    )
    dev.set_defaults(func=_certs_dev_command)

    admin = sub.add_parser("admin", help="staff accounts and API keys")
    admin_sub = admin.add_subparsers(metavar="ACTION")
    add = admin_sub.add_parser("user-add", help="create a staff account")
    add.add_argument("username")
    add.add_argument(
        "--role", choices=("agent", "supervisor", "admin"), default="agent"
    )
    add.add_argument(
        "--password-file",
        help="write the one-time password to this new file (mode 0600) instead "
        "of printing it, e.g. from an init container whose output is logged",
    )
    add.set_defaults(func=_user_add)
    reset = admin_sub.add_parser("user-reset", help="new one-time password, new TOTP")
    reset.add_argument("username")
    reset.set_defaults(func=_user_reset)
    users = admin_sub.add_parser("user-list", help="list staff accounts")
    users.set_defaults(func=_user_list)
    key = admin_sub.add_parser("apikey-create", help="create an integrator API key")
    key.add_argument("name")
    key.add_argument(
        "--scope",
        action="append",
        required=True,
        help="callbacks:read, callbacks:write, calls:write (repeat for more)",
    )
    key.set_defaults(func=_apikey_create)
    keys = admin_sub.add_parser("apikey-list", help="list API keys")
    keys.set_defaults(func=_apikey_list)
    revoke = admin_sub.add_parser("apikey-revoke", help="revoke an API key")
    revoke.add_argument("prefix")
    revoke.set_defaults(func=_apikey_revoke)
    webhooks.add_parsers(admin_sub, _with_db)

    signing = sub.add_parser("keys", help="signing keys of media join tokens")
    signing_sub = signing.add_subparsers(metavar="ACTION")
    rotate = signing_sub.add_parser("rotate", help="add a new key that signs from now")
    rotate.set_defaults(func=_keys_rotate)
    listing = signing_sub.add_parser("list", help="list signing keys")
    listing.set_defaults(func=_keys_list)
    retire = signing_sub.add_parser("retire", help="unpublish an old signing key")
    retire.add_argument("kid")
    retire.set_defaults(func=_keys_retire)
    return parser


def _with_db(config: Config, work: Callable[[Any], Awaitable[int]]) -> int:
    from controlplane.security.secrets_store import load_secret_key
    from controlplane.storage.database import Database

    async def go() -> int:
        try:
            db = Database(config.database.url)
        except OSError as exc:  # e.g. the SQLite file's folder cannot be made
            raise _unusable(config, exc) from None
        try:
            # the key lets migrations encrypt stored secrets (0004: TOTP)
            key = load_secret_key(config)
            await _unless_unusable(config, db.migrate(key))
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(go())


async def _unless_unusable(config: Config, step: Awaitable[None]) -> None:
    """The first use of the database: if it cannot be reached, opened or created,
    a one-line :class:`ConfigError` naming ``[database] url``, not a traceback."""
    from sqlalchemy.exc import DBAPIError

    try:
        await step
    except (DBAPIError, OSError) as exc:
        raise _unusable(config, exc) from None


def _unusable(config: Config, exc: Exception) -> ConfigError:
    from sqlalchemy.engine import make_url

    url = make_url(config.database.url).render_as_string(hide_password=True)
    reason = getattr(exc, "orig", None) or exc
    first = (str(reason) or type(reason).__name__).strip().splitlines()[0]
    return ConfigError(f"[database] url {url}: cannot use the database: {first}")


def _migrate(config: Config, _args: argparse.Namespace) -> int:
    async def work(_db: Any) -> int:
        print("database is up to date")
        return 0

    return _with_db(config, work)


def _purge(config: Config, _args: argparse.Namespace) -> int:
    from controlplane.requests.retention import purge

    async def work(db: Any) -> int:
        count = await purge(db, config)
        print(f"erased personal data of {count} callback requests")
        return 0

    return _with_db(config, work)


def _certs_dev_command(config: Config, args: argparse.Namespace) -> int:
    _certs_dev(config, args)
    return 0


def _certs_dev(config: Config, args: argparse.Namespace) -> Path:
    """Make (once) and print the dev CA and server certificate; returns the CA."""
    from beeldbel.cli.devca import ensure_dev_certificates

    names = tuple(getattr(args, "name", None) or ())
    certs = ensure_dev_certificates(Path(config.tls.cert_file).parent, names)
    if certs.made:
        print("made a new dev CA: browsers must import it (again)")
    print(f"CA certificate (import it in your browser): {certs.ca_file.resolve()}")
    print(f"server certificate: {certs.cert_file.resolve()}")
    return certs.ca_file.resolve()


def _user_add(config: Config, args: argparse.Namespace) -> int:
    """The password goes to this command's own output (or a new file), never
    through the structured log."""
    from controlplane.staff.users import create_user

    secret_file = _new_secret_file(args.password_file) if args.password_file else None

    async def work(db: Any) -> int:
        password = await create_user(db, args.username, args.role)
        if secret_file is None:
            print(f"created {args.role} {args.username}; one-time password: {password}")
        else:
            with secret_file:
                secret_file.write(password + "\n")
            print(f"created {args.role} {args.username}; one-time password written")
            print(f"to {args.password_file}")
        print("At first login they choose a password and set up an authenticator app.")
        return 0

    try:
        return _with_db(config, work)
    finally:
        if secret_file is not None and not secret_file.closed:
            # the account was not made: leave no empty password file behind
            secret_file.close()
            Path(args.password_file).unlink()


def _new_secret_file(path: str) -> Any:
    """``path`` opened for writing, created now, readable by its owner only."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ValueError(f"--password-file {path}: {exc.strerror}") from None
    return os.fdopen(fd, "w", encoding="utf-8")


def _user_reset(config: Config, args: argparse.Namespace) -> int:
    from controlplane.staff.users import reset_user

    async def work(db: Any) -> int:
        password = await reset_user(db, args.username)
        print(
            f"{args.username}: one-time password {password}; TOTP must be set up again"
        )
        return 0

    return _with_db(config, work)


def _user_list(config: Config, _args: argparse.Namespace) -> int:
    from controlplane.staff.users import list_users

    async def work(db: Any) -> int:
        for user in await list_users(db):
            print(f"{user['username']}\t{user['role']}\tactive={user['active']}")
        return 0

    return _with_db(config, work)


def _apikey_create(config: Config, args: argparse.Namespace) -> int:
    from controlplane.security.api_keys import create_api_key

    async def work(db: Any) -> int:
        key = await create_api_key(db, args.name, tuple(args.scope))
        print("API key (shown once, store it safely):")
        print(key)
        return 0

    return _with_db(config, work)


def _apikey_list(config: Config, _args: argparse.Namespace) -> int:
    from controlplane.security.api_keys import list_api_keys

    async def work(db: Any) -> int:
        for key in await list_api_keys(db):
            state = "revoked" if key["revoked_at"] else "active"
            print(f"{key['prefix']}\t{key['name']}\t{','.join(key['scopes'])}\t{state}")
        return 0

    return _with_db(config, work)


def _apikey_revoke(config: Config, args: argparse.Namespace) -> int:
    from controlplane.security.api_keys import revoke_api_key

    async def work(db: Any) -> int:
        if await revoke_api_key(db, args.prefix):
            print(f"revoked {args.prefix}")
            return 0
        print(f"no active API key {args.prefix}", file=sys.stderr)
        return 1

    return _with_db(config, work)


def _keys_rotate(config: Config, _args: argparse.Namespace) -> int:
    from controlplane.security.secrets_store import load_secret_key
    from controlplane.security.signing_keys import rotate

    async def work(db: Any) -> int:
        kid = await rotate(db, load_secret_key(config))
        print(f"new signing key {kid}; older keys stay published until retired")
        return 0

    return _with_db(config, work)


def _keys_list(config: Config, _args: argparse.Namespace) -> int:
    from controlplane.security.signing_keys import list_keys

    async def work(db: Any) -> int:
        for key in await list_keys(db):
            state = "retired" if key.retired_at else "published"
            signing = "\tsigning" if key.signing else ""
            print(f"{key.kid}\t{key.created_at:%Y-%m-%d %H:%M}\t{state}{signing}")
        return 0

    return _with_db(config, work)


def _keys_retire(config: Config, args: argparse.Namespace) -> int:
    from controlplane.base.errors import ControlPlaneError
    from controlplane.security.signing_keys import retire

    async def work(db: Any) -> int:
        try:
            await retire(db, args.kid)
        except ControlPlaneError as exc:
            print(f"beeldbel: {exc.message}", file=sys.stderr)
            return 1
        print(f"retired {args.kid}; tokens signed with it are refused from now")
        return 0

    return _with_db(config, work)


def _process(module: str) -> Callable[[Config, argparse.Namespace], int]:
    def run(_config: Config, args: argparse.Namespace) -> int:
        entry = __import__(f"{module}.__main__", fromlist=["main"])
        argv = ["--config", args.config] if args.config else []
        result: int = entry.main(argv)
        return result

    return run


def _run(config: Config, args: argparse.Namespace) -> int:
    """Certificates, a first admin, then both processes until Ctrl-C.

    On a loopback ``public_url`` (``make run``) it makes dev certificates and
    prints the first admin's one-time password: how to log in. Otherwise it needs
    real certificates and creates no account: nothing it prints can carry a
    password into a log."""
    from beeldbel.cli.one_machine import one_machine_environment
    from beeldbel.config import is_loopback_url

    local = is_loopback_url(config.server.public_url)
    ca_file = _run_certificates(config, args, local)
    _with_db(config, _first_admin if local else _no_admin_yet)
    base = config.server.public_url.rstrip("/")
    print(f"Citizens:  {base}/")
    print(f"Staff:     {base}/staff")
    if config.metrics.port:
        print(f"Metrics:   http://{config.metrics.host}:{config.metrics.port}/metrics")
    extra = ["--config", args.config] if args.config else []
    modules = ["controlplane"]
    if importlib.util.find_spec("mediaserver") is not None:
        modules.append("mediaserver")
    env = {**os.environ, **one_machine_environment(config, ca_file)}
    children = [
        # their own process group: Ctrl-C in the terminal reaches only this
        # supervisor, which stops each child once with SIGTERM (a SIGINT of their
        # own as well made the control plane's shutdown cancel itself: exit 1)
        subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", module, *extra], env=env, process_group=0
        )
        for module in modules
    ]
    return supervise(children)


def _run_certificates(
    config: Config, args: argparse.Namespace, local: bool
) -> Path | None:
    """The dev CA the processes must trust, if dev certificates are used."""
    from beeldbel.tls import is_dev_certificate, refuse_dev_certificate

    if not config.tls.enabled:
        return None
    if not local:
        refuse_dev_certificate(config)
        return None
    cert_file = config.tls.cert_file
    if Path(cert_file).is_file() and not is_dev_certificate(cert_file):
        return None  # the operator's own certificate, trusted as the system trusts
    return _certs_dev(config, args)


async def _first_admin(db: Any) -> int:
    from controlplane.staff.users import bootstrap_admin

    password = await bootstrap_admin(db)
    if password is not None:
        print("\nFirst start: created staff account 'admin'")
        print(f"  one-time password: {password}   (shown only now)")
        print("  At first login you choose a new password and scan a QR code")
        print("  with an authenticator app (TOTP).\n")
    return 0


async def _no_admin_yet(db: Any) -> int:
    from controlplane.staff.users import list_users

    if not await list_users(db):
        print("\nNo staff account yet. Create the first admin with")
        print("  beeldbel admin user-add NAME --role admin [--password-file PATH]")
        print("  (its one-time password goes to that command's output or the file,")
        print("  never to this log).\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
