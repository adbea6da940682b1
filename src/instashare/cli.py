"""The ``instashare`` command: ``serve`` and ``worker``."""

from __future__ import annotations

import argparse
import atexit
import sys
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.engine import make_url

from instashare.config import Settings, get_settings
from instashare.database_setup import (
    DatabaseSetupError,
    EmbeddedPostgres,
    create_database_if_missing,
    is_listening,
    upgrade_to_head,
    wait_for_schema_at_head,
)
from instashare.logs import configure_logging, get_logger

log = get_logger(__name__)
NO_DATABASE_MESSAGE = (
    "no PostgreSQL answers at {where} and no PostgreSQL server binaries were found: "
    "set DATABASE_URL, or run `docker compose up -d db`"
)


def resolve_database_url(settings: Settings) -> str:
    """The URL to use; starts a private cluster when nothing is configured and nothing answers."""
    url = make_url(settings.database_url)
    host, port = url.host or "127.0.0.1", url.port or 5432
    if "database_url" in settings.model_fields_set or is_listening(host, port):
        return settings.database_url
    if not EmbeddedPostgres.available():
        raise DatabaseSetupError(NO_DATABASE_MESSAGE.format(where=f"{host}:{port}"))
    cluster = EmbeddedPostgres(data_dir=Path("var/postgres/data").resolve(), host=host, port=port)
    cluster.start()
    atexit.register(cluster.stop)
    log.info("using the private PostgreSQL cluster; set DATABASE_URL to use another server")
    return settings.database_url


def prepare_database(settings: Settings) -> str:
    database_url = resolve_database_url(settings)
    if create_database_if_missing(database_url):
        log.info("created database", database=make_url(database_url).database)
    # Serialized with every other process that migrates; refuses a revision this code lacks.
    upgrade_to_head(database_url, settings.migration_limits())
    return database_url


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from instashare.app import create_app

    # The app is built with exactly the values decided here, not re-read from the environment.
    settings = settings.model_copy(
        update={
            "database_url": prepare_database(settings),
            "run_workers_in_process": settings.run_workers_in_process and not args.no_worker,
        }
    )
    log.info(
        "serving",
        host=args.host,
        port=args.port,
        workers_in_process=settings.run_workers_in_process,
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_config=None,
        # Forwarded headers are honoured by the app only when TRUST_FORWARDED_HEADERS says so.
        proxy_headers=False,
        timeout_graceful_shutdown=30,
    )
    return 0


def worker(_: argparse.Namespace, settings: Settings) -> int:
    from instashare.worker.runner import run_workers

    # Workers never migrate: they start once whoever deploys has brought the schema to the
    # head this code was written for, and say why they wait meanwhile.
    state = wait_for_schema_at_head(settings.database_url)
    log.info("database schema is current", revision=", ".join(state.current))
    return run_workers(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instashare", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="migrate the database, then serve the API")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument(
        "--no-worker", action="store_true", help="do not run compression workers in this process"
    )
    serve_parser.set_defaults(handler=serve)
    worker_parser = commands.add_parser(
        "worker", help="wait until the database schema is current, then run compression workers"
    )
    worker_parser.set_defaults(handler=worker)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        print(f"instashare: invalid configuration: {problems}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        return int(args.handler(args, settings))
    except DatabaseSetupError as exc:
        print(f"instashare: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C while waiting (for the schema, or the migration lock): stop without a trace.
        return 130
