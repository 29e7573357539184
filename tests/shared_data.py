"""The real datasets in ../shared/datasets, for tests in any folder.

A module of its own rather than part of a `conftest.py`: several test folders have their
own `conftest`, and `from conftest import ...` found whichever was imported first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def need_dataset(name: str) -> Path:
    """The folder of a dataset in ../shared/datasets, or skip with the reason."""
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"dataset {name} not found at ../shared/datasets (it is not in the repo)")
    return path
