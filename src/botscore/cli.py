"""`botscore`: serve, reload, model (the registry), and (with botscore-train installed) train, import-model, make-data.

Parses arguments and hands over; no logic of its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TRAINING_COMMANDS = {
    "train": "train the model and write its artifact and model card",
    "import-model": "convert a fitted scikit-learn model (skops, or pickle/joblib) into an artifact",
    "make-data": "regenerate the synthetic training data (fixed seed)",
    "split-data": "split a labelled CSV into rows to train on and held-out rows",
}


def _serve(args: argparse.Namespace) -> None:
    from botscore import server

    server.serve(host=args.host, port=args.port, workers=args.workers)


def _reload(args: argparse.Namespace) -> None:
    from botscore.ops import processes

    pid = args.pid if args.pid is not None else processes.serve_pid()
    if pid is None:
        sys.exit("botscore: no `botscore serve` process found; pass --pid")
    try:
        signalled = processes.signal_workers(pid)
    except (ProcessLookupError, PermissionError) as exc:
        sys.exit(f"botscore: cannot signal {pid}: {exc}")
    print(f"sent SIGHUP to {', '.join(map(str, signalled))}")


def _model(args: argparse.Namespace) -> None:
    import dataclasses
    import os

    from botscore.model import manage
    from botscore.model.artifact import ArtifactError
    from botscore.model.canary import Guardrails
    from botscore.model.registry import Registry

    url = args.registry or os.environ.get("BOTSCORE_MODEL_REGISTRY")
    if not url:
        sys.exit("botscore model: pass --registry s3://bucket/prefix/ or set BOTSCORE_MODEL_REGISTRY")
    try:
        registry = Registry(url)
        if args.action == "publish":
            lines = [manage.publish(registry, args.path)]
        elif args.action == "promote":
            lines = [manage.promote(registry, args.version)]
        elif args.action == "shadow":
            lines = [manage.shadow(registry, None if args.version == "none" else args.version)]
        elif args.action == "canary" and args.version == "stop":
            lines = [manage.stop_canary(registry)]
        elif args.action == "canary":
            steps = (args.percent,) if args.percent is not None else args.steps
            guardrails = Guardrails(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Guardrails)})
            lines = [manage.canary(registry, args.version, steps, args.dwell, guardrails)]
        else:
            lines = manage.status(registry, args.url)
    except ArtifactError as exc:
        sys.exit(f"botscore model {args.action}: {exc}")
    print("\n".join(lines))


def _percents(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"steps must be numbers separated by commas, got {text!r}") from None


def _training(argv: list[str]) -> None:
    """The training commands live in the botscore-train distribution, which serving never imports."""
    try:
        from botscore_train import cli
    except ImportError:
        sys.exit(f"botscore {argv[0]} needs botscore-train: pip install -r requirements-train.txt -e ./train")
    cli.main(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in TRAINING_COMMANDS:
        _training(argv)
        return
    parser = argparse.ArgumentParser(prog="botscore", description="Bot-score inference service.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API (production entry point)")
    serve.add_argument("--host", help="bind address (BOTSCORE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (BOTSCORE_PORT, default 8887)")
    serve.add_argument("--workers", type=int, help="worker processes (BOTSCORE_WORKERS, default 1)")
    serve.set_defaults(run=_serve)

    reload = commands.add_parser(
        "reload", help="reload the model in a running `botscore serve`: SIGHUP to each of its workers"
    )
    reload.add_argument("--pid", type=int, help="pid of `botscore serve` (default: the oldest one running here)")
    reload.set_defaults(run=_reload)

    model = commands.add_parser("model", help="the model registry: publish, promote, shadow, canary, status")
    model.add_argument("--registry", help="s3://bucket/prefix/ of the registry (default: BOTSCORE_MODEL_REGISTRY)")
    actions = model.add_subparsers(dest="action", required=True)
    publish = actions.add_parser("publish", help="validate an artifact and store it under its version")
    publish.add_argument("path", type=Path, help="the artifact (JSON) to publish")
    promote = actions.add_parser("promote", help="serve VERSION in production (rollback: promote the old one)")
    promote.add_argument(
        "version", help="a published version, or `shipped`: the model this installation ships (published if missing)"
    )
    shadow = actions.add_parser("shadow", help="score VERSION in shadow beside production, or `none`")
    shadow.add_argument("version")
    canary = actions.add_parser(
        "canary",
        help="answer a share of requests (by request id) with VERSION, in steps, rolled back by its guardrails",
        description="Start a canary of VERSION, replacing any other; `canary stop` stops a running one. Each step "
        "lasts at least --dwell seconds; a last step of 100 moves production to VERSION after its dwell, a last "
        "step under 100 holds until `promote` or `canary stop`. A breach of a guardrail rolls it back.",
    )
    canary.add_argument("version", help="a published version, or `stop`")
    share = canary.add_mutually_exclusive_group()
    share.add_argument(
        "--percent", type=float, help="one step: this percent of requests (e.g. 10), held unless it is 100"
    )
    share.add_argument(
        "--steps",
        type=_percents,
        default=(5.0, 25.0, 100.0),
        help="percents of requests, comma-separated, increasing (default 5,25,100)",
    )
    canary.add_argument("--dwell", type=float, default=300.0, help="seconds each step lasts at least (default 300)")
    from botscore.model.canary import Guardrails  # the guardrails' defaults are the plan's, stated once

    defaults = Guardrails()
    for flag, name, kind, help_text in (
        ("--window", "window_seconds", float, "seconds of each worker's calls its guardrails judge"),
        ("--min-calls", "min_calls", int, "canary calls a window needs before it is judged or a step moves on"),
        ("--max-error-excess", "max_error_excess", float, "the candidate's 5xx share over production's, a share"),
        ("--max-refusal-excess", "max_refusal_excess", float, "its 4xx share over production's, a share"),
        ("--max-latency-ratio", "max_latency_ratio", float, "its p95 latency over production's"),
        ("--max-score-psi", "max_score_psi", float, "PSI of its scores against production's on the same calls"),
        ("--max-disagreement", "max_disagreement", float, "share of calls the two put on opposite sides"),
    ):
        default = getattr(defaults, name)
        canary.add_argument(flag, dest=name, type=kind, default=default, help=f"{help_text} (default {default:g})")
    status = actions.add_parser("status", help="what the pointers name, and what a running service serves")
    status.add_argument("--url", help="a running service, e.g. http://127.0.0.1:8887 (its /metrics is read)")
    model.set_defaults(run=_model)

    for name, help_text in TRAINING_COMMANDS.items():
        commands.add_parser(name, help=f"{help_text} (needs botscore-train)", add_help=False)

    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
