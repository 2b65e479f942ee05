"""Operator commands: `python -m taskmesh_auth.admin rotate-keys | create-admin --email E`.

They read the same `AUTH_*` environment as the service (the `taskmesh` CLI passes the manifest's).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from taskmesh_common.logging import configure_logging

from taskmesh_auth import service
from taskmesh_auth.config import AuthSettings
from taskmesh_auth.main import hasher_for, key_store
from taskmesh_auth.models import WeakPasswordError
from taskmesh_auth.repository import Repository, create_pool


async def rotate_keys(settings: AuthSettings, activation_delay: float | None) -> str:
    """Add a signing key that starts signing after the activation delay; returns its kid."""
    pool = await create_pool(settings.database_url, size=1)
    try:
        keys = key_store(settings, Repository(pool))
        delay = settings.key_activation_delay if activation_delay is None else activation_delay
        key = await keys.rotate(activation_delay=delay)
        return key.kid
    finally:
        await pool.close()


async def create_admin(settings: AuthSettings, email: str, password: str) -> str:
    """Create the admin (or promote an existing account); returns the user id."""
    pool = await create_pool(settings.database_url, size=1)
    try:
        user = await service.create_admin(
            Repository(pool), hasher=hasher_for(settings), email=email, password=password
        )
        return str(user.id)
    finally:
        await pool.close()


def _read_password(settings: AuthSettings) -> str:
    if settings.admin_password is not None:
        return settings.admin_password.get_secret_value()
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password for the admin: ")
    if getpass.getpass("Repeat it: ") != first:
        raise SystemExit("The passwords differ.")
    return first


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="python -m taskmesh_auth.admin")
    commands = parser.add_subparsers(dest="command", required=True)
    rotate = commands.add_parser(
        "rotate-keys", help="add a new signing key (old ones keep verifying)"
    )
    rotate.add_argument(
        "--activation-delay",
        type=float,
        default=None,
        help="seconds before the new key signs (default AUTH_KEY_ACTIVATION_DELAY)",
    )
    admin = commands.add_parser("create-admin", help="create or promote an admin account")
    admin.add_argument("--email", required=True)
    args = parser.parse_args(argv)
    settings = AuthSettings()
    configure_logging("auth", settings.log_level)
    if args.command == "rotate-keys":
        kid = asyncio.run(rotate_keys(settings, args.activation_delay))
        print(f"added signing key {kid}")
        return 0
    password = _read_password(settings)
    try:
        user_id = asyncio.run(create_admin(settings, args.email, password))
    except WeakPasswordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"admin {service.normalise_email(args.email)} ready (id {user_id})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
