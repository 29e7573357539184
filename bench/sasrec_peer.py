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

Compatibility with today's stack, patched in this process only (site-packages untouched;
anomaly detection, which RecBole switches on when imported, is switched off again):
numpy 2 removed `np.float_`, `np.complex_` and `np.unicode_`, which `Config` reads to restore
the older aliases (`np.float`...) RecBole still uses, so they are defined first; and
`recbole.utils` imports `torch.utils.tensorboard` (which needs tensorboard, protobuf and
absl) for a writer the trainer opens under `./log_tensorboard`, so a no-op writer stands in.

Install (no dependency of the environment changes):

    .venv/bin/pip install --no-deps 'recbole==1.2.1' colorama texttable

Run:

    .venv/bin/python bench/sasrec_peer.py --dataset beauty --epochs 20
    .venv/bin/python bench/sasrec_peer.py --dataset ml-latest-small --max-len 200 --json

RecBole's full softmax is slow on this CPU (minutes per epoch), so its training can also run
on another machine, with a GPU, that has torch and RecBole but not penchant: `--save-split`
writes the split's arrays here, `--split FILE --save-lists OUT --gpu` trains and ranks there
without importing penchant, and `--judge OUT` scores those lists here, as the one-process run
does:

    .venv/bin/python bench/sasrec_peer.py --dataset beauty --save-split beauty.npz
    python3 bench/sasrec_peer.py --split beauty.npz --epochs 20 --gpu --save-lists lists.npz
    .venv/bin/python bench/sasrec_peer.py --dataset beauty --judge lists.npz --json
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import scipy.sparse as sp
import torch

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


@dataclass(frozen=True)
class Part:
    """The arrays of one part of a split that this harness reads (a `Dataset`'s subset)."""

    users: CodeArray
    items: CodeArray
    first_ts: np.ndarray[Any, np.dtype[np.float64]]
    n_users: int
    n_items: int

    def __len__(self) -> int:
        return len(self.users)

    @property
    def matrix(self) -> sp.csr_matrix:
        """users x items, 1 where a pair is."""
        ones = np.ones(len(self.users), dtype=np.float32)
        shape = (self.n_users, self.n_items)
        return sp.csr_matrix((ones, (self.users, self.items)), shape=shape)


@dataclass(frozen=True)
class SplitArrays:
    """A split as arrays, for a machine without penchant (`--save-split`, `--split`)."""

    train: Part
    test: Part
    info: dict[str, Any]

    def save(self, path: Path) -> None:
        arrays = {
            f"{name}_{field}": getattr(getattr(self, name), field)
            for name in ("train", "test")
            for field in ("users", "items", "first_ts")
        }
        shape = np.array([self.train.n_users, self.train.n_items])
        np.savez_compressed(path, shape=shape, info=json.dumps(self.info), **arrays)

    @classmethod
    def of(cls, split: Any) -> SplitArrays:
        """The arrays of a penchant `Split`."""

        def part(data: Any) -> Part:
            return Part(
                data.users.astype(np.int64),
                data.items.astype(np.int64),
                data.first_ts.astype(np.float64),
                data.n_users,
                data.n_items,
            )

        return cls(part(split.train), part(split.test), dict(split.info))

    @classmethod
    def load(cls, path: Path) -> SplitArrays:
        with np.load(path) as saved:
            n_users, n_items = (int(n) for n in saved["shape"])
            parts = [
                Part(
                    saved[f"{name}_users"],
                    saved[f"{name}_items"],
                    saved[f"{name}_first_ts"],
                    n_users,
                    n_items,
                )
                for name in ("train", "test")
            ]
            return cls(parts[0], parts[1], json.loads(str(saved["info"])))


class _NoWriter:
    """Stands in for tensorboard's `SummaryWriter`: RecBole's trainer logs to it, we do not."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _recbole_compat() -> None:
    """Let recbole 1.2.1 import, configure itself and evaluate under numpy 2 without
    tensorboard.

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
    # what `Config` sets on numpy, for the evaluator when no `Config` ran in this process
    for name, value in {"float": np.float64, "int": np.int_, "bool": np.bool_}.items():
        if name not in np.__dict__:
            setattr(np, name, value)
    writer = types.ModuleType("torch.utils.tensorboard")
    writer.SummaryWriter = _NoWriter  # type: ignore[attr-defined]
    sys.modules.setdefault("torch.utils.tensorboard", writer)


def training_sequences(train: Any) -> tuple[CodeArray, CodeArray, CodeArray]:
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
    split: Any,
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
    gpu: bool = False,
) -> dict[str, Any]:
    """Train RecBole's SASRec on the split's training pairs and rank for its test users.

    Args:
        split: the split (a penchant `Split` or `SplitArrays`); its training pairs are all
            RecBole sees.
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
        gpu: train and rank on the first CUDA device.

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

    # importing `recbole.model.sequential_recommender` runs sine.py, which switches on
    # autograd's anomaly detection for the whole process: every operation then records its
    # stack, which made an epoch 5 to 10 times slower and changes no number
    torch.autograd.set_detect_anomaly(False)
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
        settings |= _fixed_settings(Path(tmp), gpu)
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


def _fixed_settings(tmp: Path, gpu: bool) -> dict[str, Any]:
    """RecBole settings that keep it to our data: quiet, no filter, no split."""
    return {
        "data_path": str(tmp),
        "checkpoint_dir": str(tmp / "saved"),
        "gpu_id": "0" if gpu else "",
        "use_gpu": gpu,
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
    split: Any,
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
            ).to(model.device)
            scores = model.full_sort_predict(batch).cpu().numpy()
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


def popularity_check(split: Any) -> dict[str, dict[str, float]]:
    """Popularity's lists and NDCG@10 by this harness and by penchant's `evaluate_model`.

    Penchant's `Popular` is fitted and judged by `evaluate_model`; its item scores are then
    ranked by `rank_top` for the same users and judged here. The two must agree, or the
    harness and penchant do not judge the same thing. All-time counts tie often, and each
    side breaks ties its own way; a trending popularity (half-life 365 days) hardly ties,
    so its lists must match.
    """
    from penchant.evaluation.metrics import ranking_metrics
    from penchant.evaluation.run import evaluate_model
    from penchant.models import Popular

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


def load_split(name: str) -> tuple[Any, dict[str, int]]:
    """A dataset read as `penchant evaluate` reads it, split leave-last-out."""
    from penchant.data.splits import leave_last_out
    from penchant.jobs.evaluate import EvaluateOptions, read_dataset

    path, fmt = DATASETS[name]
    options = EvaluateOptions(dataset=path, output=Path("unused"), format=fmt)
    data = read_dataset(options)[0]
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
    parser.add_argument("--gpu", action="store_true", help="train on the first CUDA device")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--save-split", type=Path, help="write the split's arrays here, and stop")
    parser.add_argument("--split", type=Path, help="read the split from --save-split's file")
    parser.add_argument("--save-lists", type=Path, help="write the lists here, unjudged")
    parser.add_argument("--judge", type=Path, help="judge --save-lists' file: no training")
    args = parser.parse_args(argv)

    if args.save_split:
        split, sizes = load_split(args.dataset)
        arrays = SplitArrays.of(split)
        SplitArrays(arrays.train, arrays.test, {**arrays.info, **sizes}).save(args.save_split)
        return
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
    if args.judge:
        split, sizes = load_split(args.dataset)
        with np.load(args.judge) as saved:
            run = json.loads(str(saved["run"]))
            run["users"], run["recommended"] = saved["users"], saved["recommended"]
    else:
        if args.split:
            split, sizes = SplitArrays.load(args.split), {}
        else:
            split, sizes = load_split(args.dataset)
        run = recbole_sasrec(split, **budget, rng=args.seed, threads=args.threads, gpu=args.gpu)
        # the data and RecBole's run alone: the checks below allocate on their own
        run["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        run |= {"budget": budget, "seed": args.seed, "dataset": args.dataset}
        if args.save_lists:
            lists = {"users": run.pop("users"), "recommended": run.pop("recommended")}
            np.savez_compressed(args.save_lists, run=json.dumps(run), **lists)
            return
    print(
        json.dumps(judge(split, sizes, run), indent=2)
        if args.json
        else _summary(judge(split, sizes, run))
    )


def judge(split: Any, sizes: dict[str, int], run: dict[str, Any]) -> dict[str, Any]:
    """The report of one RecBole run: its lists scored by penchant and by RecBole."""
    from penchant.evaluation.metrics import ranking_metrics

    relevant = split.test.matrix[run["users"]]
    metrics = ranking_metrics(run["recommended"], relevant, KS)
    return {
        "dataset": run["dataset"],
        **sizes,
        "split": split.info,
        "budget": run["budget"],
        "seed": run["seed"],
        **{
            key: float(metrics[key].mean())
            for key in ("ndcg@10", "recall@10", "ndcg@20", "recall@20")
        },
        "recbole_evaluator_ndcg@10": recbole_ndcg(run["recommended"], relevant, 10),
        "popularity_check": popularity_check(split),
        **{
            key: run[key]
            for key in (
                "seconds_per_epoch",
                "cpu_seconds_per_epoch",
                "fit_seconds",
                "rank_seconds",
                "last_epoch_loss",
                "peak_rss_mib",
                "info",
            )
        },
    }


def _summary(document: dict[str, Any]) -> str:
    lines = [
        f"{key:>26}: {document[key]:.4f}"
        for key in ("ndcg@10", "recall@10", "ndcg@20", "recbole_evaluator_ndcg@10")
    ]
    lines.append(f"{'seconds per epoch':>26}: {document['seconds_per_epoch']:.1f}")
    lines.append(f"{'peak RSS (MiB)':>26}: {document['peak_rss_mib']:.0f}")
    lines.append(f"{'popularity check':>26}: {document['popularity_check']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
