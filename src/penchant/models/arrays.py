"""A model's arrays on disk: one uncompressed `.npy` file each, so that erasure can overwrite
one person's rows in place instead of rewriting the whole artifact.

Per-person data lives in arrays whose name starts with `user_` and whose first dimension is
the number of users (`user_ids`, `user_factors`), and in CSR matrices over users, saved as
`<name>_indptr`, `<name>_indices` and optionally `<name>_data`. `scrub_user` blanks the
person's id and zeroes their rows in all of them; a model loaded from scrubbed arrays treats
a blank id as a forgotten user.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray[Any, Any]]

#: The folder of a model's arrays (older artifacts hold one `arrays.npz` instead).
ARRAYS_DIR = "arrays"
USER_IDS = "user_ids"


def save_arrays(folder: Path, arrays: Arrays) -> None:
    """Write each array to `folder/<name>.npy` (never pickled) and make it durable."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        if not name.isidentifier():
            raise ValueError(f"not a valid array name: {name!r}")
        with open(folder / f"{name}.npy", "wb") as handle:
            np.save(handle, np.asarray(array), allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())


def load_arrays(folder: Path) -> Arrays:
    """Every array written by `save_arrays` in `folder`."""
    return {path.stem: np.load(path, allow_pickle=False) for path in sorted(folder.glob("*.npy"))}


def scrub_user(folder: Path, user_id: str) -> int:
    """Blank a person's id and zero their rows, in place, in every model under `folder`.

    Args:
        folder: a model's folder (its members' folders below it are scrubbed too).
        user_id: the person.

    Returns:
        How many user rows were scrubbed (one per model that knew the person).
    """
    scrubbed = 0
    for ids_file in sorted(folder.rglob(f"{ARRAYS_DIR}/{USER_IDS}.npy")):
        scrubbed += _scrub_arrays(ids_file.parent, user_id)
    return scrubbed


def _scrub_arrays(folder: Path, user_id: str) -> int:
    ids = np.load(folder / f"{USER_IDS}.npy", mmap_mode="r+", allow_pickle=False)
    codes = np.flatnonzero(ids == user_id)
    if not len(codes):
        return 0
    n_users = len(ids)
    ids[codes] = ""
    _sync(ids)
    for path in sorted(folder.glob("*.npy")):
        name = path.stem
        if name == USER_IDS:
            continue
        if name.startswith("user_"):
            rows = np.load(path, mmap_mode="r+", allow_pickle=False)
            if rows.ndim and rows.shape[0] == n_users:
                rows[codes] = 0
                _sync(rows)
        elif name.endswith("_indptr"):
            _scrub_csr(folder, name.removesuffix("_indptr"), codes, n_users)
    return len(codes)


def user_codes(folder: Path, user_id: str) -> tuple[np.ndarray[Any, Any], int]:
    """A person's row codes in the first model under `folder`, and its number of users."""
    for ids_file in sorted(folder.rglob(f"{ARRAYS_DIR}/{USER_IDS}.npy")):
        ids = np.load(ids_file, mmap_mode="r", allow_pickle=False)
        return np.flatnonzero(ids == user_id), len(ids)
    return np.empty(0, dtype=np.int64), 0


def scrub_rows(folder: Path, codes: np.ndarray[Any, Any], n_users: int) -> int:
    """Zero rows `codes` of every CSR matrix over `n_users` users saved in `folder`."""
    if not len(codes) or not folder.is_dir():
        return 0
    for path in sorted(folder.glob("*_indptr.npy")):
        _scrub_csr(folder, path.stem.removesuffix("_indptr"), codes, n_users)
    return len(codes)


def _scrub_csr(folder: Path, prefix: str, codes: np.ndarray[Any, Any], n_users: int) -> None:
    indptr = np.load(folder / f"{prefix}_indptr.npy", allow_pickle=False)
    if len(indptr) != n_users + 1:
        return  # a matrix over items, not users
    for part in ("indices", "data"):
        path = folder / f"{prefix}_{part}.npy"
        if not path.is_file():
            continue
        values = np.load(path, mmap_mode="r+", allow_pickle=False)
        for code in codes:
            values[indptr[code] : indptr[code + 1]] = 0
        _sync(values)


def _sync(array: np.memmap[Any, Any]) -> None:
    array.flush()
    # np.memmap.flush is msync; fsync also covers the file's metadata.
    assert array.filename is not None
    fd = os.open(array.filename, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def blank_users(ids: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Codes of users whose id was blanked by `scrub_user`."""
    return np.flatnonzero(ids == "")
