"""Recommendation models behind one `Recommender` contract, and their artifacts."""

from penchant.models.als import ImplicitALS
from penchant.models.base import NotFitted, Recommender
from penchant.models.blend import Blend
from penchant.models.bpr import BPR
from penchant.models.content import ContentModel
from penchant.models.ease import EASE, CatalogTooLarge
from penchant.models.hybrid import Hybrid
from penchant.models.itemknn import ItemKNN
from penchant.models.popular import Popular
from penchant.models.registry import MODELS, create_model, load_model
from penchant.models.sasrec import SASRec
from penchant.models.sknn import SessionKNN

__all__ = [
    "BPR",
    "EASE",
    "MODELS",
    "Blend",
    "CatalogTooLarge",
    "ContentModel",
    "Hybrid",
    "ImplicitALS",
    "ItemKNN",
    "NotFitted",
    "Popular",
    "Recommender",
    "SASRec",
    "SessionKNN",
    "create_model",
    "load_model",
]
