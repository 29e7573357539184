"""SASRec (gBCE) beside implicit ALS on a leave-last-out split, full-catalog ranking.

The dataset is read by penchant's own reader (`load_events` + `build_dataset`, what
`penchant evaluate --format ...` runs), split with `leave_last_out`, and each model is judged
by `evaluate_model` (every item ranked for every test user, the user's training items left
out). SASRec runs first, so the peak RSS measured right after it is that of the data plus
SASRec; the iALS rows follow with default hyperparameters and the `--ials-factors` sizes.

    .venv/bin/python bench/sasrec_eval.py                                   # Amazon Beauty
    .venv/bin/python bench/sasrec_eval.py --dataset ml-latest-small
    .venv/bin/python bench/sasrec_eval.py --epochs 100 --dim 128 --dropout 0.5 --skip-ials

Prints one JSON document to stdout (progress to stderr) and writes it to `--output`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
DATASETS = {
    "beauty": (SHARED / "amazon-beauty-seq" / "Beauty.txt", "amazon-beauty"),
    "ml-latest-small": (SHARED / "movielens-latest-small" / "ratings.csv", "movielens"),
}
KS = (10, 20)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load(name: str) -> Any:
    """The dataset as `penchant evaluate --format <preset>` builds it."""
    from penchant.jobs.evaluate import EvaluateOptions, read_dataset

    path, preset = DATASETS[name]
    options = EvaluateOptions(dataset=path, output=Path(tempfile.gettempdir()), format=preset)
    return read_dataset(options)[0]


def judged(model: Any, split: Any, label: str) -> dict[str, Any]:
    """Fit and rank with `evaluate_model`; the numbers a row reports."""
    from penchant.evaluation.run import evaluate_model

    result = evaluate_model(model, split, KS, label=label)
    row = {
        "model": label,
        "params": model.get_params(),
        "ndcg@10": round(result.mean("ndcg@10"), 5),
        "recall@10": round(result.mean("recall@10"), 5),
        "ndcg@20": round(result.mean("ndcg@20"), 5),
        "recall@20": round(result.mean("recall@20"), 5),
        "fit_seconds": round(result.fit_seconds, 2),
        "rank_seconds": round(result.rank_seconds, 2),
    }
    _log(json.dumps(row))
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="beauty")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--dim", type=int)
    parser.add_argument("--max-len", type=int)
    parser.add_argument("--blocks", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--dropout", type=float)
    parser.add_argument("--negatives", type=int)
    parser.add_argument("--gbce-t", type=float)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--rng", type=int, default=0)
    parser.add_argument("--ials-factors", default="32,128", help="extra iALS sizes ('' none)")
    parser.add_argument(
        "--curve",
        type=int,
        default=0,
        help="judge SASRec every N epochs while it trains (on the split judged)",
    )
    parser.add_argument(
        "--validation",
        action="store_true",
        help="judge on each user's last training item instead (for tuning)",
    )
    parser.add_argument("--skip-ials", action="store_true")
    parser.add_argument("--skip-sasrec", action="store_true")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    from penchant.data.splits import leave_last_out
    from penchant.evaluation.run import evaluate_model
    from penchant.models import ImplicitALS
    from penchant.models.sasrec import SASRec

    started = time.perf_counter()
    data = load(args.dataset)
    the_split = leave_last_out(data)
    if args.validation:
        the_split = leave_last_out(the_split.train)
    doc: dict[str, Any] = {
        "dataset": args.dataset,
        "protocol": "leave-last-out"
        + (" (validation: the training pairs split again)" if args.validation else ""),
        "users": data.n_users,
        "items": data.n_items,
        "interactions": len(data),
        "split": the_split.info,
        "load_seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mib_after_load": round(_peak_mib()),
        "rows": [],
    }
    _log(json.dumps({k: v for k, v in doc.items() if k != "rows"}))

    if not args.skip_sasrec:
        names = [
            *("epochs", "dim", "max_len", "blocks", "heads", "dropout", "negatives"),
            *("gbce_t", "learning_rate", "batch_size", "threads"),
        ]
        params = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
        model = SASRec(rng=args.rng, **params)

        curve: list[dict[str, float]] = []

        def on_epoch(epoch: int, loss: float) -> None:
            _log(f"sasrec epoch {epoch}: loss {loss:.4f} ({model.epoch_seconds_[-1]:.1f} s)")
            if args.curve and epoch % args.curve == 0 and epoch < model.epochs:
                result = evaluate_model(model, the_split, KS, fit=False)
                curve.append({"epoch": epoch, "ndcg@10": round(result.mean("ndcg@10"), 5)})
                _log(json.dumps(curve[-1]))

        model.on_epoch = on_epoch
        row = judged(model, the_split, "sasrec")
        row["seconds_per_epoch"] = round(
            sum(model.epoch_seconds_) / max(len(model.epoch_seconds_), 1), 2
        )
        row["losses"] = [round(v, 4) for v in model.losses_]
        row["peak_rss_mib"] = round(_peak_mib())
        if curve:
            row["curve"] = curve
        doc["rows"].append(row)

    if not args.skip_ials:
        sizes = [int(f) for f in args.ials_factors.split(",") if f.strip()]
        doc["rows"].append(judged(ImplicitALS(rng=args.rng), the_split, "ials"))
        for factors in sizes:
            ials = ImplicitALS(factors=factors, rng=args.rng)
            doc["rows"].append(judged(ials, the_split, f"ials-{factors}"))

    text = json.dumps(doc, indent=2)
    print(text)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    return doc


if __name__ == "__main__":
    main()
