"""The regret simulation: contextual policies beat context-blind ones on a simulated slot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from penchant.cli import app
from penchant.ingest.world import World, WorldConfig
from penchant.ingest.world_variants import SlotWorld
from penchant.jobs.bandit_sim import save_report, simulate_regret


def test_the_best_variant_depends_on_the_person_and_the_device() -> None:
    world = World.generate(WorldConfig(n_users=500, n_items=100, days=1, seed=3))
    sim = SlotWorld(world)
    requests = sim.requests(4_000, np.random.default_rng(0))
    truth = sim.click_probability(requests.users, requests.devices)
    assert truth.shape == (4_000, 8) and ((truth > 0) & (truth < 1)).all()
    best = truth.argmax(axis=1)
    assert len(np.unique(best)) >= 4  # no single variant is best for everyone
    # short copy is better on phones than on desktops for the same person and topic
    users = np.arange(50)
    mobile = sim.click_probability(users, np.zeros(50, dtype=np.int64))
    desktop = sim.click_probability(users, np.ones(50, dtype=np.int64))
    short = sim.variant_style == 0
    assert (mobile[:, short] > desktop[:, short]).all()
    assert (mobile[:, ~short] < desktop[:, ~short]).all()


def test_contextual_policies_regret_less_than_epsilon_greedy(tmp_path: Path) -> None:
    policies = {
        "epsilon-greedy": {"name": "epsilon-greedy", "epsilon": 0.1},
        "linucb": {"name": "linucb", "alpha": 1.0},
    }
    report = simulate_regret(4_000, seed=1, policies=policies)
    greedy, linucb = report.runs
    assert np.all(np.diff(greedy.regret) >= 0) and np.all(np.diff(linucb.regret) >= 0)
    assert linucb.regret[-1] < 0.85 * greedy.regret[-1]
    # an oracle's click rate bounds every policy's, and the regret is the gap in expectation
    for run in report.runs:
        assert run.clicks / report.decisions < report.oracle_ctr + 0.02
    written = save_report(report, tmp_path)
    assert [p.name for p in written] == ["regret.json", "regret.png"]
    summary = json.loads((tmp_path / "regret.json").read_text())
    assert summary["runs"][1]["regret_vs_epsilon_greedy"] < -0.15
    assert (tmp_path / "regret.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_same_seed_gives_the_same_regret() -> None:
    policies = {"ucb1": {"name": "ucb1"}}
    one = simulate_regret(1_000, seed=4, policies=policies).runs[0]
    two = simulate_regret(1_000, seed=4, policies=policies).runs[0]
    assert np.array_equal(one.regret, two.regret)


def test_the_command_prints_json_and_refuses_unknown_policies() -> None:
    runner = CliRunner()
    done = runner.invoke(
        app, ["bandits", "simulate", "--decisions", "500", "--policies", "ucb1", "--json", "-q"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["runs"][0]["policy"] == "ucb1"
    bad = runner.invoke(app, ["bandits", "simulate", "--policies", "nope"])
    assert bad.exit_code == 1 and "unknown policy 'nope'" in bad.output
