"""`botscore train`, `botscore import-model`, `botscore make-data`: parses arguments and hands over."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from botscore.settings import SHIPPED_MODEL
from botscore_train.dataset import DATA_FILE

SHIPPED_CARD = Path(__file__).resolve().parents[3] / "docs" / "model-card.md"


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


def _make_data(args: argparse.Namespace) -> None:
    from botscore_train.dataset import generate_dataset

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(generate_dataset())
    print(f"wrote {args.output}")


def _train(args: argparse.Namespace) -> None:
    from botscore_train import training

    card = _card_for(args.output, args.card)
    document = training.train(args.data, args.output, card=card, progress=_progress())
    print(f"wrote {args.output}: version {document['version']}")
    print(f"wrote {card} and its plots in {card.parent / card.stem}/")
    print(json.dumps(document["metrics"], indent=2))


def _import_model(args: argparse.Namespace) -> None:
    from botscore_train import importer

    card = _card_for(args.output, args.card) if args.data is not None else None
    try:
        document = importer.import_model(
            args.path, args.output, trust_pickle=args.trust_pickle, data=args.data, card=card, progress=_progress()
        )
    except importer.ImportRefused as exc:
        sys.exit(f"botscore: {exc}")
    print(f"wrote {args.output}: version {document['version']}")
    if card is not None:
        print(f"wrote {card} and its plots in {card.parent / card.stem}/")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="botscore", description="Training commands of botscore.")
    commands = parser.add_subparsers(dest="command", required=True)

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

    make_data = commands.add_parser("make-data", help="regenerate the synthetic training data (fixed seed)")
    make_data.add_argument("--output", type=Path, default=DATA_FILE)
    make_data.set_defaults(run=_make_data)

    args = parser.parse_args(argv)
    args.run(args)
