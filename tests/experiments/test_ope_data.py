"""Reading logs and policy arrays: both column namings, positions, features, bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from penchant.errors import InvalidInput, NotFound
from penchant.experiments.ope_data import read_array, read_inputs, read_logs

OBD_CSV = """\
,timestamp,item_id,position,click,propensity_score,user_feature_0,user-item_affinity_0,user_id
0,2019-11-24 00:00:17+00:00,2,1,0,0.5,aa,0.0,17
1,2019-11-24 00:00:18+00:00,0,3,1,0.25,bb,1.5,18
2,2019-11-24 00:00:19+00:00,1,2,0,0.125,aa,,19
3,2019-11-24 00:00:20+00:00,2,3,0,1.0,cc,0.5,20
"""


def _write(tmp_path: Path, text: str, name: str = "logs.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_open_bandit_columns_and_positions_ranked_from_zero(tmp_path: Path) -> None:
    logs = read_logs(_write(tmp_path, OBD_CSV))
    assert logs.n_rounds == 4
    np.testing.assert_array_equal(logs.action, [2, 0, 1, 2])
    np.testing.assert_array_equal(logs.position, [0, 2, 1, 2])  # 1, 3, 2, 3 by dense rank
    assert logs.position_labels == (1.0, 2.0, 3.0)
    np.testing.assert_array_equal(logs.reward, [0, 1, 0, 0])
    np.testing.assert_array_equal(logs.pscore, [0.5, 0.25, 0.125, 1.0])
    # The index, timestamp, id and role columns are not features; text becomes one-hot
    # columns, the most frequent value first; a missing number becomes the column mean.
    assert logs.context_names == (
        "user_feature_0=aa", "user_feature_0=bb", "user_feature_0=cc", "user-item_affinity_0",
    )  # fmt: skip
    np.testing.assert_array_equal(
        logs.context,
        [[1, 0, 0, 0.0], [0, 1, 0, 1.5], [1, 0, 0, 2.0 / 3.0], [0, 0, 1, 0.5]],
    )


def test_penchant_column_names_and_no_position(tmp_path: Path) -> None:
    path = _write(tmp_path, "action,reward,propensity,age\n1,2.5,0.5,30\n0,0.0,0.2,41\n")
    logs = read_logs(path)
    np.testing.assert_array_equal(logs.action, [1, 0])
    np.testing.assert_array_equal(logs.position, [0, 0])
    np.testing.assert_array_equal(logs.reward, [2.5, 0.0])
    assert logs.context_names == ("age",)


def test_positions_already_from_zero_stay_as_they_are(tmp_path: Path) -> None:
    path = _write(tmp_path, "action,position,reward,propensity\n0,1,1,0.5\n1,0,0,0.5\n")
    np.testing.assert_array_equal(read_logs(path).position, [1, 0])


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("item_id,click\n1,0\n", "propensity", "no propensity column"),
        ("item_id,propensity_score\n1,0.5\n", "reward", "no reward column"),
        ("click,propensity_score\n0,0.5\n", "action", "'action' or 'item_id'"),
        ("action,reward,propensity\n1,0,0.0\n", "propensity", "(0, 1]"),
        ("action,reward,propensity\n1,0,1.2\n", "propensity", "(0, 1]"),
        ("action,reward,propensity\n1.5,0,0.5\n", "action", "whole numbers"),
        ("action,reward,propensity\nx,0,0.5\n", "action", "must hold numbers"),
        ("action,reward,propensity\n1,,0.5\n2,1,0.5\n", "reward", "empty on data row 1"),
        ("action,reward,propensity\n", "logs", "no rows"),
    ],
)
def test_bad_logs_name_the_problem(tmp_path: Path, text: str, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_logs(_write(tmp_path, text))
    assert caught.value.field == field
    assert words in str(caught.value) and "logs.csv" in str(caught.value)


def test_missing_files_are_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        read_logs(tmp_path / "none.csv")
    with pytest.raises(NotFound, match="no such file"):
        read_array(tmp_path / "none.npy", "action_dist", ndim=3)


def test_arrays_are_read_without_unpickling(tmp_path: Path) -> None:
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInput, match=r"not a \.npy array"):
        read_array(objects, "action_dist", ndim=1)
    pickled = tmp_path / "pickled.npy"
    pickled.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(InvalidInput, match=r"not a \.npy array"):
        read_array(pickled, "action_dist", ndim=1)
    flat = tmp_path / "flat.npy"
    np.save(flat, np.ones(4))
    with pytest.raises(InvalidInput, match="3 dimensions"):
        read_array(flat, "action_dist", ndim=3)


def test_inputs_must_line_up_with_the_logs(tmp_path: Path) -> None:
    logs = _write(tmp_path, OBD_CSV)
    dist = tmp_path / "dist.npy"
    np.save(dist, np.full((4, 3, 3), 1 / 3))
    feedback, array, q = read_inputs(logs, dist)
    assert array.shape == (4, 3, 3) and q is None and feedback.n_rounds == 4
    short = tmp_path / "short.npy"
    np.save(short, np.full((3, 3, 3), 1 / 3))
    with pytest.raises(InvalidInput, match=r"short\.npy has 3 rows but logs\.csv has 4 rounds"):
        read_inputs(logs, short)
    with pytest.raises(InvalidInput, match=r"short\.npy has shape \(3, 3, 3\) but dist\.npy"):
        read_inputs(logs, dist, short)
