"""Store -> training data: id vocabularies, interaction matrices, event weighting, splits."""

from penchant.data.build import build_dataset, compact, min_support, typed_pairs
from penchant.data.dataset import Dataset
from penchant.data.impressions import ImpressionLog, impression_log
from penchant.data.splits import PROTOCOLS, Split, split
from penchant.data.weighting import DEFAULT_TYPE_WEIGHTS, Weighting

__all__ = [
    "DEFAULT_TYPE_WEIGHTS",
    "PROTOCOLS",
    "Dataset",
    "ImpressionLog",
    "Split",
    "Weighting",
    "build_dataset",
    "compact",
    "impression_log",
    "min_support",
    "split",
    "typed_pairs",
]
