"""`penchant evaluate`: read a dataset, split it, fit and judge models, write the report."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from penchant import __version__
from penchant.data import PROTOCOLS, Dataset, Split, Weighting, build_dataset, split
from penchant.errors import InvalidInput
from penchant.evaluation.report import write_report
from penchant.evaluation.run import ModelResult, evaluate_model
from penchant.evaluation.tuning import SEARCH_SPACES, auto_select
from penchant.ingest.bulk import read_events
from penchant.ingest.catalog import file_rows
from penchant.ingest.columns import TimestampUnit
from penchant.ingest.formats import get_preset, guess_format
from penchant.ingest.rejects import Rejects
from penchant.ingest.source import source_columns
from penchant.jobs.imports import event_spec
from penchant.jobs.store import with_catalog
from penchant.models import MODELS, Blend, Recommender, create_model
from penchant.models.text import item_text
from penchant.schema import EventVocabulary, Item
from penchant.store import Store

#: What `--models` accepts besides the model names.
AUTO = "auto"
#: Plain column names of an evaluation file and the event fields they fill.
COLUMN_ALIASES = {"user": "user_id", "item": "item_id", "value": "value", "timestamp": "timestamp"}


@dataclass(frozen=True)
class EvaluateOptions:
    """Everything `penchant evaluate` takes; see the command's help for each."""

    dataset: Path
    output: Path
    format: str | None = None
    protocol: str = "holdout"
    models: Sequence[str] = ("popular", "itemknn", "ials", "bpr", "ease")
    ks: Sequence[int] = (10, 20, 50)
    seed: int = 0
    test_fraction: float | None = None  # None: 0.1 of the items for cold-start, else 0.2
    test_users: float = 0.1
    trials: int = 20
    recency_half_life_days: float | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    header_names: Sequence[str] | None = None
    delimiter: str | None = None
    event_type: str | None = None
    timestamp_unit: TimestampUnit | None = None
    weighting: Weighting = field(default_factory=Weighting)
    items: Path | None = None
    auto_models: Sequence[str] | None = None  # None: auto's own list


def load_events(options: EvaluateOptions, rejects: Path) -> Iterator[pa.Table]:
    """The dataset's events, validated like an import, not stored anywhere.

    Raises:
        InvalidInput: the file or options cannot be used.
    """
    path = options.dataset
    preset = get_preset(options.format or guess_format(path))
    if path.is_dir():
        if preset.events_file is None:
            raise InvalidInput(
                f"{path} is a folder; give the file itself for --format {preset.name}"
            )
        path = path / preset.events_file
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    spec = event_spec(
        preset, {}, options.event_type, options.timestamp_unit, options.delimiter, None
    )
    if options.header_names is not None:
        source = dataclasses.replace(
            spec.source, header=False, column_names=tuple(options.header_names)
        )
        spec = dataclasses.replace(spec, source=source)
    mapping = dict(spec.mapping)
    available = source_columns(path, spec.source) or []
    for column, target in COLUMN_ALIASES.items():
        if column in available and target not in available and column not in mapping:
            mapping[column] = target
    for name, column in options.columns.items():
        if name not in COLUMN_ALIASES:
            raise InvalidInput(f"--{name}-col: expected one of {', '.join(COLUMN_ALIASES)}")
        mapping[column] = COLUMN_ALIASES[name]
    event_type = spec.event_type
    if event_type is None and "type" not in available and "type" not in mapping.values():
        # a plain interaction file: ratings when it has values, else clicks
        event_type = "rating" if "value" in mapping.values() or "value" in available else "click"
    spec = dataclasses.replace(spec, mapping=mapping, event_type=event_type)
    return read_events(path, spec, vocabulary=EventVocabulary(), rejects=rejects)


def run_evaluation(options: EvaluateOptions, *, console: Console | None = None) -> dict[str, Any]:
    """Evaluate the models on the dataset file and write the report to `options.output`.

    Args:
        options: what to do.
        console: where to draw progress, or None for none.

    Returns:
        The content of metrics.json.

    Raises:
        InvalidInput: bad options or data.
    """
    _check(options)
    data, rejected, texts = read_dataset(options)
    header: dict[str, Any] = {
        "dataset": options.dataset.name,
        "format": options.format or guess_format(options.dataset),
        "rejected_rows": rejected,
    }
    if texts is not None:
        header["item_texts"] = texts.summary()
    return evaluate_dataset(data, options, header=header, console=console)


def read_dataset(
    options: EvaluateOptions, *, catalog: bool = False
) -> tuple[Dataset, int, ItemTexts | None]:
    """The dataset file's interactions, with the items' texts and categories when the models
    want them or `catalog` asks for them (`load_item_texts`); also how many event rows were
    rejected, and the texts read.

    Raises:
        InvalidInput: bad data.
    """
    with tempfile.TemporaryDirectory() as tmp:
        rejects = Path(tmp) / "rejects.jsonl"
        data = build_dataset(load_events(options, rejects), options.weighting)
        rejected = sum(1 for _ in rejects.open()) if rejects.exists() else 0
        texts = load_item_texts(options, Path(tmp) / "item-rejects.jsonl", wanted=catalog)
    if texts is not None:
        data = data.with_item_texts(texts.texts, texts.categories)
    return data, rejected, texts


@dataclass(frozen=True)
class ItemTexts:
    """The items' texts an evaluation read, and from where."""

    path: Path
    texts: dict[str, str]
    categories: dict[str, list[str]]
    rejected: int

    def summary(self) -> dict[str, Any]:
        """What the report says about them."""
        return {"file": self.path.name, "items": len(self.texts), "rejected_rows": self.rejected}


def load_item_texts(
    options: EvaluateOptions, rejects: Path, *, wanted: bool = False
) -> ItemTexts | None:
    """The texts of the items (`item_text`: title, body, categories, tags) by item id.

    From `options.items`; without it, from the catalog file that sits beside the events in a
    dataset of a known format (movies.csv beside MovieLens ratings) when a model reads text,
    `auto` may choose one, or `wanted` says so.
    A plain file has an `item` (or `item_id`, `id`) column and text columns such as title,
    description (or text), categories and tags (`|`-separated or a JSON list).

    Raises:
        InvalidInput: the file is missing or has no usable row.
    """
    preset = get_preset(options.format or guess_format(options.dataset))
    path = options.items
    if path is None:
        wanted = (
            wanted
            or AUTO in options.models
            or any(_named_model(name, options).wants_text() for name in _plain(options))
        )
        if not wanted:
            return None
        folder = options.dataset if options.dataset.is_dir() else options.dataset.parent
        if preset.items_file is None or not (folder / preset.items_file).is_file():
            return None
        path = folder / preset.items_file
    if not path.is_file():
        raise InvalidInput(f"--items {path}: no such file", field="items")
    reader = preset.items if preset.items is not None and path.name == preset.items_file else None
    if reader is None:
        source = get_preset(guess_format(path)).events.source
        reader = file_rows(path, source, {"item": "id", "description": "text"}, "items")
    sink = Rejects(rejects)
    texts: dict[str, str] = {}
    categories: dict[str, list[str]] = {}
    try:
        for number, record in reader(path, sink):
            try:
                item = Item.model_validate(record)
            except ValidationError as exc:
                sink.write(number, record, [str(e["msg"]) for e in exc.errors()])
                continue
            texts[item.id] = item_text(item)
            categories[item.id] = list(item.categories)
    finally:
        sink.close()
    if not texts:
        raise InvalidInput(f"--items {path.name}: no valid item row", field="items")
    return ItemTexts(path, texts, categories, sink.count)


def _plain(options: EvaluateOptions) -> list[str]:
    """The named models other than `auto`."""
    return [name for name in options.models if name != AUTO]


def evaluate_stored(
    store: Store, tenant: str, options: EvaluateOptions, *, console: Console | None = None
) -> dict[str, Any]:
    """Evaluate the models on a tenant's stored events (`options.dataset` is not read).

    The events go through the same `build_dataset` as any training run.
    """
    _check(options)
    data = build_dataset(store.events.interactions(tenant), options.weighting)
    header: dict[str, Any] = {"dataset": f"tenant {tenant}"}
    if AUTO in options.models or any(
        _named_model(name, options).wants_text() for name in _plain(options)
    ):
        data = with_catalog(data, store, tenant)
        if data.item_texts is not None:
            items = int(np.count_nonzero(np.char.str_len(data.item_texts)))
            header["item_texts"] = {"file": None, "items": items, "rejected_rows": 0}
    return evaluate_dataset(data, options, header=header, console=console)


def evaluate_dataset(
    data: Dataset,
    options: EvaluateOptions,
    *,
    header: Mapping[str, Any],
    console: Console | None = None,
) -> dict[str, Any]:
    """Split, fit, judge and report: what every evaluation entry point ends in.

    Returns:
        The content of metrics.json, also written to `options.output`.
    """
    _check(options)
    for name in _plain(options):
        if data.item_texts is None and _named_model(name, options).reads_text():
            raise InvalidInput(
                f"--models {name}: needs the items' texts; give --items FILE (a CSV with an "
                "item column and title, description, categories or tags columns)",
                field="items",
            )
    the_split = split(
        data,
        options.protocol,
        test_fraction=held_out_share(options),
        test_users=options.test_users,
        rng=options.seed,
    )
    validation = _validation(the_split, options) if AUTO in options.models else None
    named_split = the_split.with_recency(options.recency_half_life_days)
    metric = f"ndcg@{options.ks[0]}"
    results: list[ModelResult] = []
    with _progress(console) as progress:
        for name in options.models:
            if name == AUTO:
                assert validation is not None
                results.append(_auto(the_split, validation, options, metric, progress))
                continue
            progress(f"fitting {name}", None)
            model = _named_model(name, options)
            results.append(
                evaluate_model(model, named_split, options.ks, label=name, seed=options.seed)
            )
    document = {
        **header,
        "protocol": options.protocol,
        "seed": options.seed,
        "users": data.n_users,
        "items": data.n_items,
        "interactions": len(data),
        "penchant": __version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return write_report(
        options.output,
        results,
        the_split,
        options.ks,
        header=document,
        validation=validation,
        rng=options.seed,
    )


def _check(options: EvaluateOptions) -> None:
    if options.protocol not in PROTOCOLS:
        raise InvalidInput(
            f"--protocol {options.protocol!r}: expected one of {', '.join(PROTOCOLS)}"
        )
    if not options.models:
        raise InvalidInput("--models: name at least one model")
    known = [*MODELS, AUTO]
    for name in options.models:
        if name not in known:
            raise InvalidInput(f"--models: unknown model {name!r}; expected {', '.join(known)}")
    if len(set(options.models)) != len(options.models):
        raise InvalidInput("--models: a model is named twice")
    if not options.ks or any(k < 1 for k in options.ks):
        raise InvalidInput("--k: cut-offs must be whole numbers of at least 1")
    if options.trials < 1:
        raise InvalidInput("--trials: must be at least 1")
    if options.auto_models is not None:
        if AUTO not in options.models:
            raise InvalidInput("--auto-models: only with --models auto", field="auto_models")
        unknown = [m for m in options.auto_models if m not in SEARCH_SPACES]
        if unknown or not options.auto_models:
            raise InvalidInput(
                f"--auto-models: cannot tune {', '.join(unknown) or 'nothing'}; "
                f"expected some of {', '.join(SEARCH_SPACES)}",
                field="auto_models",
            )


def _validation(the_split: Split, options: EvaluateOptions) -> Split:
    """The training pairs split again by the same protocol: what tuning may look at."""
    return split(
        the_split.train,
        options.protocol,
        test_fraction=held_out_share(options),
        test_users=options.test_users,
        rng=options.seed + 1,
    )


def held_out_share(options: EvaluateOptions) -> float:
    """The held-out share: as given, else 10% of the items (cold-start) or 20% of the pairs."""
    if options.test_fraction is not None:
        return options.test_fraction
    return 0.1 if options.protocol == "cold-start" else 0.2


def _named_model(name: str, options: EvaluateOptions) -> Recommender:
    """A model with its default hyperparameters; `blend` blends the other named ones."""
    if name != Blend.name:
        model = create_model(name)
        return model.clone(rng=options.seed) if "rng" in model.get_params() else model
    members = [m for m in options.models if m in SEARCH_SPACES] or ["itemknn", "ials", "ease"]
    return Blend([_named_model(m, options) for m in members])


def _auto(
    the_split: Split,
    validation: Split,
    options: EvaluateOptions,
    metric: str,
    progress: Callable[[str, float | None], None],
) -> ModelResult:
    def on_trial(model: str, number: int, value: float) -> None:
        progress(f"tuning {model} (trial {number + 1}, {metric} {value:.4f})", None)

    choice = auto_select(
        validation,
        options.auto_models,
        n_trials=options.trials,
        metric=metric,
        rng=options.seed,
        on_trial=on_trial,
    )
    progress(f"fitting auto: {choice.description}", None)
    notes = {
        "chosen on validation": choice.description,
        "recency half-life (days)": choice.recency_half_life_days,
        "validation score by recency half-life": {
            h: round(v, 4) for h, v in choice.recency_scores.items()
        },
        f"validation {metric}": {n: round(v, 4) for n, v in choice.candidates.items()},
        "tuned parameters": {n: t.params for n, t in choice.tuned.items()},
    }
    # the recency chosen on validation applies to the training pairs the model is fitted on
    weighted = the_split.with_recency(choice.recency_half_life_days)
    model = choice.build(rng=options.seed)
    return evaluate_model(model, weighted, options.ks, label=AUTO, notes=notes, seed=options.seed)


@contextmanager
def _progress(console: Console | None) -> Iterator[Callable[[str, float | None], None]]:
    """A one-line progress display: what is being done, and for how long."""
    if console is None:
        yield lambda text, fraction: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("reading", total=None)
        yield lambda text, fraction: bar.update(task, description=text)
