"""Hyperparameter search with optuna on a validation split, and `auto`: tune all, then blend.

Nothing here sees a test split: `tune_model` and `auto_select` take the validation split
(the training pairs split again by the same protocol) and return a configuration; the
caller refits that configuration on all training pairs and judges it on the test pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import optuna

from penchant.data import Split
from penchant.errors import ConfigError, InvalidInput
from penchant.evaluation.run import evaluate_model
from penchant.models import Blend, Recommender, create_model
from penchant.models.ease import CatalogTooLarge

Params = dict[str, Any]
#: Told after every trial: (model name, trial number, value).
OnTrial = Callable[[str, int, float], None]


def _popular(trial: optuna.Trial) -> Params:
    if trial.suggest_categorical("trending", [False, True]):
        return {"half_life_days": trial.suggest_float("half_life_days", 1.0, 720.0, log=True)}
    return {"half_life_days": None}


def _itemknn(trial: optuna.Trial) -> Params:
    return {
        "k": trial.suggest_int("k", 5, 1000, log=True),
        "shrinkage": trial.suggest_float("shrinkage", 0.0, 200.0),
        "weighted": trial.suggest_categorical("weighted", [False, True]),
    }


def _ials(trial: optuna.Trial) -> Params:
    return {
        "factors": trial.suggest_int("factors", 16, 256, log=True),
        "regularization": trial.suggest_float("regularization", 1e-3, 100.0, log=True),
        "alpha": trial.suggest_float("alpha", 0.1, 50.0, log=True),
        "epochs": trial.suggest_int("epochs", 5, 30),
    }


def _bpr(trial: optuna.Trial) -> Params:
    return {
        "factors": trial.suggest_int("factors", 16, 256, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.2, log=True),
        "regularization": trial.suggest_float("regularization", 1e-5, 0.1, log=True),
        "epochs": trial.suggest_int("epochs", 20, 300, log=True),
    }


def _ease(trial: optuna.Trial) -> Params:
    return {"regularization": trial.suggest_float("regularization", 1.0, 20_000.0, log=True)}


def _content(trial: optuna.Trial) -> Params:
    if trial.suggest_categorical("fading", [False, True]):
        return {"half_life_days": trial.suggest_float("half_life_days", 1.0, 3650.0, log=True)}
    return {"half_life_days": None}


def _session_knn(trial: optuna.Trial) -> Params:
    return {
        "k": trial.suggest_int("k", 10, 2000, log=True),
        "sample": trial.suggest_categorical("sample", [0, 500, 2000]),
    }


def _sasrec(trial: optuna.Trial) -> Params:
    # the training budget stays at the default 20 epochs: each trial is a whole training
    return {
        "dim": trial.suggest_categorical("dim", [32, 64, 128]),
        "dropout": trial.suggest_float("dropout", 0.1, 0.5),
    }


#: Each tunable model's search space.
SEARCH_SPACES: dict[str, Callable[[optuna.Trial], Params]] = {
    "popular": _popular,
    "itemknn": _itemknn,
    "ials": _ials,
    "bpr": _bpr,
    "ease": _ease,
    "content": _content,
    "session-knn": _session_knn,
    "sasrec": _sasrec,
}
#: Trials a model with this many hyperparameters needs at least (one knob needs fewer).
_SMALL_SPACES = {"popular": 6, "ease": 10, "content": 6, "sasrec": 2}
#: What `auto` tunes and blends: every model that learns from interactions alone, and the
#: content model when the items have texts. SASRec's trials are whole trainings (a minute
#: or two each on 100,000 pairs), so it gets `_SMALL_SPACES["sasrec"]` of them; it is left
#: out when torch (penchant[deep]) is not installed.
AUTO_MODELS: tuple[str, ...] = (
    "popular",
    "itemknn",
    "ials",
    "bpr",
    "ease",
    "session-knn",
    "sasrec",
)
AUTO_TEXT_MODELS: tuple[str, ...] = ("content",)
#: How many of the best tuned models `auto`'s learned ranker takes as its members.
HYBRID_MEMBERS = 4


@dataclass(frozen=True)
class Tuned:
    """The outcome of tuning one model.

    Attributes:
        name: the model.
        params: the best hyperparameters found.
        value: their validation score.
        trials: every trial's (params, value), in order.
        model: the best trial's model, fitted on the validation split's training pairs
            (None when not kept), so that `auto` does not fit it again.
    """

    name: str
    params: Params
    value: float
    trials: list[tuple[Params, float]] = field(default_factory=list)
    model: Recommender | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Choice:
    """What `auto_select` chose on the validation split.

    Attributes:
        description: e.g. `blend(ease 0.7, itemknn 0.3)` or `ease`.
        value: its validation score.
        tuned: each model's tuning outcome.
        weights: the blend's weights by model (empty when one model won alone).
        candidates: validation score of each single model and of the blend.
        recency_half_life_days: the history recency weighting chosen (None: none); apply
            it to the split the chosen model is fitted and judged on (`Split.with_recency`).
        recency_scores: validation score of the probe model for each recency tried.
        hybrid_members: the members of the learned ranker, when it won (`hybrid`, with
            each member's tuned hyperparameters); else empty.
    """

    description: str
    value: float
    tuned: dict[str, Tuned]
    weights: dict[str, float]
    candidates: dict[str, float]
    recency_half_life_days: float | None = None
    recency_scores: dict[str, float] = field(default_factory=dict)
    hybrid_members: list[str] = field(default_factory=list)

    def build(self, *, rng: int = 0) -> Recommender:
        """A new, unfitted model of the chosen configuration."""
        if self.hybrid_members:
            return _hybrid(self.tuned, self.hybrid_members, rng)
        if not self.weights:
            name = max(self.tuned, key=lambda n: self.tuned[n].value)
            return _create(name, self.tuned[name].params, rng)
        members = [_create(n, self.tuned[n].params, rng) for n in self.weights]
        return Blend(members, weights=list(self.weights.values()))


def _hybrid(tuned: dict[str, Tuned], members: Sequence[str], rng: int) -> Recommender:
    """The learned ranker over `members`, each with its tuned hyperparameters."""
    params = {n: tuned[n].params for n in members}
    return create_model("hybrid", members=list(members), member_params=params, rng=rng)


def _create(name: str, params: Params, rng: int) -> Recommender:
    model = create_model(name, **params)
    if "rng" in model.get_params():
        model = model.clone(rng=rng)
    return model


def tune_model(
    name: str,
    validation: Split,
    *,
    n_trials: int = 20,
    metric: str = "ndcg@10",
    rng: int = 0,
    on_trial: OnTrial | None = None,
) -> Tuned:
    """Search one model's hyperparameters by its validation score (TPE, seeded).

    Args:
        name: a model in `SEARCH_SPACES`.
        validation: the validation split (never the test split).
        n_trials: trials to run (models with one knob run at most `_SMALL_SPACES` of them).
        metric: what to maximize, e.g. `ndcg@10`.
        rng: seed of the sampler and of the models.
        on_trial: progress callback.

    Raises:
        InvalidInput: an unknown model or metric, or no trial that could be fitted.
    """
    if name not in SEARCH_SPACES:
        raise InvalidInput(f"cannot tune {name!r}; tunable: {', '.join(SEARCH_SPACES)}")
    k = _cutoff(metric)
    space = SEARCH_SPACES[name]
    trials: list[tuple[Params, float]] = []
    best: list[Recommender] = []  # the best trial's fitted model

    def objective(trial: optuna.Trial) -> float:
        params = space(trial)
        model = _create(name, params, rng)
        try:
            result = evaluate_model(model, validation, [k])
        except (CatalogTooLarge, ConfigError):
            raise
        except InvalidInput as exc:  # a combination the model refuses counts as a failure
            raise optuna.TrialPruned(str(exc)) from exc
        value = result.mean(metric)
        if not trials or value > max(v for _, v in trials):
            best[:] = [model]
        trials.append((params, value))
        if on_trial is not None:
            on_trial(name, trial.number, value)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=rng, multivariate=True)
    )
    study.optimize(objective, n_trials=min(n_trials, _SMALL_SPACES.get(name, n_trials)))
    if not trials:
        raise InvalidInput(f"tuning {name}: no trial could be fitted")
    best_params, best_value = max(trials, key=lambda t: t[1])
    return Tuned(name, best_params, best_value, trials, best[0])


#: History recency half-lives (days) `auto` tries; None is no recency weighting.
RECENCY_GRID: tuple[float | None, ...] = (None, 0.01, 0.1, 1.0, 10.0, 100.0)


def choose_recency(
    validation: Split,
    grid: Sequence[float | None] = RECENCY_GRID,
    *,
    metric: str = "ndcg@10",
) -> tuple[float | None, dict[str, float]]:
    """Pick how strongly a user's recent items should outweigh older ones, on validation.

    The probe is ItemKNN with its defaults: cheap at any catalog size, and its scores are a
    weighted sum over the history, so it shows directly whether recent items predict the
    next ones better (they do when the protocol asks for what comes next, and hardly when
    held-out items are drawn at random).

    Returns:
        The best half-life (None for none) and the score of each one tried.
    """
    k = _cutoff(metric)
    scores: dict[str, float] = {}
    best: tuple[float, float | None] = (-1.0, None)
    for half_life in grid:
        weighted = validation.with_recency(half_life)
        value = evaluate_model(create_model("itemknn"), weighted, [k]).mean(metric)
        scores["none" if half_life is None else f"{half_life:g}"] = value
        if value > best[0]:
            best = (value, half_life)
    return best[1], scores


def auto_select(
    validation: Split,
    names: Sequence[str] | None = None,
    *,
    n_trials: int = 20,
    blend_trials: int = 30,
    metric: str = "ndcg@10",
    rng: int = 0,
    recency_grid: Sequence[float | None] = RECENCY_GRID,
    on_trial: OnTrial | None = None,
    hybrid: bool = True,
) -> Choice:
    """Choose recency, tune every model, then blend the tuned ones and learn a ranker over
    them; keep the best on validation.

    First the history recency weighting is chosen (`choose_recency`); every model is then
    tuned on the validation split weighted that way. A model whose catalog is too large for
    it (EASE on a huge catalog) is left out, not fatal. The blend's weights are searched by
    TPE over [0, 1] per member. The learned ranker (`hybrid`) takes the best
    `HYBRID_MEMBERS` tuned models as its members, each with its tuned hyperparameters; it
    is fitted once (it has no search of its own) and judged like the others.

    Args:
        validation: the validation split.
        names: the models to tune; default `AUTO_MODELS`, and `AUTO_TEXT_MODELS` when the
            items have texts.
        hybrid: whether to consider the learned ranker (when two or more models were
            tuned and LightGBM is installed).

    Raises:
        InvalidInput: no model could be tuned.
    """
    k = _cutoff(metric)
    if names is None:
        texts = validation.train.item_texts is not None
        names = AUTO_MODELS + (AUTO_TEXT_MODELS if texts else ())
    recency, recency_scores = choose_recency(validation, recency_grid, metric=metric)
    validation = validation.with_recency(recency)
    tuned: dict[str, Tuned] = {}
    for name in names:
        try:
            tuned[name] = tune_model(
                name, validation, n_trials=n_trials, metric=metric, rng=rng, on_trial=on_trial
            )
        except (CatalogTooLarge, ConfigError):  # too large for it, or its extra is missing
            continue
    if not tuned:
        raise InvalidInput("auto: no model could be tuned on this data")
    candidates = {n: t.value for n, t in tuned.items()}
    members = {
        n: t.model if t.model is not None else _create(n, t.params, rng).fit(validation.train)
        for n, t in tuned.items()
    }
    best_weights: dict[str, float] = {}
    if len(members) > 1:
        order = list(members)

        def objective(trial: optuna.Trial) -> float:
            weights = [trial.suggest_float(n, 0.0, 1.0) for n in order]
            if sum(weights) == 0:
                raise optuna.TrialPruned("all weights zero")
            blend = Blend([members[n] for n in order], weights).with_fitted(validation.train)
            value = evaluate_model(blend, validation, [k], fit=False).mean(metric)
            if on_trial is not None:
                on_trial("blend", trial.number, value)
            return value

        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=rng)
        )
        # start from "the best model alone" and "all equal" so the blend never does worse
        best_single = max(candidates, key=lambda n: candidates[n])
        study.enqueue_trial({n: 1.0 if n == best_single else 0.0 for n in order})
        study.enqueue_trial(dict.fromkeys(order, 1.0))
        study.optimize(objective, n_trials=blend_trials)
        candidates["blend"] = float(study.best_value)
        weights = {n: round(float(study.best_params[n]), 4) for n in order}
        if study.best_value > max(t.value for t in tuned.values()):
            best_weights = {n: w for n, w in weights.items() if w > 0}
    if best_weights:
        description = "blend(" + ", ".join(f"{n} {w:g}" for n, w in best_weights.items()) + ")"
        value = candidates["blend"]
    else:
        name = max(tuned, key=lambda n: tuned[n].value)
        description, value = name, tuned[name].value
    hybrid_members: list[str] = []
    if hybrid and len(tuned) > 1:
        ranked = sorted(tuned, key=lambda n: -tuned[n].value)[:HYBRID_MEMBERS]
        try:
            ranker = _hybrid(tuned, ranked, rng)
            score = evaluate_model(ranker, validation, [k]).mean(metric)
        except ConfigError:  # LightGBM (penchant[rank]) is not installed
            score = None
        except InvalidInput:  # too little history per person to hold out labels from
            score = None
        if score is not None:
            candidates["hybrid"] = score
            if on_trial is not None:
                on_trial("hybrid", 0, score)
            if score > value:
                hybrid_members = ranked
                description, value = f"hybrid({', '.join(ranked)})", score
                best_weights = {}
    return Choice(
        description,
        value,
        {n: replace(t, model=None) for n, t in tuned.items()},  # the caller refits anyway
        best_weights,
        candidates,
        recency,
        recency_scores,
        hybrid_members,
    )


def _cutoff(metric: str) -> int:
    try:
        k = int(metric.split("@", 1)[1])
    except (IndexError, ValueError) as exc:
        raise InvalidInput(f"metric {metric!r}: expected NAME@K, e.g. ndcg@10") from exc
    if k < 1:
        raise InvalidInput(f"metric {metric!r}: k must be at least 1")
    return k
