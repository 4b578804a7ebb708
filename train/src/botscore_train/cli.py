"""`botscore train`, `import-model`, `make-data`, `split-data`: parses arguments and hands over.

The shipped artifact and its card (docs/model-card.md) are written only when asked with
`--replace-shipped` (as `make model` does): training on your own data never replaces them by accident.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from botscore.settings import SHIPPED_MODEL
from botscore_train.dataset import DATA_FILE, DataError

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


def _refuse_shipped(paths: list[Path], replace_shipped: bool) -> None:
    """Stop before writing over the shipped artifact or card, unless `--replace-shipped` asked for it."""
    shipped = [path for path in paths if path.resolve() in (SHIPPED_MODEL, SHIPPED_CARD.resolve())]
    if shipped and not replace_shipped:
        sys.exit(
            f"botscore: {shipped[0]} is the shipped {'artifact' if shipped[0].suffix == '.json' else 'model card'}; "
            "write elsewhere with --output, or pass --replace-shipped to replace it"
        )


def _make_data(args: argparse.Namespace) -> None:
    from botscore_train.dataset import generate_dataset

    _refuse_shipped_data(args.output, args.replace_shipped)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(generate_dataset())
    print(f"wrote {args.output}")


def _refuse_shipped_data(output: Path, replace_shipped: bool) -> None:
    if output.resolve() == DATA_FILE.resolve() and not replace_shipped:
        sys.exit(f"botscore: {output} is the shipped dataset; write elsewhere with --output, or pass --replace-shipped")


def _train(args: argparse.Namespace) -> None:
    from botscore_train import training

    card = _card_for(args.output, args.card)
    _refuse_shipped([args.output, card], args.replace_shipped)
    try:
        document = training.train(args.data, args.output, card=card, progress=_progress())
    except DataError as exc:
        sys.exit(f"botscore: {exc}")
    print(f"wrote {args.output}: version {document['version']}")
    print(f"wrote {card} and its plots in {card.parent / card.stem}/")
    print(json.dumps(document["metrics"], indent=2))


def _split_data(args: argparse.Namespace) -> None:
    from botscore_train.dataset import read_dataset, split, write_dataset

    try:
        features, labels, _ = read_dataset(args.data)
    except DataError as exc:
        sys.exit(f"botscore: {exc}")
    x_train, x_test, y_train, y_test = split(features, labels)
    write_dataset(args.train_output, x_train, y_train)
    write_dataset(args.test_output, x_test, y_test)
    print(f"wrote {args.train_output}: {len(y_train)} rows to train on")
    print(f"wrote {args.test_output}: {len(y_test)} held-out rows to evaluate on (import-model --data)")


def _import_model(args: argparse.Namespace) -> None:
    from botscore_train import importer

    card = _card_for(args.output, args.card) if args.data is not None else None
    _refuse_shipped([args.output, *([card] if card else [])], args.replace_shipped)
    try:
        document = importer.import_model(
            args.path, args.output, trust_pickle=args.trust_pickle, data=args.data, card=card, progress=_progress()
        )
    except (importer.ImportRefused, DataError) as exc:
        sys.exit(f"botscore: {exc}")
    print(f"wrote {args.output}: version {document['version']}")
    if card is not None:
        print(f"wrote {card} and its plots in {card.parent / card.stem}/")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="botscore", description="Training commands of botscore.")
    commands = parser.add_subparsers(dest="command", required=True)

    replace_help = "allow writing over the shipped artifact, model card or dataset (as `make model` does)"
    train = commands.add_parser("train", help="train the model and write its artifact and model card")
    train.add_argument(
        "--data", type=Path, default=DATA_FILE, help="labelled CSV: columns x1, x2, is_bot (0 or 1); default: ours"
    )
    train.add_argument("--output", type=Path, required=True, help="artifact to write, e.g. models/mine.json")
    train.add_argument("--card", type=Path, help="model card to write (default: OUTPUT with .md)")
    train.add_argument("--replace-shipped", action="store_true", help=replace_help)
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
        "--data",
        type=Path,
        help="labelled CSV (x1, x2, is_bot) to evaluate on: every row is scored, so give rows the model was not "
        "trained on (see split-data); adds the metrics and a model card",
    )
    import_model.add_argument("--card", type=Path, help="model card to write with --data (default: OUTPUT with .md)")
    import_model.add_argument("--replace-shipped", action="store_true", help=replace_help)
    import_model.set_defaults(run=_import_model)

    make_data = commands.add_parser("make-data", help="regenerate the synthetic training data (fixed seed)")
    make_data.add_argument("--output", type=Path, default=DATA_FILE)
    make_data.add_argument("--replace-shipped", action="store_true", help=replace_help)
    make_data.set_defaults(run=_make_data)

    split_data = commands.add_parser(
        "split-data", help="split a labelled CSV into rows to train on and held-out rows, as `train` does"
    )
    split_data.add_argument("data", type=Path, help="labelled CSV: columns x1, x2, is_bot")
    split_data.add_argument("--train-output", type=Path, required=True, help="CSV of the rows to train on (75 %%)")
    split_data.add_argument("--test-output", type=Path, required=True, help="CSV of the held-out rows (25 %%)")
    split_data.set_defaults(run=_split_data)

    args = parser.parse_args(argv)
    args.run(args)
