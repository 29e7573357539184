"""The hybrid: candidates from several models, ranked by a LightGBM LambdaMART model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import InvalidInput, import_extra
from penchant.models.base import Arrays, CodeArray, Recommender, ScoreArray, mask_entries
from penchant.models.features import (
    FloatArray,
    ItemStats,
    candidate_features,
    context_values,
    feature_names,
)
from penchant.models.ranker_rows import (
    HELD_OUT,
    RECENT_ITEMS,
    recent_items,
    recent_profile,
    training_rows,
)

#: Where the item scores of items no source proposed sit: far below any ranker output,
#: ordered among themselves by popularity.
_NOT_PROPOSED = -1e4


def _lightgbm() -> Any:
    """The lightgbm module, imported on first use."""
    return import_extra("lightgbm", "rank", "the hybrid ranker")


class Hybrid(Recommender):
    """Learning to rank over several models' candidates.

    Each member model proposes its top `candidates` unseen items; the union is ranked by a
    LightGBM LambdaMART model over the features of `penchant.models.features` (each
    member's score and rank, item popularity, recent popularity and age, the person's
    affinity to the item's categories, text similarity to their latest items, history
    length, and request context). Items no member proposed rank below every candidate.

    The ranker learns from two kinds of labelled lists:

    - held-out pairs (always): each person's newest `label_fraction` of their training
      pairs is held out, the members are fitted on the rest, and the ranker learns to put
      the held-out items first among the members' candidates, which is the choice it
      makes at serving;
    - logged impressions, when `Dataset.impressions` has at least `min_impression_groups`
      served lists in which the person took at least one item and left at least one: the
      newest `label_fraction` of those lists, with the members fitted on the pairs that
      began before the oldest of them. The ranker learns to put first, in each list, the
      items the person took, with the features the list had when it was shown (its time
      and device, the person's history before that cut; each item scored and ranked among
      the members' top candidates plus the list, as serving would). Items the person
      already had are left out of each list, as serving never proposes them.

    Served lists alone teach a ranker to order the few items a list showed, and on the
    simulated world that ranked the whole candidate set worse than held-out pairs do
    (docs/benchmarks.md, "Learning from served lists"), so they are added to the held-out
    lists, not put in their place. The held-out lists then carry a request context too
    (the hour and weekday of the person's first held-out pair, and a device drawn from the
    served lists' devices): with none, the ranker told the two kinds apart by the missing
    context alone and, given a context at serving, ranked as if it had learned from the
    served lists only.

    The members are then fitted again on all the training pairs. `trained_on_` says what
    the ranker learned from: "held-out", "impressions and held-out", or "impressions"
    (when no person has a held-out item among the candidates).

    Args:
        members: the candidate models by name; `content` is left out when the items have no
            texts.
        candidates: items each member proposes per person.
        label_fraction: the newest share of each person's pairs, or of the usable served
            lists, the ranker learns from.
        max_users: people the ranker learns from at most (drawn with `rng`).
        trees: boosting rounds.
        learning_rate: the boosting learning rate.
        leaves: leaves per tree.
        rng: the seed of the draw, the members and LightGBM.
        threads: LightGBM threads (None: its default).
        member_params: hyperparameters of members by name (e.g. what `auto` tuned); a
            member not named has its defaults.
        min_impression_groups: usable served lists needed to train on impressions.
    """

    name = "hybrid"

    members_: dict[str, Recommender]
    ranker_: Any
    stats_: ItemStats
    recent_: sp.csr_matrix
    trained_on_: str

    def __init__(
        self,
        members: Sequence[str] = ("ials", "itemknn", "popular", "content"),
        candidates: int = 100,
        label_fraction: float = 0.2,
        max_users: int = 5000,
        trees: int = 300,
        learning_rate: float = 0.05,
        leaves: int = 31,
        rng: int = 0,
        threads: int | None = None,
        member_params: Mapping[str, Mapping[str, Any]] | None = None,
        min_impression_groups: int = 200,
    ) -> None:
        self.members = members
        self.candidates = candidates
        self.label_fraction = label_fraction
        self.max_users = max_users
        self.trees = trees
        self.learning_rate = learning_rate
        self.leaves = leaves
        self.rng = rng
        self.threads = threads
        self.member_params = member_params
        self.min_impression_groups = min_impression_groups

    def wants_text(self) -> bool:
        """Whether the content model is a member (the hybrid fits without it too)."""
        return "content" in self.members

    def wants_impressions(self) -> bool:
        """Whether fitting uses `Dataset.impressions` when there are some (it does)."""
        return True

    # -- fitting ---------------------------------------------------------------------------
    def _check(self) -> None:
        from penchant.models.registry import MODELS

        if not self.members or len(set(self.members)) != len(self.members):
            raise InvalidInput("members: name one or more different models", field="members")
        for name in self.members:
            if name not in MODELS or name in (self.name, "blend"):
                raise InvalidInput(f"members: {name!r} cannot be a member", field="members")
        for name in self.member_params or {}:
            if name not in self.members:
                raise InvalidInput(
                    f"member_params: {name!r} is not a member", field="member_params"
                )
        if self.candidates < 1:
            raise InvalidInput("candidates: must be at least 1", field="candidates")
        if not 0 < self.label_fraction < 1:
            raise InvalidInput("label_fraction: must be between 0 and 1", field="label_fraction")
        for name in ("max_users", "trees", "leaves", "min_impression_groups"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name}: must be at least 1", field=name)
        if not self.learning_rate > 0:
            raise InvalidInput("learning_rate: must be above 0", field="learning_rate")

    def _member_names(self, data: Dataset) -> list[str]:
        return [n for n in self.members if n != "content" or data.item_texts is not None]

    def _new_members(self, data: Dataset) -> dict[str, Recommender]:
        from penchant.models.registry import create_model

        out: dict[str, Recommender] = {}
        params = self.member_params or {}
        for name in self._member_names(data):
            model = create_model(name, **params.get(name, {}))
            out[name] = model.clone(rng=self.rng) if "rng" in model.get_params() else model
        return out

    def _fit(self, data: Dataset) -> None:
        self._check()
        lightgbm = _lightgbm()
        # 1. members on the older pairs; features of their candidates, labelled by the
        # held-out newest pairs, and of the served lists, labelled by what was taken
        blocks, targets, groups = training_rows(self, data)
        params = {
            "objective": "lambdarank",
            "n_estimators": self.trees,
            "learning_rate": self.learning_rate,
            "num_leaves": self.leaves,
            "min_child_samples": 20,
            "random_state": self.rng,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
            **({"n_jobs": self.threads} if self.threads else {}),
        }
        ranker = lightgbm.LGBMRanker(**params)
        ranker.fit(np.vstack(blocks), np.concatenate(targets), group=groups)
        self.ranker_ = ranker.booster_
        # 2. the members again, on every training pair, for ranking
        self.members_ = {n: m.fit(data) for n, m in self._new_members(data).items()}
        self.stats_ = ItemStats.of(data)
        self.recent_ = recent_items(data)
        self._set_vectors()

    def _set_vectors(self) -> None:
        content = self.members_.get("content")
        self._vectors: FloatArray | None = getattr(content, "item_vectors_", None)

    # -- scoring ---------------------------------------------------------------------------
    def _candidates(
        self,
        users: CodeArray,
        history: sp.csr_matrix,
        *,
        recent: sp.csr_matrix | None = None,
        now_us: int | None = None,
        context: tuple[float, float, float] = (np.nan, np.nan, np.nan),
        contexts: Sequence[tuple[float, float, float]] | None = None,
    ) -> list[tuple[CodeArray, FloatArray]]:
        """Per person: the union of the members' top candidates and its feature matrix
        (with `context`, or each person's own from `contexts`)."""
        history = sp.csr_matrix(history)
        if recent is None:
            recent = self._recent_rows(users, history)
        scores = self._member_scores(users, history)
        out = []
        when = self.stats_.data_end if now_us is None else now_us
        for row in range(len(users)):
            profile = recent_profile(self._vectors, recent[row])
            own = context if contexts is None else contexts[row]
            cands, feats = self._row_features(
                self._tops(scores, row), scores, row, history[row], when, profile, own
            )
            out.append((cands, feats))
        return out

    def _row_features(
        self,
        proposed: CodeArray,
        scores: list[ScoreArray],
        row: int,
        history: sp.csr_matrix,
        now_us: int,
        profile: FloatArray | None,
        context: tuple[float, float, float],
    ) -> tuple[CodeArray, FloatArray]:
        """The distinct proposed items a row can take (not in its history) and their
        features: what training, evaluation and serving all compute per person."""
        cands = np.unique(proposed)
        cands = cands[np.isfinite(scores[0][row, cands])].astype(np.int64)
        feats = candidate_features(
            cands,
            [s[row, cands] for s in scores],
            self.stats_,
            history,
            now_us=now_us,
            recent_profile=profile,
            item_vectors=self._vectors,
            context=context,
        )
        return cands, feats

    def _member_scores(self, users: CodeArray, history: sp.csr_matrix) -> list[ScoreArray]:
        """Each member's scores of every item, the history's items at -inf."""
        scores = []
        for member in self.members_.values():
            block = member.scores(users, history)
            mask_entries(block, history)
            scores.append(block)
        return scores

    def _tops(self, scores: list[ScoreArray], row: int) -> CodeArray:
        """Each member's top `candidates` items of a row, concatenated (repeats kept)."""
        n = min(self.candidates, scores[0].shape[1])
        return np.concatenate([np.argpartition(-s[row], n - 1)[:n] for s in scores])

    def _recent_rows(self, users: CodeArray, history: sp.csr_matrix) -> sp.csr_matrix:
        """Each person's latest items: the stored ones of a trained person whose history is
        their training history, else the highest-weighted items of the given row."""
        rows = []
        for row, user in enumerate(users):
            given = history[row]
            if user >= 0 and self.recent_[user].nnz:
                rows.append(self.recent_[user])
                continue
            keep = given.indices[np.argsort(-given.data, kind="stable")[:RECENT_ITEMS]]
            rows.append(
                sp.csr_matrix(
                    (np.ones(len(keep), np.float32), keep, [0, len(keep)]), shape=given.shape
                )
            )
        return sp.csr_matrix(sp.vstack(rows)) if rows else sp.csr_matrix(history.shape)

    def _score(self, users: CodeArray, history: sp.csr_matrix) -> ScoreArray:
        out = np.tile(_NOT_PROPOSED + self.stats_.log_popularity, (len(users), 1))
        for row, (cands, feats) in enumerate(self._candidates(users, history)):
            if len(cands):
                out[row, cands] = self.ranker_.predict(feats)
        return out.astype(np.float32)

    def rank_candidates(
        self,
        history: sp.csr_matrix,
        *,
        user: int = -1,
        recent: CodeArray | None = None,
        now_us: int | None = None,
        device: str | None = None,
    ) -> tuple[CodeArray, ScoreArray]:
        """One request's candidates and their ranker scores, best first: the serving path.

        Args:
            history: the person's (1 x items) history row.
            user: their code, or -1.
            recent: their latest items, newest first (default from the history).
            now_us: the request's time; with `device`, the context features.
        """
        self._check_fitted()
        recent_row = None
        if recent is not None:
            recent = np.asarray(recent[:RECENT_ITEMS], dtype=np.int64)
            recent_row = sp.csr_matrix(
                (np.ones(len(recent), np.float32), recent, [0, len(recent)]),
                shape=(1, len(self.item_ids_)),
            )
        (cands, feats), *_ = self._candidates(
            np.array([user], dtype=np.int64),
            history,
            recent=recent_row,
            now_us=now_us,
            context=context_values(now_us, device),
        )
        scores = np.zeros(0, dtype=np.float32)
        if len(cands):
            scores = np.asarray(self.ranker_.predict(feats), dtype=np.float32)
        order = np.argsort(-scores, kind="stable")
        return cands[order], scores[order]

    def feature_importance(self) -> dict[str, float]:
        """Each feature's total gain in the ranker.

        The context features (hour, weekday, device) can gain only where the ranker learned
        from served lists too (`trained_on_`): held-out pairs alone carry no request context.
        """
        self._check_fitted()
        gains = self.ranker_.feature_importance(importance_type="gain")
        names = feature_names(list(self.members_), content=self._vectors is not None)
        return {n: float(g) for n, g in zip(names, gains, strict=True)}

    # -- erasure and artifacts -------------------------------------------------------------
    def _forget(self, user: int) -> None:
        for model in self.members_.values():
            model._clear_user(user)
        recent = self.recent_.copy()
        recent.data[recent.indptr[user] : recent.indptr[user + 1]] = 0
        recent.eliminate_zeros()
        self.recent_ = recent

    def save(self, path: Path) -> None:
        """The hybrid's folder: members under `members/<name>/`, the ranker as LightGBM text."""
        self._check_fitted()
        for name, model in self.members_.items():
            model.save(path / "members" / name)
        super().save(path)
        (path / "ranker.txt").write_text(self.ranker_.model_to_string())

    def _meta(self) -> dict[str, Any]:
        return {
            "fitted_members": list(self.members_),
            "data_end": self.stats_.data_end,
            "trained_on": self.trained_on_,
        }

    def _arrays(self) -> Arrays:
        stats = self.stats_
        arrays: Arrays = {
            "item_log_popularity": stats.log_popularity,
            "item_log_recent": stats.log_recent,
            "item_first_seen": stats.first_seen,
            "recent_indptr": self.recent_.indptr,
            "recent_indices": self.recent_.indices,
            "recent_data": self.recent_.data,
        }
        if stats.categories is not None:
            c = stats.categories
            arrays.update(
                category_indptr=c.indptr,
                category_indices=c.indices,
                category_width=np.array([c.shape[1]]),
            )
        return arrays

    def _load_state(self, path: Path, meta: Mapping[str, Any]) -> None:
        from penchant.models.registry import load_model

        self.members_ = {
            name: load_model(path / "members" / name) for name in meta["fitted_members"]
        }
        self.ranker_ = _lightgbm().Booster(model_str=(path / "ranker.txt").read_text())
        super()._load_state(path, meta)
        self._set_vectors()
        self.trained_on_ = str(meta.get("trained_on", HELD_OUT))  # older artifacts: held-out

    def _restore(self, arrays: Mapping[str, np.ndarray[Any, Any]], meta: Mapping[str, Any]) -> None:
        categories = None
        if "category_indptr" in arrays:
            n = len(arrays["category_indices"])
            categories = sp.csr_matrix(
                (np.ones(n, np.float32), arrays["category_indices"], arrays["category_indptr"]),
                shape=(len(self.item_ids_), int(arrays["category_width"][0])),
            )
        self.stats_ = ItemStats(
            log_popularity=arrays["item_log_popularity"],
            log_recent=arrays["item_log_recent"],
            first_seen=arrays["item_first_seen"],
            categories=categories,
            data_end=int(meta["data_end"]),
        )
        self.recent_ = sp.csr_matrix(
            (arrays["recent_data"], arrays["recent_indices"], arrays["recent_indptr"]),
            shape=(len(self.user_ids_), len(self.item_ids_)),
        )
