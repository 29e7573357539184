"""`penchant ope`: off-policy evaluation of a policy's action distribution on logged feedback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from penchant.cli.common import Json, out, print_json
from penchant.experiments import ESTIMATORS, Estimate, estimate_all
from penchant.experiments.ope_data import read_inputs

_TITLES = {
    "ips": "IPS (inverse propensity)",
    "snips": "SNIPS (self-normalized)",
    "dm": "DM (direct method)",
    "dr": "DR (doubly robust)",
}


def ope(
    logs: Annotated[
        Path,
        typer.Option(
            "--logs",
            help="CSV of logged rounds: action (or item_id), position, reward (or click), "
            "propensity (or propensity_score) and context columns.",
            show_default=False,
        ),
    ],
    action_dist: Annotated[
        Path,
        typer.Option(
            "--action-dist",
            help=".npy of the evaluated policy's probabilities, shape "
            "(rounds, actions, positions).",
            show_default=False,
        ),
    ],
    estimated_rewards: Annotated[
        Path | None,
        typer.Option(
            "--estimated-rewards",
            help=".npy of a reward model's predictions, shaped like --action-dist (default: "
            "the built-in cross-fitted linear model on the context columns).",
            show_default=False,
        ),
    ] = None,
    alpha: Annotated[float, typer.Option(help="One minus the coverage of the intervals.")] = 0.05,
    clip: Annotated[
        float | None,
        typer.Option(
            "--clip",
            help="Cap the importance weights of IPS and DR at this value.",
            show_default=False,
        ),
    ] = None,
    bootstrap: Annotated[
        int,
        typer.Option(help="Percentile-bootstrap intervals from this many resamples (0: analytic)."),
    ] = 0,
    folds: Annotated[int, typer.Option(help="Cross-fitting folds of the built-in model.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds and the bootstrap.")] = 0,
    json: Json = False,
) -> None:
    """Estimate the value a policy would have had on logged traffic: IPS, SNIPS, DM and DR."""
    feedback, dist, q = read_inputs(logs, action_dist, estimated_rewards)
    estimates = estimate_all(
        reward=feedback.reward,
        action=feedback.action,
        pscore=feedback.pscore,
        action_dist=dist,
        position=feedback.position,
        estimated_rewards=q,
        context=feedback.context,
        lambda_=clip,
        alpha=alpha,
        n_bootstrap=bootstrap,
        folds=folds,
        rng=np.random.default_rng(seed),
    )
    if json:
        print_json({name: estimates[name].as_dict() for name in ESTIMATORS})
        return
    _print_table(estimates, alpha, feedback.n_rounds, bootstrap, q is None)


def _print_table(
    estimates: dict[str, Estimate], alpha: float, n_rounds: int, bootstrap: int, built_in: bool
) -> None:
    interval = f"bootstrap, {bootstrap} resamples" if bootstrap else "analytic"
    table = Table(title=f"Policy value on {n_rounds} logged rounds")
    table.add_column("estimator", justify="left")
    table.add_column("value", justify="right")
    table.add_column(f"{100 * (1 - alpha):g}% interval ({interval})", justify="right")
    table.add_column("std. error", justify="right")
    for name in ESTIMATORS:
        estimate = estimates[name]
        low, high = estimate.ci
        table.add_row(
            _TITLES[name],
            f"{estimate.value:.5g}",
            f"[{low:.4g}, {high:.4g}]",
            f"{estimate.se:.3g}",
        )
    console = out()
    console.print(table)
    if built_in:
        console.print(
            "DM and DR use the built-in reward model, cross-fitted on the context columns."
        )
