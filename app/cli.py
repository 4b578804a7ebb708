"""`botscore`: serve, train, import-model, reload, make-data. Parses arguments and hands over; no logic of its own."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.audit import spool_dir
from app.errors import fail_startup
from app.settings import SHIPPED_MODEL, SettingsError, env_name, load_settings

if TYPE_CHECKING:
    from collections.abc import Callable

SHIPPED_CARD = Path(__file__).resolve().parent.parent / "docs" / "model-card.md"


# How `botscore serve` runs uvicorn; `make bench` runs its ceiling app with the same options.
UVICORN_OPTIONS: dict[str, object] = {
    "loop": "uvloop",
    "http": "httptools",
    "lifespan": "on",
    "access_log": False,  # the audit log keeps every request
    "log_config": None,  # our JSON logging (app/logs.py)
    "server_header": False,
    "proxy_headers": False,  # the client address is used nowhere, so X-Forwarded-* is not parsed
    "timeout_graceful_shutdown": 5,  # in-flight requests; then the audit spool gets its own deadline
}


def _serve(args: argparse.Namespace) -> None:
    # The command line wins over the environment; written back so worker processes see it too.
    for field in ("host", "port", "workers"):
        value = getattr(args, field)
        if value is not None:
            os.environ[env_name(field)] = str(value)
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail_startup(str(exc))
    _metrics_dir(settings.audit_dir)

    import uvicorn

    from app import service  # after _metrics_dir: prometheus_client picks its mode on import

    built = service.build_from_environment()  # fails fast on a bad model, before any worker starts
    target = "app.main:app" if settings.workers > 1 else built.app
    uvicorn.run(target, host=settings.host, port=settings.port, workers=settings.workers, **UVICORN_OPTIONS)


def _metrics_dir(audit_dir: Path) -> None:
    """prometheus_client's multiprocess mode, so /metrics sums every worker. It reads the variable
    when first imported, so it is set here, before the app is; stale files of old workers go."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        return
    folder = spool_dir(audit_dir) / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def _make_data(args: argparse.Namespace) -> None:
    from app import training

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(training.generate_dataset())
    print(f"wrote {args.output}")


def _progress() -> Callable[[str], None]:
    """Print each step with the time since the command started, on stderr (stdout keeps the result)."""
    started = time.monotonic()

    def step(message: str) -> None:
        print(f"[{time.monotonic() - started:5.1f} s] {message}", file=sys.stderr, flush=True)

    return step


def _card_for(output: Path, card: Path | None) -> Path:
    """The card's path: as given, docs/model-card.md for the shipped model, else next to the artifact."""
    if card is not None:
        return card
    return SHIPPED_CARD if output.resolve() == SHIPPED_MODEL else output.with_suffix(".md")


def _train(args: argparse.Namespace) -> None:
    try:
        from app import training

        card = _card_for(args.output, args.card)
        document = training.train(args.data, args.output, card=card, progress=_progress())
    except ImportError as exc:
        sys.exit(f"botscore train needs the training extra (pip install -e '.[train]'): {exc}")
    print(f"wrote {args.output}: version {document['version']}")
    print(f"wrote {card} and its plots in {card.parent / card.stem}/")
    print(json.dumps(document["metrics"], indent=2))


def _import_model(args: argparse.Namespace) -> None:
    try:
        from app import importer

        card = _card_for(args.output, args.card) if args.data is not None else None
        document = importer.import_model(
            args.path, args.output, trust_pickle=args.trust_pickle, data=args.data, card=card, progress=_progress()
        )
    except ImportError as exc:
        sys.exit(f"botscore import-model needs the training extra (pip install -e '.[train]'): {exc}")
    except importer.ImportRefused as exc:
        sys.exit(f"botscore: {exc}")
    print(f"wrote {args.output}: version {document['version']}")
    if card is not None:
        print(f"wrote {card} and its plots in {card.parent / card.stem}/")


def _reload(args: argparse.Namespace) -> None:
    from app import reload

    pid = args.pid if args.pid is not None else reload.serve_pid()
    if pid is None:
        sys.exit("botscore: no `botscore serve` process found; pass --pid")
    try:
        signalled = reload.signal_workers(pid)
    except (ProcessLookupError, PermissionError) as exc:
        sys.exit(f"botscore: cannot signal {pid}: {exc}")
    print(f"sent SIGHUP to {', '.join(map(str, signalled))}")


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
    train.add_argument(
        "--card",
        type=Path,
        help="model card to write (default: docs/model-card.md for the shipped model, else OUTPUT.md)",
    )
    train.set_defaults(run=_train)

    import_model = commands.add_parser(
        "import-model", help="convert a fitted scikit-learn model (skops, or pickle/joblib) into an artifact"
    )
    import_model.add_argument("path", type=Path, help="the fitted estimator: a .skops file, or a pickle/joblib file")
    import_model.add_argument("--output", type=Path, required=True, help="artifact to write")
    import_model.add_argument(
        "--trust-pickle", action="store_true", help="allow a pickle/joblib file (loading one runs code in it)"
    )
    import_model.add_argument(
        "--data", type=Path, help="labelled CSV (x1, x2, is_bot) to compute metrics on and draw a model card from"
    )
    import_model.add_argument("--card", type=Path, help="model card to write with --data (default: OUTPUT.md)")
    import_model.set_defaults(run=_import_model)

    reload = commands.add_parser(
        "reload", help="reload the model in a running `botscore serve`: SIGHUP to each of its workers"
    )
    reload.add_argument("--pid", type=int, help="pid of `botscore serve` (default: the oldest one running here)")
    reload.set_defaults(run=_reload)

    make_data = commands.add_parser("make-data", help="regenerate the synthetic training data (fixed seed)")
    make_data.add_argument("--output", type=Path, default=DATA_FILE)
    make_data.set_defaults(run=_make_data)

    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
