"""SASRec, a self-attentive next-item model (Kang & McAuley 2018), trained with the gBCE loss
of gSASRec (Petrov & Macdonald 2023), in PyTorch on the CPU (`pip install 'penchant[deep]'`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import InvalidInput, import_extra
from penchant.models.base import Arrays, CodeArray, Recommender, ScoreArray, unit_cosines

if TYPE_CHECKING:
    import torch

IndexArray = np.ndarray[Any, np.dtype[np.int64]]
#: Sequences per forward pass when scoring.
_SCORE_BATCH = 512
#: Prefix of the saved network parameters: `net__blocks__0__qkv__weight`, ...
_NET = "net__"


def _torch() -> Any:
    """The torch module, imported on first use."""
    return import_extra("torch", "deep", "the sasrec model")


class SASRec(Recommender):
    """Next-item prediction from the order of a user's items, by causal self-attention.

    Each training user's items, ordered by time (ties by storage order, as in
    `leave_last_out`), are a sequence; each item after the first is a target, with the items
    before it as input. A sequence longer than `max_len + 1` is cut, from its end, into
    windows of `max_len` targets (`training_windows`), so that an epoch learns from every
    target once. At every position the network reads the items so far (item
    embeddings plus learned position embeddings, counted from the oldest item in the window;
    `blocks` pre-norm transformer blocks of causal attention and a ReLU feed-forward layer;
    a final layer norm) and scores every item by a dot product with the same item embeddings
    it reads its input with, plus one learned offset shared by all items (it changes no
    ranking).

    The loss is the generalized binary cross-entropy of gSASRec, per position:
    `-beta * log sigmoid(s_pos) - sum over negatives of log(1 - sigmoid(s_neg))`, with
    `beta = alpha * (t * (1 - 1/alpha) + 1/alpha)`, `alpha = negatives / (n_items - 1)` and
    `t = gbce_t`; it corrects the overconfidence that sampling negatives gives plain BCE
    (`gbce_t=0`). The `negatives` items are drawn uniformly once per batch and shared by its
    positions (a draw that is a position's own next item does not count for it): scoring
    them is one small matrix product, where a draw per position gathers `negatives`
    embeddings per position (on Amazon Beauty: 4x the time per epoch, for about the
    accuracy that drawing 4x as many shared negatives gives). The offset starts at the
    loss's best constant, `log(beta / negatives)`. Batches group sequences of similar
    length and are cut to the longest one, so short histories cost little padding.

    A known user is scored from their stored training sequence; a user the model did not
    train on (or one given with a history) from the items of the history row, ordered by
    weight and then by item code, so that a recency-weighted history ends with the newest
    item. `score_sequences` scores given item sequences (what a serving stage calls).
    Similar items are the nearest item embeddings by cosine.

    Args:
        max_len: how many of a user's latest items the network reads.
        dim: embedding and hidden width.
        blocks: transformer blocks.
        heads: attention heads (must divide `dim`).
        dropout: dropout rate of embeddings, attention and feed-forward layers.
        epochs: passes over the training targets.
        batch_size: sequences per training step.
        learning_rate: Adam's step size.
        negatives: items sampled per batch (at most the catalog size minus one is used).
        gbce_t: gBCE calibration, 0 (plain BCE) to 1.
        rng: seed of the initialization, dropout and sampling (None: unseeded).
        threads: torch threads in fit and scoring (None: torch's default).

    Attributes:
        on_epoch: not a hyperparameter: set it after construction to a callable that gets
            `(epoch, mean loss)` after each training epoch (epochs count from 1); it may
            score the model (e.g. on a validation split) and training goes on after it.
        epoch_seconds_: wall seconds of each training epoch.
        losses_: mean loss per position of each epoch.
    """

    name = "sasrec"
    on_epoch: Callable[[int, float], None] | None = None

    _net: Any  # torch.nn.ModuleDict: the network (see `_build_net`)
    seq_indptr_: IndexArray
    seq_indices_: np.ndarray[Any, np.dtype[np.int32]]
    epoch_seconds_: list[float]
    losses_: list[float]

    def __init__(
        self,
        max_len: int = 50,
        dim: int = 64,
        blocks: int = 2,
        heads: int = 1,
        dropout: float = 0.2,
        epochs: int = 20,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        negatives: int = 1024,
        gbce_t: float = 0.75,
        rng: int | None = 0,
        threads: int | None = None,
    ) -> None:
        self.max_len = max_len
        self.dim = dim
        self.blocks = blocks
        self.heads = heads
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.negatives = negatives
        self.gbce_t = gbce_t
        self.rng = rng
        self.threads = threads

    # -- training -----------------------------------------------------------------------------
    def _check_params(self) -> None:
        for name in ("max_len", "dim", "blocks", "heads", "epochs", "batch_size", "negatives"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise InvalidInput(
                    f"{name}: must be a whole number of at least 1, got {value!r}", field=name
                )
        if self.dim % self.heads:
            raise InvalidInput(
                f"heads: must divide dim ({self.dim}), got {self.heads}", field="heads"
            )
        if not _is_number(self.dropout) or not 0 <= self.dropout < 1:
            raise InvalidInput(f"dropout: must be in [0, 1), got {self.dropout!r}", field="dropout")
        if not _is_number(self.learning_rate) or not self.learning_rate > 0:
            raise InvalidInput(
                f"learning_rate: must be above 0, got {self.learning_rate!r}", field="learning_rate"
            )
        if not _is_number(self.gbce_t) or not 0 <= self.gbce_t <= 1:
            raise InvalidInput(
                f"gbce_t: must be between 0 and 1, got {self.gbce_t!r}", field="gbce_t"
            )
        if self.rng is not None and not _is_int(self.rng):
            raise InvalidInput(
                f"rng: must be a whole number or None, got {self.rng!r}", field="rng"
            )
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            raise InvalidInput(
                f"threads: must be None or at least 1, got {self.threads!r}", field="threads"
            )

    def _fit(self, data: Dataset) -> None:
        self._check_params()
        if data.n_items < 2:
            raise InvalidInput("sasrec: needs at least two items to rank")
        self.seq_indptr_, self.seq_indices_ = user_sequences(data)
        lengths = np.diff(self.seq_indptr_)
        learners = np.flatnonzero(lengths >= 2)
        if not len(learners):
            raise InvalidInput("sasrec: no user has two items to learn an order from")
        inputs, targets = training_windows(
            self.seq_indptr_, self.seq_indices_, learners, self.max_len
        )
        th = _torch()
        seed = self.rng if self.rng is not None else np.random.SeedSequence().entropy
        net_seed, sample_seed, order_seed = np.random.SeedSequence(seed).generate_state(3)
        with _threads(th, self.threads), th.random.fork_rng(devices=[]):
            th.manual_seed(int(net_seed))
            self._net = _build_net(th, data.n_items, self.max_len, self.dim, self.blocks)
            self._train(
                th,
                th.from_numpy(inputs),
                th.from_numpy(targets),
                th.Generator().manual_seed(int(sample_seed)),
                np.random.default_rng(order_seed),
            )
        self._unit_cache: ScoreArray | None = None

    def _train(
        self,
        th: Any,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        sampler: torch.Generator,
        gen: np.random.Generator,
    ) -> None:
        """Adam over length-bucketed batches; fills `losses_` and `epoch_seconds_`."""
        n_items = self._net["item_table"].num_embeddings - 1
        k = min(self.negatives, n_items - 1)
        alpha = k / (n_items - 1)
        beta = alpha * (self.gbce_t * (1 - 1 / alpha) + 1 / alpha)
        with th.no_grad():
            # start at the loss's best constant score, log(beta / k): otherwise the item
            # embeddings first learn a shared direction to make that constant and collapse
            self._net.get_parameter("bias").fill_(math.log(beta / k))
        widths = (inputs > 0).sum(dim=1).numpy()
        optimizer = th.optim.Adam(
            self._net.parameters(), lr=self.learning_rate, betas=(0.9, 0.98), fused=True
        )
        self.losses_, self.epoch_seconds_ = [], []
        functional = th.nn.functional
        self._net.train()
        for epoch in range(1, self.epochs + 1):
            started = time.perf_counter()
            total, count = 0.0, 0
            for batch in _length_buckets(widths, self.batch_size, gen):
                width = int(widths[batch].max())
                rows = th.from_numpy(batch)
                x = inputs[rows, -width:]
                y = targets[rows, -width:]
                hidden = self._encode(x)
                keep = y > 0
                h = hidden[keep]  # (positions, dim): only positions with a next item
                pos = y[keep]
                # one uniform draw per batch, shared by its positions: scoring them is one
                # small matrix product, where a draw per position would gather k rows each
                neg = th.randint(1, n_items + 1, (k,), generator=sampler)
                table = self._net["item_table"].weight
                bias = self._net.get_parameter("bias")
                s_pos = (h * table[pos]).sum(dim=1) + bias
                s_neg = h @ table[neg].T + bias
                # a draw that is the position's own next item is not a negative for it
                s_neg = s_neg.masked_fill(neg[None, :] == pos[:, None], -math.inf)
                loss = (
                    -beta * functional.logsigmoid(s_pos) - functional.logsigmoid(-s_neg).sum(dim=1)
                ).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(pos)
                count += len(pos)
            self.losses_.append(total / max(count, 1))
            self.epoch_seconds_.append(time.perf_counter() - started)
            if self.on_epoch is not None:
                self.on_epoch(epoch, self.losses_[-1])
        self._net.eval()

    def _encode(self, seqs: torch.Tensor) -> torch.Tensor:
        """Hidden states (batch x width x dim) of left-padded, shifted item codes."""
        th = _torch()
        functional = th.nn.functional
        net = self._net
        train = bool(net.training)
        p = float(self.dropout) if train else 0.0
        batch, width = seqs.shape
        keep = (seqs > 0)[:, :, None]
        positions = (seqs > 0).cumsum(dim=1).sub(1).clamp(min=0)
        x = net["item_table"](seqs) * math.sqrt(self.dim) + net["position_table"](positions)
        x = functional.dropout(x, p, train) * keep
        # causal, never to padding; every position sees itself so no row is empty
        causal = th.ones(width, width, dtype=th.bool).tril()
        mask = causal & (seqs > 0)[:, None, :] | th.eye(width, dtype=th.bool)
        mask = mask[:, None]
        size = self.dim // self.heads
        for block in net["blocks"]:
            h = block["norm1"](x)
            q, k, v = block["qkv"](h).view(batch, width, 3, self.heads, size).permute(2, 0, 3, 1, 4)
            a = functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            x = x + functional.dropout(block["out"](a.transpose(1, 2).reshape(x.shape)), p, train)
            h = block["norm2"](x)
            h = block["ff2"](functional.dropout(functional.relu(block["ff1"](h)), p, train))
            x = (x + functional.dropout(h, p, train)) * keep
        out: torch.Tensor = net["final_norm"](x)
        return out

    # -- scoring ------------------------------------------------------------------------------
    def _score(self, users: CodeArray, history: sp.csr_matrix) -> ScoreArray:
        users = np.asarray(users, dtype=np.int64)
        known = users >= 0
        if known.any():
            stored = np.diff(self.seq_indptr_)[np.where(known, users, 0)]
            known &= stored > 0  # an erased user is scored from the given history
        padded = np.zeros((len(users), self.max_len), dtype=np.int64)
        if known.any():
            rows = users[known]
            padded[known] = left_padded(self.seq_indptr_, self.seq_indices_, rows, self.max_len)
        if not known.all():
            rows = sp.csr_matrix(history[np.flatnonzero(~known)])
            indptr, indices = history_sequences(rows)
            padded[~known] = left_padded(indptr, indices, np.arange(rows.shape[0]), self.max_len)
        return self._score_padded(padded)

    def score_sequences(self, sequences: Sequence[np.ndarray[Any, Any]]) -> ScoreArray:
        """Scores of every item after each sequence of item codes (oldest first).

        What a serving stage calls with a person's recent items in order. Codes below 0
        (items the model does not know) are skipped; only the last `max_len` items count;
        an empty sequence gets the popularity scores, as a cold user does.

        Args:
            sequences: 1-D arrays of item codes.

        Returns:
            A (len(sequences) x n_items) float32 array; higher is better.

        Raises:
            InvalidInput: a code beyond the catalog.
        """
        self._check_fitted()
        kept = [np.asarray(s, dtype=np.int64).ravel() for s in sequences]
        kept = [s[s >= 0] for s in kept]
        lengths = np.array([len(s) for s in kept], dtype=np.int64)
        indices = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
        if len(indices) and indices.max() >= len(self.item_ids_):
            raise InvalidInput(f"sequences: item code {int(indices.max())} is not in the model")
        indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        padded = left_padded(indptr, indices, np.arange(len(kept)), self.max_len)
        out = self._score_padded(padded)
        out[lengths == 0] = self.popularity_
        return out

    def _score_padded(self, padded: IndexArray) -> ScoreArray:
        """Next-item scores after each row of left-padded, shifted codes."""
        th = _torch()
        out = np.empty((len(padded), len(self.item_ids_)), dtype=np.float32)
        training = bool(self._net.training)  # scored from `on_epoch`, mid-training
        with _threads(th, self.threads), th.inference_mode():
            self._net.eval()
            table = self._net["item_table"].weight[1:]
            bias = self._net.get_parameter("bias")
            for start in range(0, len(padded), _SCORE_BATCH):
                block = padded[start : start + _SCORE_BATCH]
                width = max(1, int((block > 0).sum(axis=1).max(initial=0)))
                hidden = self._encode(th.from_numpy(block[:, -width:]))[:, -1]
                out[start : start + len(block)] = (hidden @ table.T + bias).numpy()
        self._net.train(training)
        return out

    # -- similarity ---------------------------------------------------------------------------
    @property
    def _unit_items(self) -> ScoreArray:
        """Item embeddings scaled to unit length, cached."""
        if self.__dict__.get("_unit_cache") is None:
            table = self._net["item_table"].weight.detach()[1:].numpy().astype(np.float32)
            norms = np.linalg.norm(table, axis=1)
            norms[norms == 0] = 1.0
            self._unit_cache = np.asarray(table / norms[:, None], dtype=np.float32)
        assert self._unit_cache is not None
        return self._unit_cache

    def _similar(self, items: CodeArray, one_hot: sp.csr_matrix) -> ScoreArray:
        """Cosine similarity of the item embeddings."""
        return unit_cosines(self._unit_items, items)

    def item_similarity(self, a: CodeArray, b: CodeArray) -> ScoreArray:
        """Cosine similarity of the item embeddings of `a` to those of `b`."""
        self._check_fitted()
        return unit_cosines(self._unit_items, a, b)

    # -- artifacts and erasure ----------------------------------------------------------------
    def _arrays(self) -> Arrays:
        arrays: Arrays = {"seq_indptr": self.seq_indptr_, "seq_indices": self.seq_indices_}
        for key, value in self._net.state_dict().items():
            arrays[_NET + key.replace(".", "__")] = value.detach().numpy().astype(np.float32)
        return arrays

    def _meta(self) -> dict[str, Any]:
        return {"losses": self.losses_, "epoch_seconds": self.epoch_seconds_}

    def _restore(self, arrays: Mapping[str, np.ndarray[Any, Any]], meta: Mapping[str, Any]) -> None:
        th = _torch()
        self.seq_indptr_ = np.asarray(arrays["seq_indptr"], dtype=np.int64)
        self.seq_indices_ = np.asarray(arrays["seq_indices"], dtype=np.int32)
        self._net = _build_net(th, len(self.item_ids_), self.max_len, self.dim, self.blocks)
        state = {
            key: th.from_numpy(np.array(arrays[_NET + key.replace(".", "__")]))
            for key in self._net.state_dict()
        }
        self._net.load_state_dict(state)
        self._net.eval()
        self.losses_ = [float(v) for v in meta.get("losses", [])]
        self.epoch_seconds_ = [float(v) for v in meta.get("epoch_seconds", [])]
        self._unit_cache = None

    def _forget(self, user: int) -> None:
        start, end = int(self.seq_indptr_[user]), int(self.seq_indptr_[user + 1])
        if end > start:
            self.seq_indices_ = np.concatenate([self.seq_indices_[:start], self.seq_indices_[end:]])
            indptr = self.seq_indptr_.copy()
            indptr[user + 1 :] -= end - start
            self.seq_indptr_ = indptr


# -- sequences as numpy arrays -----------------------------------------------------------------
def user_sequences(data: Dataset) -> tuple[IndexArray, np.ndarray[Any, np.dtype[np.int32]]]:
    """Each user's item codes by time, ties by storage order, as a CSR (indptr, indices)."""
    order = np.lexsort((np.arange(len(data)), data.first_ts, data.users))
    indptr = np.r_[0, np.cumsum(data.user_counts)].astype(np.int64)
    return indptr, data.items[order].astype(np.int32)


def history_sequences(history: sp.csr_matrix) -> tuple[IndexArray, IndexArray]:
    """Each row's items ordered by value ascending, then by item code, as (indptr, indices)."""
    rows = np.repeat(np.arange(history.shape[0]), np.diff(history.indptr))
    order = np.lexsort((history.indices, history.data, rows))
    return history.indptr.astype(np.int64), history.indices[order].astype(np.int64)


def left_padded(
    indptr: IndexArray, indices: np.ndarray[Any, Any], rows: IndexArray, width: int, drop: int = 0
) -> IndexArray:
    """The last `width` codes of CSR rows (leaving out each row's last `drop`), plus one,
    right-aligned in a (len(rows) x width) array of zeros."""
    ends = np.maximum(indptr[rows + 1] - drop, indptr[rows])
    starts = np.maximum(indptr[rows], ends - width)
    lengths = ends - starts
    out = np.zeros((len(rows), width), dtype=np.int64)
    row_of = np.repeat(np.arange(len(rows)), lengths)
    offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[row_of, width - lengths[row_of] + offset] = indices[starts[row_of] + offset] + 1
    return out


def training_windows(
    indptr: IndexArray, indices: np.ndarray[Any, Any], rows: IndexArray, width: int
) -> tuple[IndexArray, IndexArray]:
    """Every (input, next item) position of the rows' sequences, as windows of `width`.

    A sequence of n items has n - 1 targets. The latest window holds the last `width` of
    them (each input the item before its target); each earlier window the `width` targets
    before those, so that an epoch learns every target of a long history once, not only its
    latest `width`. Windows are left-padded with 0 as `left_padded`'s rows; a padded
    position has target 0.
    """
    targets_per_row = np.diff(indptr)[rows] - 1
    inputs, targets = [], []
    for window in range(int(-(-targets_per_row.max() // width))):
        kept = rows[targets_per_row > window * width]
        drop = window * width
        x = left_padded(indptr, indices, kept, width, drop + 1)
        y = left_padded(indptr, indices, kept, width, drop)
        y[x == 0] = 0  # a target needs an item before it, in this window
        inputs.append(x)
        targets.append(y)
    return np.concatenate(inputs), np.concatenate(targets)


def _length_buckets(
    widths: np.ndarray[Any, Any], batch_size: int, gen: np.random.Generator
) -> Iterator[IndexArray]:
    """Batches of rows of similar width (less padding to compute), in a random order."""
    order = np.lexsort((gen.random(len(widths)), widths))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for b in gen.permutation(len(batches)):
        yield batches[b]


# -- the network -------------------------------------------------------------------------------
def _build_net(th: Any, n_items: int, max_len: int, dim: int, blocks: int) -> Any:
    """The parameters as plain modules (no class of ours: torch stays an optional import)."""
    nn = th.nn

    def block() -> Any:
        return nn.ModuleDict(
            {
                "norm1": nn.LayerNorm(dim),
                "qkv": nn.Linear(dim, 3 * dim),
                "out": nn.Linear(dim, dim),
                "norm2": nn.LayerNorm(dim),
                "ff1": nn.Linear(dim, dim),
                "ff2": nn.Linear(dim, dim),
            }
        )

    net = nn.ModuleDict(
        {
            "item_table": nn.Embedding(n_items + 1, dim, padding_idx=0),
            "position_table": nn.Embedding(max_len, dim),
            "blocks": nn.ModuleList([block() for _ in range(blocks)]),
            "final_norm": nn.LayerNorm(dim),
        }
    )
    net.register_parameter("bias", nn.Parameter(th.zeros(())))
    with th.no_grad():
        for name, param in net.named_parameters():
            if name.endswith("weight") and param.dim() == 2:
                nn.init.normal_(param, std=0.02)
        net["item_table"].weight[0] = 0.0
    return net


@contextmanager
def _threads(th: Any, threads: int | None) -> Iterator[None]:
    """Run with `threads` torch threads, then restore the previous setting."""
    before = th.get_num_threads()
    if threads is not None:
        th.set_num_threads(threads)
    try:
        yield
    finally:
        if threads is not None:
            th.set_num_threads(before)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    return math.isfinite(float(value))
