"""Write a synthetic event CSV with realistic cardinalities, for the bulk-import benchmark.

    .venv/bin/python bench/make_synthetic.py --rows 10000000 --out bench/out/synthetic-10m.csv

Users and items are drawn from Zipf-like popularity (a few heavy users and hit items, a long
tail), types from a typical funnel mix, ratings 1..5 with a value, the rest without one, and
timestamps increase over one year. The same arguments always write the same file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

TYPES = np.array(["view", "click", "add_to_cart", "purchase", "rating"])
TYPE_SHARE = np.array([0.70, 0.15, 0.05, 0.03, 0.07])
START = 1_672_531_200  # 2023-01-01T00:00:00Z
YEAR = 365 * 24 * 3600


def _zipf_ids(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    """Ids 0..n-1 with probability falling as rank**-exponent, shuffled so rank != id."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights / weights.sum())
    ranks = np.minimum(np.searchsorted(cdf, rng.random(size)), n - 1)
    return rng.permutation(n)[ranks]


def write(out: Path, rows: int, users: int, items: int, seed: int, chunk: int = 1_000_000) -> None:
    """Write `rows` events to `out` in chunks, so memory stays flat."""
    rng = np.random.default_rng(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("item_id", pa.string()),
            ("type", pa.string()),
            ("value", pa.float64()),
            ("timestamp", pa.int64()),
        ]
    )
    options = pacsv.WriteOptions(quoting_style="needed")
    with pacsv.CSVWriter(str(out), schema, write_options=options) as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            user = _zipf_ids(rng, users, n, 0.8)
            item = _zipf_ids(rng, items, n, 1.0)
            kind = rng.choice(len(TYPES), size=n, p=TYPE_SHARE)
            value = np.where(kind == 4, rng.integers(1, 6, n).astype(np.float64), np.nan)
            stamp = START + (np.arange(start, start + n, dtype=np.int64) * YEAR) // rows
            writer.write_table(
                pa.table(
                    {
                        "user_id": pa.array(np.char.add("u", user.astype(str))),
                        "item_id": pa.array(np.char.add("i", item.astype(str))),
                        "type": pa.array(TYPES[kind]),
                        "value": pa.array(value, mask=np.isnan(value)),
                        "timestamp": pa.array(stamp),
                    },
                    schema=schema,
                )
            )
            print(f"\r{start + n:,} rows", end="", file=sys.stderr)
    print(file=sys.stderr)


def main() -> None:
    """Parse arguments and write the file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("bench/out/synthetic-10m.csv"))
    args = parser.parse_args()
    write(args.out, args.rows, args.users, args.items, args.seed)


if __name__ == "__main__":
    main()
