"""Every re-ranking stage passes the shared `RerankerContract`."""

from __future__ import annotations

from penchant.ranking.fair_stages import Calibration, FairExposure, LongTail, PopularityPenalty
from penchant.ranking.pipeline import Stage
from penchant.ranking.rerank import Diversity
from penchant.testing import RerankerContract


class TestDiversity(RerankerContract):
    def make_stage(self, strength: float) -> Stage:
        return Diversity(by="category", strength=strength)


class TestCalibration(RerankerContract):
    def make_stage(self, strength: float) -> Stage:
        return Calibration(by="category", strength=strength)


class TestLongTail(RerankerContract):
    def make_stage(self, strength: float) -> Stage:
        return LongTail(strength=strength, head_share=0.5)


class TestPopularityPenalty(RerankerContract):
    def make_stage(self, strength: float) -> Stage:
        return PopularityPenalty(strength=strength)


class TestFairExposure(RerankerContract):
    def make_stage(self, strength: float) -> Stage:
        return FairExposure(by="provider", strength=strength, target="equal")
