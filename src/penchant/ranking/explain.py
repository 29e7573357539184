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
    `source_models` (source column -> model name), `user_sources` and `session_sources`
    (the sources that rank from the person's or the session's items).
    """

    verb: str = "viewed"
    similarity: str = ""
    source_models: dict[str, str] = field(default_factory=dict)
    user_sources: set[str] = field(default_factory=set)
    session_sources: set[str] = field(default_factory=lambda: {"session"})

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        catalog = serving.catalog
        reasons = candidates.reasons
        because: dict[str, list[int]] = {}  # source -> rows whose reason names a past item
        for row, source in enumerate(candidates.sources):
            if reasons[row] is not None:
                continue
            if source in self.user_sources or source in self.session_sources:
                because.setdefault(source, []).append(row)
            elif source == "similar" and "page_item" in query.notes:
                reasons[row] = f"similar to {catalog.name(query.notes['page_item'])}"
            elif source == "trending":
                where = query.notes.get("trending_in")
                reasons[row] = f"trending in {where}" if where else "trending now"
            elif source == "followed":
                provider = catalog.label_names(int(candidates.items[row]), "provider")
                who = provider[0] if provider else "a provider"
                reasons[row] = f"new from {who}, a provider you follow"
            elif source == "exploration":
                reasons[row] = "something new to discover"
            else:
                reasons[row] = "recommended for you"
        in_session = set(query.session.tolist())
        for source, rows in because.items():
            session = source in self.session_sources
            history = query.session if session else query.history
            named = self._because(candidates.items[rows], history, source, serving)
            for row, anchor in zip(rows, named, strict=True):
                if anchor >= 0:
                    # a past item of this very session is named as such, whichever source
                    suffix = " in this session" if session or anchor in in_session else ""
                    reasons[row] = f"because you {self.verb} {catalog.name(anchor)}{suffix}"
                elif candidates.items[row] >= catalog.n_model:
                    reasons[row] = f"new, like what you {self.verb}"
                else:
                    reasons[row] = "recommended for you"
        return candidates

    def _because(
        self, codes: CodeArray, history: CodeArray, source: str, serving: Serving
    ) -> list[int]:
        """Per recommended item, the consumed item most like it (-1: none is alike)."""
        catalog = serving.catalog
        anchors = history[history < catalog.n_model][:ANCHORS]
        model = serving.models.get(self.similarity or self.source_models.get(source, ""))
        known = codes < catalog.n_model
        out = [-1] * len(codes)
        if model is None or not len(anchors) or not known.any():
            return out
        rows = np.flatnonzero(known)
        similarity = model.item_similarity(codes[rows], anchors)
        best = similarity.argmax(axis=1)
        alike = similarity[np.arange(len(rows)), best] > 0
        for row, anchor, ok in zip(
            rows.tolist(), anchors[best].tolist(), alike.tolist(), strict=True
        ):
            if ok:
                out[row] = anchor
        return out
