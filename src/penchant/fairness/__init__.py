"""Fairness and diversity metrics of top-K lists: diversity, calibration, exposure, gaps."""

from penchant.fairness.diversity import (
    intra_list_diversity,
    miscalibration,
    miscalibration_per_user,
    serendipity,
)
from penchant.fairness.exposure import (
    ExposureDisparity,
    UtilityGap,
    exposure_disparity,
    long_tail_share,
    popularity_lift,
    utility_gap,
)

__all__ = [
    "ExposureDisparity",
    "UtilityGap",
    "exposure_disparity",
    "intra_list_diversity",
    "long_tail_share",
    "miscalibration",
    "miscalibration_per_user",
    "popularity_lift",
    "serendipity",
    "utility_gap",
]
