"""Logged bandit feedback from a CSV file and policy arrays from .npy files, checked.

The CSV holds one row per logged decision. Four columns have a role, under Penchant's name
or the Open Bandit Dataset's: the action (`action` or `item_id`, a 0-based index), the
position (`position`, optional), the reward (`reward` or `click`) and the logging
propensity (`propensity` or `propensity_score`). Positions are replaced by their dense
rank, 0-based, as obp's `OpenBanditDataset` does: OBD's 1, 2, 3 become 0, 1, 2, and the
k-th smallest position label in the file indexes `action_dist[:, :, k]`.

Every other column is a context feature of the built-in reward model, except an unnamed
index column, `index`, `timestamp` and identifiers (`id`, `*_id`): numbers as they are
(a missing number becomes the column's mean), text as one-hot columns of its
`MAX_LEVELS` most frequent values (OBD's hashed `user_feature_*`). Other types (dates,
times) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

from penchant.errors import InvalidInput, NotFound
from penchant.experiments.ope_checks import FloatArray, IntArray

#: Column names by role, Penchant's first, then the Open Bandit Dataset's.
ROLES: dict[str, tuple[str, ...]] = {
    "action": ("action", "item_id"),
    "position": ("position",),
    "reward": ("reward", "click"),
    "propensity": ("propensity", "propensity_score"),
}
#: Values of a text column that get a one-hot column each, the most frequent first.
MAX_LEVELS = 100
_NOT_FEATURES = frozenset({"", "index", "timestamp", "id"})


@dataclass(frozen=True)
class LoggedFeedback:
    """Logged rounds as the estimators take them.

    Attributes:
        reward: shape (n,) observed rewards.
        action: shape (n,) logged actions.
        position: shape (n,) 0-based positions (dense rank of the file's position labels).
        pscore: shape (n,) logging propensities of the logged actions.
        context: shape (n, d) context features for the built-in reward model.
        context_names: the name of each context column (`column=value` for one-hot ones).
        position_labels: the file's position labels; label `position_labels[k]` is 0-based
            position k.
    """

    reward: FloatArray
    action: IntArray
    position: IntArray
    pscore: FloatArray
    context: FloatArray
    context_names: tuple[str, ...]
    position_labels: tuple[float, ...]

    @property
    def n_rounds(self) -> int:
        """Number of logged rounds."""
        return int(self.reward.shape[0])


def _numbers(table: pa.Table, name: str, path: Path) -> FloatArray:
    column = table.column(name)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise InvalidInput(
            f"{path.name}: column {name} must hold numbers, got {column.type}", field=name
        )
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidInput(f"{path.name}: column {name} is empty on data row {row + 1}", field=name)
    values: FloatArray = column.to_numpy(zero_copy_only=False).astype(np.float64)
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise InvalidInput(
            f"{path.name}: column {name} holds {values[row]} on data row {row + 1}", field=name
        )
    return values


def _role(table: pa.Table, role: str) -> str | None:
    return next((name for name in ROLES[role] if name in table.column_names), None)


def _required(table: pa.Table, role: str, path: Path) -> str:
    name = _role(table, role)
    if name is None:
        expected = " or ".join(repr(n) for n in ROLES[role])
        raise InvalidInput(f"{path.name}: no {role} column (expected {expected})", field=role)
    return name


def _whole(values: FloatArray, name: str, path: Path) -> IntArray:
    whole = np.floor(values) == values
    if not whole.all():
        row = int(np.flatnonzero(~whole)[0])
        raise InvalidInput(
            f"{path.name}: column {name} must hold whole numbers, got {values[row]} on data "
            f"row {row + 1}",
            field=name,
        )
    return values.astype(np.int64)


def _is_feature(name: str, roles: set[str]) -> bool:
    lowered = name.strip().lower()
    return not (
        name in roles
        or lowered in _NOT_FEATURES
        or lowered.startswith("unnamed")
        or lowered.endswith("_id")
    )


def _features(table: pa.Table) -> tuple[FloatArray, tuple[str, ...]]:
    roles = {name for names in ROLES.values() for name in names}
    blocks: list[FloatArray] = []
    names: list[str] = []
    for name in table.column_names:
        if not _is_feature(name, roles):
            continue
        column = table.column(name)
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            values = np.array(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
            missing = np.isnan(values)
            if missing.all():
                continue
            values[missing] = values[~missing].mean()
            blocks.append(values[:, None])
            names.append(name)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            counts = pc.value_counts(column.drop_null()).to_pylist()
            counts.sort(key=lambda entry: (-entry["counts"], entry["values"]))
            levels = [entry["values"] for entry in counts[:MAX_LEVELS]]
            text = np.asarray(column.to_pylist(), dtype=object)
            blocks.append(np.stack([text == level for level in levels], axis=1).astype(float))
            names.extend(f"{name}={level}" for level in levels)
    if not blocks:
        return np.zeros((table.num_rows, 0)), ()
    return np.hstack(blocks), tuple(names)


def read_logs(path: Path) -> LoggedFeedback:
    """Read logged bandit feedback from a CSV file (see the module docstring for columns).

    Args:
        path: the CSV file.

    Returns:
        The logged rounds, in file order.

    Raises:
        NotFound: no such file.
        InvalidInput: not a CSV, no rows, a missing role column, an empty or non-numeric
            role value, a non-whole action, or a propensity outside (0, 1].
    """
    if not path.is_file():
        raise NotFound(f"{path}: no such file", field="logs")
    try:
        table = csv.read_csv(path)
    except pa.ArrowInvalid as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInput(f"{path.name}: not a readable CSV ({first})", field="logs") from exc
    if table.num_rows == 0:
        raise InvalidInput(f"{path.name}: no rows: there are no logged rounds", field="logs")
    action_name = _required(table, "action", path)
    action = _whole(_numbers(table, action_name, path), action_name, path)
    reward = _numbers(table, _required(table, "reward", path), path)
    pscore_name = _required(table, "propensity", path)
    pscore = _numbers(table, pscore_name, path)
    bad = (pscore <= 0.0) | (pscore > 1.0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInput(
            f"{path.name}: column {pscore_name} must lie in (0, 1], got {pscore[row]} on data "
            f"row {row + 1}",
            field=pscore_name,
        )
    position_name = _role(table, "position")
    if position_name is None:
        labels: FloatArray = np.zeros(1)
        position = np.zeros(table.num_rows, dtype=np.int64)
    else:
        labels, inverse = np.unique(_numbers(table, position_name, path), return_inverse=True)
        position = inverse.astype(np.int64).ravel()
    context, names = _features(table)
    return LoggedFeedback(
        reward=reward,
        action=action,
        position=position,
        pscore=pscore,
        context=context,
        context_names=names,
        position_labels=tuple(float(v) for v in labels),
    )


def read_array(path: Path, field: str, *, ndim: int) -> FloatArray:
    """Read a numeric array from a .npy file, never unpickling anything.

    Args:
        path: the .npy file.
        field: the option or argument it came from, for messages.
        ndim: the number of dimensions it must have.

    Returns:
        The array as float64.

    Raises:
        NotFound: no such file.
        InvalidInput: not a .npy file of numbers, or the wrong number of dimensions.
    """
    if not path.is_file():
        raise NotFound(f"{path}: no such file", field=field)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidInput(
            f"{path.name}: not a .npy array of numbers ({exc})", field=field
        ) from exc
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise InvalidInput(f"{path.name}: not a .npy array of numbers", field=field)
    if array.ndim != ndim:
        raise InvalidInput(
            f"{path.name}: {field} must have {ndim} dimensions, got shape {array.shape}",
            field=field,
        )
    return array.astype(np.float64, copy=False)


def read_inputs(
    logs: Path, action_dist: Path, estimated_rewards: Path | None = None
) -> tuple[LoggedFeedback, FloatArray, FloatArray | None]:
    """Read the logs and the policy arrays of one evaluation, and check that they line up.

    Args:
        logs: the CSV of logged rounds.
        action_dist: .npy of shape (n_rounds, n_actions, len_list).
        estimated_rewards: optional .npy of the same shape.

    Returns:
        `(feedback, action_dist, estimated_rewards or None)`.

    Raises:
        NotFound: a missing file.
        InvalidInput: a file `read_logs` or `read_array` rejects, or arrays whose rows or
            shape disagree with the logs.
    """
    feedback = read_logs(logs)
    dist = read_array(action_dist, "action_dist", ndim=3)
    if dist.shape[0] != feedback.n_rounds:
        raise InvalidInput(
            f"{action_dist.name} has {dist.shape[0]} rows but {logs.name} has "
            f"{feedback.n_rounds} rounds",
            field="action_dist",
        )
    if estimated_rewards is None:
        return feedback, dist, None
    q = read_array(estimated_rewards, "estimated_rewards", ndim=3)
    if q.shape != dist.shape:
        raise InvalidInput(
            f"{estimated_rewards.name} has shape {q.shape} but {action_dist.name} has {dist.shape}",
            field="estimated_rewards",
        )
    return feedback, dist, q
