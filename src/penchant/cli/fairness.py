"""`penchant fairness audit`: a model's lists re-ranked at every strength, and the trade-off."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from penchant.cli.common import Json, err, out, print_json
from penchant.cli.evaluate import (
    EventTypeOption,
    FormatOption,
    HeaderColumns,
    ItemCol,
    MinItem,
    MinUser,
    ProtocolOption,
    RatingThreshold,
    SepOption,
    TestFraction,
    TestUsers,
    TimeCol,
    TimestampUnitOption,
    UserCol,
    ValueCol,
    data_options,
)
from penchant.jobs.fairness_audit import AuditOptions, run_audit
from penchant.jobs.fairness_report import write_audit
from penchant.models import MODELS

app = typer.Typer(help="Fairness, diversity and popularity bias of recommendations.")


@app.command("audit")
def audit(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the audit.", show_default=False)
    ],
    dataset: Annotated[
        Path, typer.Option("--dataset", help="A dataset folder or event file.", show_default=False)
    ],
    format: FormatOption = None,
    protocol: ProtocolOption = "holdout",
    model: Annotated[str, typer.Option(help=f"One of {', '.join(MODELS)}.")] = "ease",
    k: Annotated[int, typer.Option("--k", help="The cut-off judged.", min=1)] = 10,
    candidates: Annotated[
        int, typer.Option(help="The model's top items each list is re-ranked from.", min=1)
    ] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the split and the model.")] = 0,
    test_fraction: TestFraction = None,
    test_users: TestUsers = 0.1,
    user_col: UserCol = None,
    item_col: ItemCol = None,
    value_col: ValueCol = None,
    time_col: TimeCol = None,
    sep: SepOption = None,
    columns: HeaderColumns = None,
    event_type: EventTypeOption = None,
    timestamp_unit: TimestampUnitOption = None,
    rating_threshold: RatingThreshold = None,
    min_user: MinUser = 1,
    min_item: MinItem = 1,
    items: Annotated[
        Path | None,
        typer.Option(
            "--items",
            help="Item categories: a CSV with an item column and a categories column (default: "
            "the dataset's own catalog file, such as movies.csv beside MovieLens ratings).",
            show_default=False,
        ),
    ] = None,
    json: Json = False,
) -> None:
    """Re-rank a model's lists with each re-ranker (diversity, calibration, long tail,
    popularity penalty, fair exposure) at each strength; write audit.json, audit.md and
    trade-off plots. The data options are `penchant evaluate`'s."""
    data = data_options(
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
        models=(model,),
    )
    options = AuditOptions(data=data, model=model, k=k, candidates=candidates)
    rows = run_audit(options, console=None if json else err())
    header = {
        "dataset": dataset.name,
        "model": model,
        "protocol": protocol,
        "seed": seed,
        "candidates": candidates,
        "k": k,
    }
    summary = write_audit(output, rows, k, header)
    if json:
        print_json(summary)
        return
    console = out()
    best = summary["best_arp_setting"]
    base = summary["baseline"]
    console.print(f"Without re-ranking: NDCG@{k} {base[f'ndcg@{k}']:.4f}, ARP {base['arp']:.1f}.")
    if best is None:
        console.print("No setting cut ARP by 30% within 5% of NDCG.")
    else:
        console.print(
            f"{best['reranker']} at {best['strength']:g}: ARP -{100 * best['arp_cut']:.1f}%, "
            f"NDCG -{100 * best['ndcg_loss']:.1f}%."
        )
    console.print(f"Report: {output / 'audit.md'}")
