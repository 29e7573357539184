"""What Penchant inferred about one person, for their export: interests and model rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from penchant.models.base import Recommender
from penchant.models.factors import FactorModel
from penchant.ranking.state import CONSUMED
from penchant.schema import Event, User
from penchant.store import CatalogStore

#: How many categories and providers an export lists.
TOP = 10


class Interests:
    """Counts a person's interactions per item as their events stream past.

    Only events that mean the person took an item (`ranking.state.CONSUMED`) count, which is
    what the models learn their interests from.
    """

    def __init__(self) -> None:
        self.items: Counter[str] = Counter()

    def add(self, events: Iterable[Event]) -> None:
        """Count a batch of events."""
        self.items.update(e.item_id for e in events if e.item_id is not None and e.type in CONSUMED)

    def summary(self, catalog: CatalogStore, tenant: str) -> dict[str, Any]:
        """Top categories and providers with their shares of the person's interactions.

        A share is the fraction of the interactions whose item has the category (split
        evenly over an item's categories) or the provider; interactions with items that are
        not in the catalog, or have none, count in the total only, so shares sum to at most 1.
        """
        total = sum(self.items.values())
        categories: dict[str, float] = {}
        providers: dict[str, float] = {}
        for item_id, n in self.items.items():
            item = catalog.get_item(tenant, item_id)
            if item is None:
                continue
            for category in item.categories:
                categories[category] = categories.get(category, 0.0) + n / len(item.categories)
            if item.provider is not None:
                providers[item.provider] = providers.get(item.provider, 0.0) + n
        return {
            "interactions": total,
            "top_categories": _top(categories, total, "category"),
            "top_providers": _top(providers, total, "provider"),
        }


def _top(counts: dict[str, float], total: int, name: str) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    return [{name: key, "share": round(n / total, 4)} for key, n in ranked]


def segments(profile: User | None) -> dict[str, Any]:
    """The person's segments: the profile attributes reports and rules group people by."""
    return {} if profile is None else dict(profile.attributes)


def model_rows(
    version: str | None, models: Mapping[str, Recommender], user_id: str
) -> dict[str, Any]:
    """What the served models hold about a person.

    Args:
        version: the model version, or None when no model is active.
        models: its models by name (they share one user vocabulary).
        user_id: the person.

    Returns:
        `version`; `known` (the models trained on the person); `history_items` (how many
        items their training history row holds); `factors`, the learned user factors by
        model name for factor models that know them, or None when none do.
    """
    first = next(iter(models.values()), None)
    code = -1 if first is None else int(first.user_codes([user_id])[0])
    if first is None or code < 0:
        return {"version": version, "known": False, "history_items": 0, "factors": None}
    history = first.history_
    factors = {
        name: [round(float(x), 6) for x in model.user_factors_[code]]
        for name, model in models.items()
        if isinstance(model, FactorModel)
    }
    return {
        "version": version,
        "known": True,
        "history_items": int(history.indptr[code + 1] - history.indptr[code]),
        "factors": factors or None,
    }
