"""The labelled dataset: generated with a fixed seed, read back with its SHA-256, split the same way every time.

The features, as a payments platform would log them per checkout:

- x1: log10 of the seconds from loading the checkout page to submitting payment.
  People take half a minute to a few minutes; scripts submit within seconds, though
  careful bots add random delays, so the classes overlap.
- x2: log10(1 + checkout attempts from the same client IP in the past hour).
  Most people try once or twice; bots retry and rotate cards, but share IPs with
  people behind carrier NAT, so again the classes overlap.

The dataset is synthetic, drawn from those class-conditional distributions with a fixed
seed, and shipped as CSV (the file is the source of truth; its SHA-256 is in the artifact).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from pathlib import Path
from typing import Any

SEED = 20261127
ROWS = 20_000
BOT_SHARE = 0.2
TEST_SIZE = 0.25
DATA_FILE = Path(__file__).resolve().parents[3] / "data" / "transactions.csv"  # in the repository


def generate_dataset(rows: int = ROWS, seed: int = SEED) -> bytes:
    """The CSV (x1, x2, is_bot) drawn deterministically from `seed`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    is_bot = rng.random(rows) < BOT_SHARE
    fast = rng.random(rows) < 0.6  # scripted bots without delays
    human_x1 = rng.normal(1.75, 0.35, rows)
    bot_x1 = np.where(fast, rng.normal(0.7, 0.35, rows), rng.normal(1.45, 0.4, rows))
    human_x2 = np.abs(rng.normal(0.25, 0.25, rows))
    bot_x2 = np.abs(rng.normal(0.75, 0.45, rows))
    x1 = np.where(is_bot, bot_x1, human_x1)
    x2 = np.where(is_bot, bot_x2, human_x2)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["x1", "x2", "is_bot"])
    for a, b, label in zip(x1, x2, is_bot, strict=True):
        writer.writerow([f"{a:.6f}", f"{b:.6f}", int(label)])
    return out.getvalue().encode()


class DataError(Exception):
    """A CSV that cannot be trained or evaluated on; the message names the file, the row and the problem."""


COLUMNS = ("x1", "x2", "is_bot")
# How the shipped data was made, for the model card: one copy, next to the code that makes it.
SYNTHETIC_DESCRIPTION = (
    f"Synthetic: {ROWS:,} checkouts drawn by `botscore make-data` with numpy's default generator and seed "
    f"{SEED}, {BOT_SHARE:.0%} of them bots. Humans: x1 ~ Normal(1.75, 0.35) (about a minute to pay), "
    "x2 ~ |Normal(0.25, 0.25)|. Bots: 60% scripted, x1 ~ Normal(0.7, 0.35) (5 s), 40% careful, adding "
    "delays, x1 ~ Normal(1.45, 0.4); x2 ~ |Normal(0.75, 0.45)|. No real transaction went into it: the "
    "distributions are assumptions about a typical checkout, not measurements."
)


def read_dataset(path: Path) -> tuple[list[list[float]], list[int], str]:
    """Features, labels and the file's SHA-256, from a CSV with the columns x1, x2 and is_bot (0 or 1).

    Raises DataError naming the row for anything else: a missing column, a number that is not
    finite, a label other than 0 or 1, or a file without both classes.
    """
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: no column {', '.join(missing)} (the columns must be x1, x2, is_bot)")
    features, labels = [], []
    for line, row in enumerate(reader, start=2):
        try:
            x1, x2 = float(row["x1"]), float(row["x2"])
        except (TypeError, ValueError):
            raise DataError(f"{path}, line {line}: x1 and x2 must be numbers") from None
        if not (math.isfinite(x1) and math.isfinite(x2)):
            raise DataError(f"{path}, line {line}: x1 and x2 must be finite numbers")
        if row["is_bot"] not in ("0", "1"):
            raise DataError(f"{path}, line {line}: is_bot must be 0 (human) or 1 (bot), got {row['is_bot']!r}")
        features.append([x1, x2])
        labels.append(int(row["is_bot"]))
    if len(set(labels)) < 2:
        raise DataError(f"{path}: needs rows of both classes (is_bot 0 and 1), has {len(labels)} rows of {set(labels)}")
    return features, labels, hashlib.sha256(raw).hexdigest()


def write_dataset(path: Path, features: list[list[float]], labels: list[int]) -> None:
    """Write rows as a CSV that `read_dataset` reads back exactly (repr keeps every digit)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for (x1, x2), label in zip(features, labels, strict=True):
        writer.writerow([repr(float(x1)), repr(float(x2)), int(label)])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(out.getvalue())


def split(features: list[list[float]], labels: list[int]) -> tuple[list[Any], list[Any], list[int], list[int]]:
    """The stratified train/held-out split every metric and plot is computed on (fixed seed)."""
    from sklearn.model_selection import train_test_split

    parts: tuple[list[Any], list[Any], list[int], list[int]] = train_test_split(
        features, labels, test_size=TEST_SIZE, stratify=labels, random_state=SEED
    )
    return parts
