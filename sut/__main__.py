"""Command line: serve, migrate, seed, token, init-storage."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import asyncpg

from sut.settings import Settings, SettingsError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sut", description="The messaging service (system under test).")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--port", type=int, help="listen port (default: PORT or 5240)")
    serve.add_argument("--host", help="listen address (default: HOST or 127.0.0.1)")
    mig = sub.add_parser("migrate", help="apply or revert schema migrations")
    mig.add_argument("action", nargs="?", default="up", choices=["up", "down", "status"])
    mig.add_argument("steps", nargs="?", type=int, help="with down: how many migrations to revert (default 1)")
    seed = sub.add_parser("seed", help="bulk-load background data with COPY")
    seed.add_argument("--customers", type=int, default=1000)
    seed.add_argument("--artists", type=int, default=200)
    seed.add_argument("--conversations", type=int, default=5000)
    seed.add_argument("--messages", type=int, default=100_000)
    seed.add_argument("--days", type=int, default=90, help="spread messages over this many past days")
    seed.add_argument("--random-seed", type=int, default=1, help="for a reproducible data set")
    seed.add_argument("--no-progress", action="store_true", help="no progress bar")
    tok = sub.add_parser("token", help="mint a JWT for tests and load (needs JWT_SECRET)")
    tok.add_argument("--user", type=int, required=True)
    tok.add_argument("--role", choices=["customer", "artist"], required=True)
    tok.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    sub.add_parser("init-storage", help="create the upload bucket (private) if it does not exist")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ, require_secret=args.command in ("serve", "token"))
        return _dispatch(args, settings)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        from sut.serve import serve

        return serve(settings, host=args.host, port=args.port)
    if args.command == "migrate":
        from sut.cli_migrate import migrate

        return asyncio.run(migrate(settings, args.action, args.steps))
    if args.command == "seed":
        from sut.seed import SeedPlan, seed

        plan = SeedPlan(customers=args.customers, artists=args.artists, conversations=args.conversations,
                        messages=args.messages, days=args.days, random_seed=args.random_seed)
        return asyncio.run(seed(settings.database_url, plan, progress=not args.no_progress))
    if args.command == "init-storage":
        from sut.cli_storage import init_storage

        return asyncio.run(init_storage(settings))
    from sut.auth import encode_token
    from sut.domain import Role

    if args.user <= 0 or args.ttl <= 0:
        print("error: --user and --ttl must be positive", file=sys.stderr)
        return 2
    print(encode_token(settings.jwt_secret, user_id=args.user, role=Role(args.role), ttl=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
