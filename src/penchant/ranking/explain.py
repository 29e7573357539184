"""Explanations: a short reason per served item, from the source that put it there."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from penchant.ranking.query import CodeArray, Query, Serving
from penchant.types import Candidates

#: How many of a person's newest items an explanation looks through for the one it names.
ANCHORS = 50


@dataclass
class Explain:
    """Reasons such as "because you viewed X", "trending in Y", "similar to Z".

    Options: `verb` (what the person did, as the product says it: "read", "watched"), and
    `similarity` (the model that names the consumed item behind a recommendation; default
    `itemknn` when the bundle has it, else the source's own model). The pipeline fills in
    `source_models` (source column -> model name) and `user_sources`.
    """

    verb: str = "viewed"
    similarity: str = ""
    source_models: dict[str, str] = field(default_factory=dict)
    user_sources: set[str] = field(default_factory=set)

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        catalog = serving.catalog
        for row, source in enumerate(candidates.sources):
            if candidates.reasons[row] is not None:
                continue
            code = int(candidates.items[row])
            if source in self.user_sources:
                candidates.reasons[row] = self._because(code, query.history, source, serving, "")
            elif source == "session":
                candidates.reasons[row] = self._because(
                    code, query.session, source, serving, " in this session"
                )
            elif source == "similar" and "page_item" in query.notes:
                candidates.reasons[row] = f"similar to {catalog.name(query.notes['page_item'])}"
            elif source == "trending":
                where = query.notes.get("trending_in")
                candidates.reasons[row] = f"trending in {where}" if where else "trending now"
            elif source == "followed":
                provider = catalog.label_names(code, "provider")
                who = provider[0] if provider else "a provider"
                candidates.reasons[row] = f"new from {who}, a provider you follow"
            elif source == "exploration":
                candidates.reasons[row] = "something new to discover"
            else:
                candidates.reasons[row] = "recommended for you"
        return candidates

    def _because(
        self, code: int, history: CodeArray, source: str, serving: Serving, suffix: str
    ) -> str:
        """Name the consumed item most similar to the recommended one."""
        catalog = serving.catalog
        anchors = history[history < catalog.n_model][:ANCHORS]
        model_name = self.similarity or self.source_models.get(source, "")
        model = serving.models.get(model_name)
        if model is None or not len(anchors) or code >= catalog.n_model:
            return "recommended for you"
        similarity = model.item_similarity(np.array([code]), anchors)[0]
        best = int(np.argmax(similarity))
        if not similarity[best] > 0:
            return "recommended for you"
        return f"because you {self.verb} {catalog.name(int(anchors[best]))}{suffix}"
