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


def read_dataset(path: Path) -> tuple[list[list[float]], list[int], str]:
    """Features, labels and the file's SHA-256."""
    raw = path.read_bytes()
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    features = [[float(row["x1"]), float(row["x2"])] for row in rows]
    labels = [int(row["is_bot"]) for row in rows]
    return features, labels, hashlib.sha256(raw).hexdigest()


def split(features: list[list[float]], labels: list[int]) -> tuple[list[Any], list[Any], list[int], list[int]]:
    """The stratified train/held-out split every metric and plot is computed on (fixed seed)."""
    from sklearn.model_selection import train_test_split

    parts: tuple[list[Any], list[Any], list[int], list[int]] = train_test_split(
        features, labels, test_size=TEST_SIZE, stratify=labels, random_state=SEED
    )
    return parts
