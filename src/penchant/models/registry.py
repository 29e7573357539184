"""Models by name: create one from a name and parameters, load a saved one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from penchant.errors import InvalidInput
from penchant.models.als import ImplicitALS
from penchant.models.base import ARTIFACT_FORMAT, Recommender
from penchant.models.blend import Blend
from penchant.models.bpr import BPR
from penchant.models.content import ContentModel
from penchant.models.ease import EASE
from penchant.models.hybrid import Hybrid
from penchant.models.itemknn import ItemKNN
from penchant.models.popular import Popular
from penchant.models.sasrec import SASRec
from penchant.models.sknn import SessionKNN
from penchant.models.taste import CategoryTaste

#: The models `penchant evaluate --models` and `penchant train` know, by name.
MODELS: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        Popular,
        ItemKNN,
        ImplicitALS,
        BPR,
        EASE,
        ContentModel,
        SessionKNN,
        SASRec,
        Blend,
        Hybrid,
        CategoryTaste,
    )
}


def create_model(name: str, **params: Any) -> Recommender:
    """A new, unfitted model.

    Raises:
        InvalidInput: an unknown name or hyperparameter.
    """
    if name not in MODELS:
        raise InvalidInput(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    try:
        return MODELS[name](**params)
    except TypeError as exc:
        raise InvalidInput(f"model {name}: {exc}") from exc


def load_model(path: Path) -> Recommender:
    """Load a model saved with `Recommender.save` (arrays and JSON only, no code is run).

    Raises:
        InvalidInput: the folder holds no model, or one of an unknown kind or format.
    """
    meta_file = path / "model.json"
    if not meta_file.is_file():
        raise InvalidInput(f"{path}: no model.json; not a saved model")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InvalidInput(f"{meta_file}: not valid JSON ({exc})") from exc
    if meta.get("format") != ARTIFACT_FORMAT:
        raise InvalidInput(f"{path}: artifact format {meta.get('format')!r} is not supported")
    name = meta.get("model")
    params = dict(meta.get("params") or {})
    if name == Blend.name:
        members = meta.get("members") or []
        params["models"] = [load_model(path / "members" / str(i)) for i in range(len(members))]
    model = create_model(str(name), **params)
    model._load_state(path, meta)
    return model
