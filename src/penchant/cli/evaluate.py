"""`penchant evaluate`: offline evaluation of models on a dataset file, with a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from rich.table import Table

from penchant.cli.common import DataDir, Json, Tenant, err, out, print_json, settings_for
from penchant.data import PROTOCOLS, Weighting
from penchant.errors import InvalidInput
from penchant.evaluation.tuning import AUTO_MODELS
from penchant.ingest.columns import TimestampUnit
from penchant.ingest.formats import PRESETS
from penchant.jobs.evaluate import AUTO, EvaluateOptions, evaluate_stored, run_evaluation
from penchant.jobs.store import opened_store
from penchant.models import MODELS


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise InvalidInput(f"{option} {text!r}: expected whole numbers such as 10,20,50") from exc
    if not values:
        raise InvalidInput(f"{option}: give at least one value")
    return values


#: Data options `penchant evaluate` and `penchant fairness audit` share.
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        help=f"One of {', '.join(PRESETS)} (default: from the file name).",
        show_default=False,
    ),
]
ProtocolOption = Annotated[str, typer.Option(help=f"One of {', '.join(PROTOCOLS)}.")]
TestFraction = Annotated[
    float | None,
    typer.Option(
        help="Held-out share: of pairs (temporal), of each user's (holdout, strong), or "
        "of the items (cold-start). Default 0.2; 0.1 for cold-start."
    ),
]
UserCol = Annotated[str | None, typer.Option(help="Column of the user id.")]
ItemCol = Annotated[str | None, typer.Option(help="Column of the item id.")]
ValueCol = Annotated[str | None, typer.Option(help="Column of the value.")]
TimeCol = Annotated[str | None, typer.Option(help="Column of the time.")]
SepOption = Annotated[str | None, typer.Option(help="Field separator, e.g. ',' or tab.")]
RatingThreshold = Annotated[
    float | None, typer.Option(help="Ratings below this are not interactions.")
]
TestUsers = Annotated[float, typer.Option(help="strong: share of users held out.")]
HeaderColumns = Annotated[
    str | None,
    typer.Option(help="Names of the columns of a file without a header, comma-separated."),
]
EventTypeOption = Annotated[
    str | None, typer.Option("--type", help="Event type of every row (default: rating).")
]
TimestampUnitOption = Annotated[
    str | None, typer.Option(help="s, ms, us, ns or iso (default: guessed).")
]
MinUser = Annotated[int, typer.Option(help="Drop users with fewer items.")]
MinItem = Annotated[int, typer.Option(help="Drop items with fewer users.")]


def evaluate(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the report.", show_default=False)
    ],
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            help="A dataset folder or event file (default: the data directory's stored events).",
            show_default=False,
        ),
    ] = None,
    format: FormatOption = None,
    protocol: ProtocolOption = "holdout",
    models: Annotated[
        str, typer.Option(help=f"Comma-separated: {', '.join([*MODELS, AUTO])}.")
    ] = "popular,itemknn,ials,bpr,ease",
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "10,20,50",
    seed: Annotated[int, typer.Option(help="Seed of the split, the models and tuning.")] = 0,
    test_fraction: TestFraction = None,
    test_users: TestUsers = 0.1,
    trials: Annotated[int, typer.Option(help="auto: tuning trials per model.")] = 20,
    auto_models: Annotated[
        str | None,
        typer.Option(
            help="auto: the models it tunes, comma-separated (default: "
            f"{', '.join(AUTO_MODELS)}, and content when the items have texts).",
            show_default=False,
        ),
    ] = None,
    user_col: UserCol = None,
    item_col: ItemCol = None,
    value_col: ValueCol = None,
    time_col: TimeCol = None,
    sep: SepOption = None,
    columns: HeaderColumns = None,
    event_type: EventTypeOption = None,
    timestamp_unit: TimestampUnitOption = None,
    rating_threshold: RatingThreshold = None,
    recency_half_life: Annotated[
        float | None,
        typer.Option(
            help="Weight each user's older items down with this half-life in days "
            "(auto chooses its own)."
        ),
    ] = None,
    min_user: MinUser = 1,
    min_item: MinItem = 1,
    items: Annotated[
        Path | None,
        typer.Option(
            "--items",
            help="Item texts for content models: a CSV with an item column and title, "
            "description, categories or tags columns (default: the dataset's own catalog "
            "file, such as movies.csv beside MovieLens ratings).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
    tenant: Tenant = None,
    json: Json = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Fit models on a split of a dataset and judge their full rankings; write a report.

    The report folder gets report.md (leaderboard with confidence intervals and paired
    tests), metrics.json, PNG plots, the exact split (train.csv, validation.csv, test.csv)
    and each model's lists (recs-MODEL.csv).
    """
    options = data_options(
        dataset=dataset,
        output=output,
        format=format,
        protocol=protocol,
        seed=seed,
        test_fraction=test_fraction,
        test_users=test_users,
        columns={"user": user_col, "item": item_col, "value": value_col, "timestamp": time_col},
        header=columns,
        sep=sep,
        event_type=event_type,
        timestamp_unit=timestamp_unit,
        rating_threshold=rating_threshold,
        min_user=min_user,
        min_item=min_item,
        items=items,
        models=[m.strip() for m in models.split(",") if m.strip()],
        ks=_ints(k, "--k"),
        trials=trials,
        auto_models=[m.strip() for m in auto_models.split(",") if m.strip()]
        if auto_models is not None
        else None,
        recency_half_life_days=recency_half_life,
    )
    console = None if quiet or json else err()
    if dataset is not None:
        document = run_evaluation(options, console=console)
    else:
        settings = settings_for(data_dir)
        with opened_store(settings) as store:
            document = evaluate_stored(store, tenant or settings.tenant, options, console=console)
    if json:
        print_json(document)
        return
    print_leaderboard(document, output)


def data_options(
    *,
    dataset: Path | None,
    output: Path,
    format: str | None,
    protocol: str,
    seed: int,
    test_fraction: float | None,
    test_users: float,
    columns: dict[str, str | None],
    header: str | None,
    sep: str | None,
    event_type: str | None,
    timestamp_unit: str | None,
    rating_threshold: float | None,
    min_user: int,
    min_item: int,
    items: Path | None,
    **rest: Any,
) -> EvaluateOptions:
    """The `EvaluateOptions` of the data options `penchant evaluate` and `penchant fairness
    audit` share (`rest`: the other fields of `EvaluateOptions`).

    Raises:
        InvalidInput: an unknown timestamp unit.
    """
    units = get_args(TimestampUnit)
    if timestamp_unit is not None and timestamp_unit not in units:
        raise InvalidInput(f"--timestamp-unit {timestamp_unit!r}: expected one of {units}")
    return EvaluateOptions(
        dataset=dataset or Path("."),
        output=output,
        format=format,
        protocol=protocol,
        seed=seed,
        test_fraction=test_fraction,
        test_users=test_users,
        columns={name: column for name, column in columns.items() if column is not None},
        header_names=[c.strip() for c in header.split(",")] if header else None,
        delimiter=sep,
        event_type=event_type,
        timestamp_unit=timestamp_unit,  # type: ignore[arg-type]
        weighting=Weighting(
            rating_threshold=rating_threshold,
            min_user_interactions=min_user,
            min_item_interactions=min_item,
        ),
        items=items,
        **rest,
    )


def print_leaderboard(document: dict[str, object], output: Path) -> None:
    """The leaderboard of an evaluation as a table, and where its report is."""
    ks = document["ks"]
    assert isinstance(ks, list)
    models = document["models"]
    assert isinstance(models, dict)
    k0, k1 = ks[0], ks[min(1, len(ks) - 1)]
    table = Table(title=f"{document['dataset']} · {document['protocol']} · seed {document['seed']}")
    for column in ("model", f"ndcg@{k0}", f"recall@{k1}", f"coverage@{k0}", "fit s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    ranked = sorted(models.items(), key=lambda kv: -kv[1]["metrics"][f"ndcg@{k0}"])
    for name, entry in ranked:
        metrics, intervals = entry["metrics"], entry["intervals"]
        low, high = intervals[f"ndcg@{k0}"]
        table.add_row(
            name,
            f"{metrics[f'ndcg@{k0}']:.4f} [{low:.3f}, {high:.3f}]",
            f"{metrics[f'recall@{k1}']:.4f}",
            f"{metrics[f'coverage@{k0}']:.3f}",
            f"{entry['fit_seconds']:.2f}",
        )
    console = out()
    console.print(table)
    console.print(f"Report: {output / 'report.md'}")
