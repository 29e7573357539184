"""RecBole's SASRec trained and judged on penchant's leave-last-out split, as a peer for ours.

RecBole (`recbole` 1.2.x) trains its own `SASRec` with its own `SequentialDataset`,
`TrainDataLoader` and `Trainer` on exactly the training pairs of a penchant `Split`; the
trained model then scores every item for each test user from that user's training sequence
(`full_sort_predict`), and the top lists, mapped back into penchant's item codes with the
user's training items left out, are scored by penchant's `ranking_metrics`, as
`evaluate_model` scores penchant's own models.

How RecBole is kept to the split given:

- The training pairs go to RecBole as an atomic `.inter` file whose tokens are penchant's
  user and item codes and whose timestamp is each pair's position in its user's sequence
  (ordered by `first_ts`, ties by storage order, as `leave_last_out` orders them), so
  RecBole's stable sort by (user, time) cannot reorder a sequence. Its filters are open and
  its duplicate removal is off, so it drops nothing.
- RecBole's `Dataset.build` (which makes the training rows: every prefix of a training
  sequence, up to `max_len` long, predicting the next item) splits by ratios [1, 0, 0], so
  every row trains; `data_preparation` and the validation and test parts are never used.
  `Trainer.fit` runs without validation data, so it trains exactly `epochs` epochs, with no
  early stopping or model selection. The rows are checked against penchant's sequences
  before training.
- RecBole remaps tokens to its own ids (0 is padding); scores come back through its
  `id2token`. Items that only occur in test pairs are unknown to RecBole and never ranked.

Compatibility with today's stack, patched in this process only (site-packages untouched):
numpy 2 removed `np.float_`, `np.complex_` and `np.unicode_`, which `Config` reads to restore
the older aliases (`np.float`...) RecBole still uses, so they are defined first; and
`recbole.utils` imports `torch.utils.tensorboard` (which needs tensorboard, protobuf and
absl) for a writer the trainer opens under `./log_tensorboard`, so a no-op writer stands in.

Install (no dependency of the environment changes):

    .venv/bin/pip install --no-deps 'recbole==1.2.1' colorama texttable

Run:

    .venv/bin/python bench/sasrec_peer.py --dataset beauty --epochs 20
    .venv/bin/python bench/sasrec_peer.py --dataset ml-latest-small --max-len 200 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import scipy.sparse as sp
import torch

from penchant.data import Dataset, Split, build_dataset
from penchant.data.splits import leave_last_out
from penchant.evaluation.metrics import ranking_metrics
from penchant.evaluation.run import evaluate_model
from penchant.jobs.evaluate import EvaluateOptions, load_events
from penchant.models import Popular

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {
    "beauty": (ROOT.parent / "shared/datasets/amazon-beauty-seq/Beauty.txt", "amazon-beauty"),
    "ml-latest-small": (
        ROOT.parent / "shared/datasets/movielens-latest-small/ratings.csv",
        "movielens",
    ),
}
#: Each dataset's default longest input sequence (SASRec's `max_len`).
MAX_LEN = {"beauty": 50, "ml-latest-small": 200}
KS = (10, 20)
TOP = max(KS)
#: Test users scored per forward pass.
SCORE_BATCH = 1024
CodeArray = np.ndarray[Any, np.dtype[np.int64]]


class _NoWriter:
    """Stands in for tensorboard's `SummaryWriter`: RecBole's trainer logs to it, we do not."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _recbole_compat() -> None:
    """Let recbole 1.2.1 import and configure itself under numpy 2 without tensorboard.

    Also silences the FutureWarning pandas 2.3 gives for RecBole's chained `fillna(...,
    inplace=True)`: our files have no missing value for it to fill.
    """
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
    for name, value in {
        "float_": np.float64,
        "complex_": np.complex128,
        "unicode_": np.str_,
    }.items():
        if not hasattr(np, name):
            setattr(np, name, value)
    writer = types.ModuleType("torch.utils.tensorboard")
    writer.SummaryWriter = _NoWriter  # type: ignore[attr-defined]
    sys.modules.setdefault("torch.utils.tensorboard", writer)


def training_sequences(train: Dataset) -> tuple[CodeArray, CodeArray, CodeArray]:
    """Every training pair in sequence order: user codes, item codes and positions.

    Pairs are ordered by user, then `first_ts`, ties by storage order (`leave_last_out`'s
    order); a position counts from 0 within each user.
    """
    order = np.lexsort((np.arange(len(train)), train.first_ts, train.users))
    users = train.users[order].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    sizes = np.diff(np.r_[starts, len(users)])
    positions = np.arange(len(users)) - np.repeat(starts, sizes)
    return users, train.items[order].astype(np.int64), positions


def recbole_sasrec(
    split: Split,
    *,
    max_len: int,
    dim: int,
    blocks: int,
    heads: int,
    dropout: float,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    loss: str = "CE",
    rng: int = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train RecBole's SASRec on the split's training pairs and rank for its test users.

    Args:
        split: the split; its training pairs are all RecBole sees.
        max_len: longest input sequence (`MAX_ITEM_LIST_LENGTH`).
        dim: embedding and hidden size (`hidden_size`); the feed-forward layer is 4 * dim
            wide, RecBole's default ratio.
        blocks: transformer layers (`n_layers`).
        heads: attention heads (`n_heads`).
        dropout: `hidden_dropout_prob` and `attn_dropout_prob`.
        epochs: training epochs, all of them run.
        batch_size: training batch size.
        learning_rate: Adam's learning rate.
        loss: `CE` (softmax over every item) or `BPR` (one uniform negative per target).
        rng: RecBole's seed (`init_seed`, the data loader's shuffling).
        threads: torch's intra-op threads (None: torch's default).

    Returns:
        `users` (test user codes, as `evaluate_model` finds them), `recommended` (users x 20
        penchant item codes, best first, -1 padding), `seconds_per_epoch` (wall),
        `cpu_seconds_per_epoch` (this process's CPU time), `fit_seconds`,
        `rank_seconds`, `last_epoch_loss` (mean per batch) and `info` (RecBole's vocabulary
        sizes...).
    """
    _recbole_compat()
    from recbole.config import Config
    from recbole.data.dataloader import TrainDataLoader
    from recbole.data.dataset import SequentialDataset
    from recbole.model.sequential_recommender import SASRec
    from recbole.sampler import RepeatableSampler
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    if threads is not None:
        torch.set_num_threads(threads)
    users, items, positions = training_sequences(split.train)
    settings = {
        "seed": rng,
        "MAX_ITEM_LIST_LENGTH": max_len,
        "hidden_size": dim,
        "inner_size": 4 * dim,
        "n_layers": blocks,
        "n_heads": heads,
        "hidden_dropout_prob": dropout,
        "attn_dropout_prob": dropout,
        "loss_type": loss,
        "train_neg_sample_args": (
            None if loss == "CE" else {"distribution": "uniform", "sample_num": 1}
        ),
        "epochs": epochs,
        "train_batch_size": batch_size,
        "learning_rate": learning_rate,
    }
    with tempfile.TemporaryDirectory() as tmp:
        _write_inter(Path(tmp) / "penchant", users, items, positions)
        settings |= _fixed_settings(Path(tmp))
        # RecBole's Config also reads `--key=value` from sys.argv; ours are not for it
        with mock.patch.object(sys, "argv", sys.argv[:1]):
            config = Config(model="SASRec", dataset="penchant", config_dict=settings)
        init_seed(rng, True)
        dataset = SequentialDataset(config).build()[0]
        code_of = np.full(dataset.item_num, -1, dtype=np.int64)
        known = np.arange(1, dataset.item_num)
        code_of[1:] = dataset.id2token(dataset.iid_field, known).astype(np.int64)
        _check_training_rows(dataset, code_of, users, items, positions, max_len)

        init_seed(rng, True)
        model = SASRec(config, dataset).to(config["device"])
        sampler = None
        if loss != "CE":
            sampler = RepeatableSampler(["train"], dataset, "uniform").set_phase("train")
        train_data = TrainDataLoader(config, dataset, sampler, shuffle=True)
        trainer = Trainer(config, model)  # opens its checkpoint folder: inside tmp
        started, cpu_started = time.perf_counter(), time.process_time()
        trainer.fit(train_data, valid_data=None, verbose=False, saved=False)
        fit_seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started

    test = split.test.matrix
    test_users = np.flatnonzero(np.diff(test.indptr) > 0).astype(np.int64)
    started = time.perf_counter()
    recommended = _rank_users(model, split, test_users, (users, items), code_of, max_len)
    rank_seconds = time.perf_counter() - started
    return {
        "users": test_users,
        "recommended": recommended,
        "seconds_per_epoch": fit_seconds / epochs,
        "cpu_seconds_per_epoch": cpu_seconds / epochs,
        "fit_seconds": fit_seconds,
        "rank_seconds": rank_seconds,
        "last_epoch_loss": trainer.train_loss_dict[epochs - 1] / len(train_data),
        "info": {
            "recbole_items": dataset.item_num - 1,
            "recbole_users": dataset.user_num - 1,
            "training_rows": len(dataset),
            "batches_per_epoch": len(train_data),
            "device": str(config["device"]),
            "torch_threads": torch.get_num_threads(),
            "recbole_config": {k: config[k] for k in ("inner_size", "hidden_act", "loss_type")},
        },
    }


def _write_inter(folder: Path, users: CodeArray, items: CodeArray, positions: CodeArray) -> None:
    """The training pairs as RecBole's atomic `penchant.inter` in `folder`.

    Tokens are penchant's codes; the timestamp is the pair's position in its sequence.
    """
    folder.mkdir()
    with (folder / "penchant.inter").open("w") as out:
        out.write("user_id:token\titem_id:token\ttimestamp:float\n")
        out.writelines(f"{u}\t{i}\t{p}\n" for u, i, p in zip(users, items, positions, strict=True))


def _fixed_settings(tmp: Path) -> dict[str, Any]:
    """RecBole settings that keep it to our data: CPU, quiet, no filter, no split."""
    return {
        "data_path": str(tmp),
        "checkpoint_dir": str(tmp / "saved"),
        "gpu_id": "",
        "use_gpu": False,
        "reproducibility": True,
        "show_progress": False,
        "worker": 0,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "rm_dup_inter": None,
        "val_interval": None,
        "filter_inter_by_user_or_item": False,
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        # RecBole's own split keeps every row in training: the split is ours
        "eval_args": {"split": {"RS": [1.0, 0.0, 0.0]}, "group_by": "none", "order": "TO"},
    }


def _rank_users(
    model: Any,
    split: Split,
    test_users: CodeArray,
    sequences: tuple[CodeArray, CodeArray],
    code_of: CodeArray,
    max_len: int,
) -> CodeArray:
    """Top-`TOP` penchant item codes per test user from the model's `full_sort_predict`.

    Args:
        model: the trained RecBole SASRec.
        split: the split (training items are left out).
        test_users: user codes to rank for.
        sequences: `training_sequences`'s user and item codes.
        code_of: RecBole item id -> penchant item code (-1 for padding).
        max_len: longest input sequence.
    """
    from recbole.data.interaction import Interaction

    users, items = sequences
    internal = np.zeros(split.train.n_items, dtype=np.int64)
    internal[code_of[1:]] = np.arange(1, len(code_of))
    history = split.train.matrix[test_users]
    recommended = np.full((len(test_users), TOP), -1, dtype=np.int64)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(test_users), SCORE_BATCH):
            block = test_users[start : start + SCORE_BATCH]
            seqs, lengths = _input_sequences(block, users, items, internal, max_len)
            batch = Interaction(
                {model.ITEM_SEQ: torch.from_numpy(seqs), model.ITEM_SEQ_LEN: lengths}
            )
            scores = model.full_sort_predict(batch).numpy()
            full = np.full((len(block), split.train.n_items), -np.inf, dtype=np.float32)
            full[:, code_of[1:]] = scores[:, 1:]  # items RecBole never saw stay -inf
            recommended[start : start + len(block)] = rank_top(
                full, history[start : start + len(block)], TOP
            )
    return recommended


def _check_training_rows(
    dataset: Any,
    code_of: CodeArray,
    users: CodeArray,
    items: CodeArray,
    positions: CodeArray,
    max_len: int,
) -> None:
    """Raise unless RecBole's augmented rows are exactly our sequences' prefixes.

    There must be one row per pair at a position p > 0 of its user's sequence: its target
    that pair's item, its input the up to `max_len` items before it, oldest first, zero
    padded. A row's timestamp is its target's position, which finds the pair.
    """
    rows = dataset.inter_feat
    n_targets = int((positions > 0).sum())
    if len(rows) != n_targets:
        raise RuntimeError(f"RecBole made {len(rows)} training rows, expected {n_targets}")
    row_users = dataset.id2token(dataset.uid_field, rows[dataset.uid_field].numpy())
    row_positions = rows[dataset.time_field].numpy().astype(np.int64)
    starts = np.searchsorted(users, row_users.astype(np.int64))
    at = starts + row_positions  # each row's pair in our sequence order
    if (
        np.unique(at).size != n_targets
        or not np.array_equal(users[at], row_users.astype(np.int64))
        or not np.array_equal(positions[at], row_positions)
    ):
        raise RuntimeError("RecBole's training rows are not our pairs, one row each")
    if not np.array_equal(code_of[rows[dataset.iid_field].numpy()], items[at]):
        raise RuntimeError("RecBole's training targets are not our sequences' items")
    inputs = code_of[rows[dataset.item_id_list_field].numpy()]
    lengths = rows[dataset.item_list_length_field].numpy()
    first = np.maximum(starts, at - max_len)
    if not np.array_equal(lengths, at - first):
        raise RuntimeError("RecBole's training inputs are not our sequences' prefixes")
    for column in range(max_len):
        filled = column < lengths
        want = np.where(filled, items[np.minimum(first + column, len(items) - 1)], -1)
        if not np.array_equal(inputs[:, column], want):
            raise RuntimeError("RecBole's training inputs are not our sequences' prefixes")


def _input_sequences(
    block: CodeArray, users: CodeArray, items: CodeArray, internal: CodeArray, max_len: int
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], torch.Tensor]:
    """Each user's last `max_len` training items in RecBole ids, oldest first, zero padded
    on the right, as RecBole's own sequences are laid out; and their lengths."""
    starts = np.searchsorted(users, block, side="left")
    ends = np.searchsorted(users, block, side="right")
    seqs = np.zeros((len(block), max_len), dtype=np.int64)
    lengths = np.minimum(ends - starts, max_len)
    for row, (end, length) in enumerate(zip(ends, lengths, strict=True)):
        seqs[row, :length] = internal[items[end - length : end]]
    return seqs, torch.from_numpy(lengths.astype(np.int64))


def rank_top(scores: np.ndarray[Any, Any], history: sp.csr_matrix, k: int) -> CodeArray:
    """The k best item codes of each row, the row's history left out; -1 for -inf slots."""
    coo = history.tocoo()
    masked = torch.from_numpy(scores.astype(np.float32, copy=True))
    masked[coo.row, coo.col] = -np.inf
    values, codes = torch.topk(masked, k, dim=1)
    out = codes.numpy().astype(np.int64)
    out[~torch.isfinite(values).numpy()] = -1
    return out


def popularity_check(split: Split) -> dict[str, dict[str, float]]:
    """Popularity's lists and NDCG@10 by this harness and by penchant's `evaluate_model`.

    Penchant's `Popular` is fitted and judged by `evaluate_model`; its item scores are then
    ranked by `rank_top` for the same users and judged here. The two must agree, or the
    harness and penchant do not judge the same thing. All-time counts tie often, and each
    side breaks ties its own way; a trending popularity (half-life 365 days) hardly ties,
    so its lists must match.
    """
    out: dict[str, dict[str, float]] = {}
    for label, model in (("counts", Popular()), ("trending", Popular(half_life_days=365.0))):
        result = evaluate_model(model, split, KS)
        item_scores = result.model.item_scores_  # type: ignore[attr-defined]
        history = split.train.matrix[result.users]
        ours = np.empty((len(result.users), TOP), dtype=np.int64)
        for start in range(0, len(result.users), SCORE_BATCH):
            rows = history[start : start + SCORE_BATCH]
            scores = np.tile(item_scores, (rows.shape[0], 1))
            ours[start : start + rows.shape[0]] = rank_top(scores, rows, TOP)
        metrics = ranking_metrics(ours, split.test.matrix[result.users], KS)
        out[label] = {
            "harness_ndcg@10": float(metrics["ndcg@10"].mean()),
            "penchant_ndcg@10": result.mean("ndcg@10"),
            "identical_lists": float((ours == result.recommended[:, :TOP]).all(axis=1).mean()),
        }
    return out


def recbole_ndcg(recommended: CodeArray, relevant: sp.csr_matrix, k: int) -> float:
    """Mean NDCG@k of the lists by RecBole's own evaluator metric (`recbole...metrics.NDCG`)."""
    _recbole_compat()
    from recbole.evaluator.metrics import NDCG

    rows = np.arange(len(recommended))[:, None]
    hits = np.asarray(relevant[rows, np.maximum(recommended, 0)].todense() != 0)
    hits &= recommended >= 0
    n_relevant = np.diff(relevant.indptr)
    metric = NDCG({"topk": [k], "metric_decimal_place": 6})
    return float(metric.metric_info(hits, n_relevant)[:, k - 1].mean())


def load_split(name: str) -> tuple[Split, dict[str, int]]:
    """A dataset read as `penchant evaluate` reads it, split leave-last-out."""
    path, fmt = DATASETS[name]
    options = EvaluateOptions(dataset=path, output=Path("unused"), format=fmt)
    with tempfile.TemporaryDirectory() as tmp:
        data = build_dataset(load_events(options, Path(tmp) / "rejects.jsonl"), options.weighting)
    sizes = {"users": data.n_users, "items": data.n_items, "pairs": len(data)}
    return leave_last_out(data), sizes


def main(argv: Sequence[str] | None = None) -> None:
    """Train RecBole's SASRec on a dataset's leave-last-out split and print its metrics."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="beauty")
    parser.add_argument("--max-len", type=int, help="default 50 (beauty), 200 (ml-latest-small)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--loss", choices=["CE", "BPR"], default="CE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)

    split, sizes = load_split(args.dataset)
    budget = {
        "max_len": args.max_len or MAX_LEN[args.dataset],
        "dim": args.dim,
        "blocks": args.blocks,
        "heads": args.heads,
        "dropout": args.dropout,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "loss": args.loss,
    }
    run = recbole_sasrec(split, **budget, rng=args.seed, threads=args.threads)
    # the data and RecBole's run alone: the checks below allocate on their own
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    relevant = split.test.matrix[run["users"]]
    metrics = ranking_metrics(run["recommended"], relevant, KS)
    document = {
        "dataset": args.dataset,
        **sizes,
        "split": split.info,
        "budget": budget,
        "seed": args.seed,
        "ndcg@10": float(metrics["ndcg@10"].mean()),
        "recall@10": float(metrics["recall@10"].mean()),
        "ndcg@20": float(metrics["ndcg@20"].mean()),
        "recall@20": float(metrics["recall@20"].mean()),
        "recbole_evaluator_ndcg@10": recbole_ndcg(run["recommended"], relevant, 10),
        "popularity_check": popularity_check(split),
        "seconds_per_epoch": run["seconds_per_epoch"],
        "cpu_seconds_per_epoch": run["cpu_seconds_per_epoch"],
        "fit_seconds": run["fit_seconds"],
        "rank_seconds": run["rank_seconds"],
        "last_epoch_loss": run["last_epoch_loss"],
        "peak_rss_mib": peak_rss_mib,
        "info": run["info"],
    }
    if args.json:
        print(json.dumps(document, indent=2))
        return
    for key in ("ndcg@10", "recall@10", "ndcg@20", "recbole_evaluator_ndcg@10"):
        print(f"{key:>26}: {document[key]:.4f}")
    print(f"{'seconds per epoch':>26}: {document['seconds_per_epoch']:.1f}")
    print(f"{'peak RSS (MiB)':>26}: {document['peak_rss_mib']:.0f}")
    print(f"{'popularity check':>26}: {document['popularity_check']}")


if __name__ == "__main__":
    main()
