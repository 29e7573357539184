"""`penchant train`: fit every configured model on a tenant's events into one model version.

The CLI, the service's background trainer (in a child process, see `jobs.trainer`) and
library users all call `train`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from penchant import __version__
from penchant.data import Dataset, Split, Weighting, build_dataset, split, typed_pairs
from penchant.errors import InvalidInput, PenchantError
from penchant.evaluation.run import evaluate_model
from penchant.jobs.consent import without_consent_to
from penchant.jobs.registry import EXCLUSIONS, INDEX, MANIFEST, ModelRegistry, new_version
from penchant.jobs.store import with_catalog, with_impression_log
from penchant.models import MODELS, Blend, Hybrid, Recommender, create_model
from penchant.models.ann import ItemIndex
from penchant.models.arrays import save_arrays
from penchant.models.factors import FactorModel
from penchant.ranking.state import EXCLUSION_TYPES
from penchant.settings import ServingSettings, Settings
from penchant.store import Store
from penchant.types import Purpose

#: The offline metrics recorded in each model's manifest entry.
METRICS = ("ndcg@10", "recall@20")
#: The held-out share of the newest pairs the offline metrics are computed on.
TEST_FRACTION = 0.2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TrainResult:
    """What one training run made.

    Attributes:
        version: the new version's name.
        manifest: the content of its manifest.json.
        path: its directory.
        activated: whether it is now the version being served.
        pruned: older versions deleted to keep `training.keep_versions`.
    """

    version: str
    manifest: dict[str, Any]
    path: Path
    activated: bool
    pruned: list[str]

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready values (what `penchant train --json` prints)."""
        return {
            "version": self.version,
            "activated": self.activated,
            "path": str(self.path),
            "pruned": self.pruned,
            "manifest": self.manifest,
        }


def train(
    settings: Settings,
    store: Store,
    *,
    models: Sequence[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    activate: bool | None = None,
    console: Console | None = None,
) -> TrainResult:
    """Fit models on every event of the settings' tenant and store them as a new version.

    Each model is first fitted on the older 80% of the pairs and judged on the newest 20%
    (the offline metrics of the manifest), then fitted again on all of them for serving.

    Args:
        settings: the deployment; `settings.training` gives the defaults of the others.
        store: the store holding the events.
        models: model names; default `settings.training.models`.
        params: hyperparameters per model name, over `settings.training.params`.
        activate: serve the new version; default `settings.training.auto_activate`.
        console: where to show progress, or None for none.

    Returns:
        The new version.

    Raises:
        InvalidInput: an unknown model or hyperparameter, or no events to train on.
        Conflict: another training of the tenant is running (in any process).
    """
    started = time.perf_counter()
    names = _model_names(models if models is not None else settings.training.models)
    chosen = _model_params(names, settings.training.params, params or {})
    for name in names:
        _build(name, chosen)  # bad hyperparameters fail before any work is done
    tenant = settings.tenant
    registry = ModelRegistry.of(settings)
    with registry.training(), _progress(console) as show:
        # Erasures finished before the data is read are left out of it: once this version
        # is served, their item-side structures are rebuilt.
        erased = [job.job_id for job in store.privacy.pending_rebuilds(tenant)]
        show(f"reading the events of tenant {tenant}")
        if store.events.count(tenant) == 0:
            raise InvalidInput(
                f"tenant {tenant!r} has no events to train on; import or send some first",
                field="events",
            )
        # The consent ledger's state at the training's start decides: the events of people
        # without personalization consent then shape no model of this version.
        without = without_consent_to(settings, store, tenant, Purpose.PERSONALIZATION)
        left_out: set[str] = set()
        consenting = without.filter(store.events.interactions(tenant), left_out)
        excluding: list[pa.Table] = []  # purchases and dismissals, kept in the same pass
        weighting = Weighting()
        data = build_dataset(_keeping(consenting, excluding), weighting)
        if any(_build(name, chosen).wants_text() for name in names):
            show("reading the items' texts")
            data = with_catalog(data, store, tenant)
        if any(_wants_impressions(_build(name, chosen)) for name in names):
            # the offline metrics below still judge a held-out split: splits drop the log
            show("reading the served lists and their outcomes")
            data = with_impression_log(data, store, tenant, weighting)
        entries: dict[str, dict[str, Any]] = {}
        the_split, why_not = _offline_split(data)
        for name in names:
            entry: dict[str, Any] = {"params": chosen[name]}
            if the_split is None:
                entry["metrics"], entry["note"] = {}, why_not
            else:
                show(f"judging {name} on the newest {TEST_FRACTION:.0%} of the pairs")
                entry["metrics"], note = _offline_metrics(_build(name, chosen), the_split)
                if note:
                    entry["note"] = note
            entries[name] = entry
        version = new_version()
        with registry.staging() as staging:
            for name in names:
                show(f"fitting {name} on all {len(data):,} pairs")
                model = _build(name, chosen)
                fit_started = time.perf_counter()
                model.fit(data)
                entries[name]["fit_seconds"] = round(time.perf_counter() - fit_started, 3)
                entries[name]["class"] = type(model).__name__
                if isinstance(model, Hybrid):
                    entries[name]["trained_on"] = model.trained_on_
                model.save(staging / name)
                _save_index(model, staging / name, settings.serving, show)
            show("recording purchases and dismissals")
            _save_exclusions(staging, excluding, data)
            manifest = {
                "version": version,
                "created_at": datetime.now(UTC).isoformat(),
                "penchant": __version__,
                "tenant": tenant,
                "data": _data_summary(data),
                "consent": {
                    "purpose": without.purpose.value,
                    "default": settings.privacy.consent_default,
                    "excluded_users": len(left_out),
                },
                "models": {
                    name: {key: entries[name][key] for key in sorted(entries[name])}
                    for name in names
                },
                "training_seconds": round(time.perf_counter() - started, 3),
            }
            (staging / MANIFEST).write_bytes(
                orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"
            )
            show(f"publishing version {version}")
            activated = settings.training.auto_activate if activate is None else activate
            path = registry.publish(staging, version, activate=activated)
            if activated:
                store.privacy.mark_rebuilt(tenant, erased, version)
        pruned = registry.prune(settings.training.keep_versions)
    return TrainResult(
        version=version, manifest=manifest, path=path, activated=activated, pruned=pruned
    )


def _model_names(names: Sequence[str]) -> list[str]:
    listed = [n.strip() for n in names if n.strip()]
    if not listed:
        raise InvalidInput("models: name at least one model", field="models")
    for name in listed:
        if name not in MODELS:
            raise InvalidInput(
                f"models: unknown model {name!r}; expected one of {', '.join(MODELS)}",
                field="models",
            )
    if len(set(listed)) != len(listed):
        raise InvalidInput("models: a model is named twice", field="models")
    if listed == [Blend.name]:
        raise InvalidInput("models: blend needs other models to blend", field="models")
    return listed


def _model_params(
    names: list[str],
    configured: Mapping[str, Mapping[str, Any]],
    given: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Hyperparameters per model: the given ones over the configured ones."""
    for field, source in (("training.params", configured), ("params", given)):
        for name in source:
            if name not in MODELS:
                raise InvalidInput(
                    f"{field}: unknown model {name!r}; expected one of {', '.join(MODELS)}",
                    field=field,
                )
    for name in given:
        if name not in names:
            raise InvalidInput(
                f"params: model {name!r} is not among those trained ({', '.join(names)})",
                field="params",
            )
    return {name: {**configured.get(name, {}), **given.get(name, {})} for name in names}


def _build(name: str, params: Mapping[str, Mapping[str, Any]]) -> Recommender:
    """A new model; a blend blends fresh copies of the other models being trained."""
    if name != Blend.name:
        return create_model(name, **params[name])
    members = [_build(m, params) for m in params if m != Blend.name]
    return create_model(name, **{**params[name], "models": members})


def _wants_impressions(model: Recommender) -> bool:
    """Whether a model learns from logged impressions when there are some (the hybrid)."""
    return bool(getattr(model, "wants_impressions", lambda: False)())


def _offline_split(data: Dataset) -> tuple[Split | None, str]:
    """The temporal split the offline metrics use, or None and why there is none."""
    try:
        the_split = split(data, "temporal", test_fraction=TEST_FRACTION, rng=0)
    except InvalidInput as exc:
        return None, f"not evaluated: {exc.message}"
    if len(the_split.test) == 0 or len(the_split.train) == 0:
        return None, "not evaluated: too little data for a held-out test period"
    return the_split, ""


def _offline_metrics(model: Recommender, the_split: Split) -> tuple[dict[str, Any], str]:
    try:
        result = evaluate_model(model, the_split, (10, 20))
    except PenchantError as exc:
        return {}, f"not evaluated: {exc.message}"
    metrics: dict[str, Any] = {m: round(result.mean(m), 6) for m in METRICS}
    metrics["test_users"] = len(result.users)
    metrics["protocol"] = f"temporal, newest {TEST_FRACTION:.0%} of pairs"
    return metrics, ""


def _data_summary(data: Dataset) -> dict[str, Any]:
    newest = int(data.last_ts.max())
    return {
        "events_watermark": (_EPOCH + timedelta(microseconds=newest)).isoformat(),
        "interactions": len(data),
        "users": data.n_users,
        "items": data.n_items,
    }


@contextmanager
def _progress(console: Console | None) -> Iterator[Callable[[str], None]]:
    """A one-line display of what is being done, and for how long."""
    if console is None:
        yield lambda text: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)
        yield lambda text: bar.update(task, description=text)


def _keeping(tables: Iterable[pa.Table], kept: list[pa.Table]) -> Iterator[pa.Table]:
    """Pass the event tables on, keeping aside the rows of the exclusion types (a few %)."""
    types = pa.array(sorted({t for ts in EXCLUSION_TYPES.values() for t in ts}), pa.string())
    for table in tables:
        mask = pc.is_in(pc.cast(table.column("type"), pa.string()), value_set=types)
        chosen = table.filter(mask).select(["user_id", "item_id", "type"])
        if chosen.num_rows:
            kept.append(chosen)
        yield table


def _save_exclusions(staging: Path, tables: list[pa.Table], data: Dataset) -> None:
    """Who bought or dismissed what, for serving to leave out of their lists (`exclusions/`).

    A dismissal carries no training weight, and a purchase can be consumed again elsewhere,
    so neither can be read back from a model's training history.
    """
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    pairs = typed_pairs(tables, EXCLUSION_TYPES, data)
    for kind, matrix in pairs.items():
        arrays[f"{kind}_indptr"] = matrix.indptr
        arrays[f"{kind}_indices"] = matrix.indices
    save_arrays(staging / EXCLUSIONS, arrays)


def _save_index(
    model: Recommender, folder: Path, serving: ServingSettings, show: Callable[[str], None]
) -> None:
    """Build a factor model's retrieval index once, here, so serving workers only load it."""
    if not isinstance(model, FactorModel) or len(model.item_ids_) < serving.ann_min_items:
        return
    show(f"indexing {len(model.item_ids_):,} items of {model.name} for retrieval")
    index = ItemIndex.build(
        model.item_factors_,
        min_items=serving.ann_min_items,
        method=serving.retrieval,
        queries=model.sample_users(),
    )
    show(f"{model.name}: {index.kind} retrieval")
    index.save(folder / INDEX)
