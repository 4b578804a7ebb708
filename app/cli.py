"""`botscore`: serve, train, make-data. Parses arguments and hands over; no logic of its own."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from app.settings import SHIPPED_MODEL, SettingsError, env_name, load_settings


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app import service

    # The command line wins over the environment; written back so worker processes see it too.
    for field in ("host", "port", "workers"):
        value = getattr(args, field)
        if value is not None:
            os.environ[env_name(field)] = str(value)
    try:
        settings = load_settings()
    except SettingsError as exc:
        service.fail(str(exc))
    built = service.build_from_environment()  # fails fast on a bad model, before any worker starts
    target = "app.main:app" if settings.workers > 1 else built.app
    uvicorn.run(
        target,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips="*",  # behind the ALB, which is the only way in on ECS
        timeout_graceful_shutdown=5,
    )


def _make_data(args: argparse.Namespace) -> None:
    from app import training

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(training.generate_dataset())
    print(f"wrote {args.output}")


def _train(args: argparse.Namespace) -> None:
    from app import training

    try:
        document = training.train(args.data, args.output)
    except ImportError as exc:
        sys.exit(f"botscore train needs the training extra (pip install -e '.[train]'): {exc}")
    print(f"wrote {args.output}: version {document['version']}")
    print(json.dumps(document["metrics"], indent=2))


def main(argv: list[str] | None = None) -> None:
    from app.training import DATA_FILE

    parser = argparse.ArgumentParser(prog="botscore", description="Bot-score inference service.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API (production entry point)")
    serve.add_argument("--host", help="bind address (BOTSCORE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (BOTSCORE_PORT, default 8887)")
    serve.add_argument("--workers", type=int, help="worker processes (BOTSCORE_WORKERS, default 1)")
    serve.set_defaults(run=_serve)

    train = commands.add_parser("train", help="train the model and write its artifact")
    train.add_argument("--data", type=Path, default=DATA_FILE, help="labelled CSV (x1, x2, is_bot)")
    train.add_argument("--output", type=Path, default=SHIPPED_MODEL, help="artifact to write")
    train.set_defaults(run=_train)

    make_data = commands.add_parser("make-data", help="regenerate the synthetic training data (fixed seed)")
    make_data.add_argument("--output", type=Path, default=DATA_FILE)
    make_data.set_defaults(run=_make_data)

    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
