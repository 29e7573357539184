"""`penchant slots`: define a slot from files, and export its decisions for `penchant ope`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from penchant.cli import app
from penchant.content.decisions import Decider, DecisionContext, DecisionRequest
from penchant.content.rebuild import rebuild_slot
from penchant.content.slots import Slots
from penchant.jobs.store import settings_store
from penchant.schema import Event, EventContext
from penchant.schema.content import Slot, Variant
from penchant.settings import load_settings
from penchant.store.state import MemoryState

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    done = runner.invoke(app, list(args))
    return done.exit_code, done.output


def test_slots_are_defined_listed_and_approved_from_files(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    slot = tmp_path / "slot.json"
    slot.write_text(json.dumps({"id": "cta", "policy": {"name": "ucb1", "c": 0.5}}))
    variants = tmp_path / "variants.json"
    variants.write_text(
        json.dumps(
            [{"id": "buy", "text": "Buy now"}, {"id": "try", "text": "Try", "status": "pending"}]
        )
    )
    assert run("slots", "put", str(slot), "--data-dir", data)[0] == 0
    assert run("slots", "variants", "cta", str(variants), "--data-dir", data)[0] == 0
    code, listed = run("slots", "list", "--data-dir", data, "--json")
    assert code == 0
    assert json.loads(listed) == [
        {
            "id": "cta",
            "policy": {"name": "ucb1", "c": 0.5},
            "approved": 1,
            "pending": 1,
            "retired": 0,
        }
    ]
    assert run("slots", "approve", "cta", "try", "--data-dir", data)[0] == 0
    shown = json.loads(run("slots", "show", "cta", "--data-dir", data)[1])
    assert {v["id"]: v["status"] for v in shown["variants"]} == {
        "buy": "approved",
        "try": "approved",
    }


def test_bad_files_and_names_are_one_line_errors(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "x", "policy": {"name": "linucb", "alpha": -2}}))
    code, output = run("slots", "put", str(bad), "--data-dir", data)
    assert code == 1 and "alpha" in output and len(output.strip().splitlines()) == 1
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code, output = run("slots", "put", str(broken), "--data-dir", data)
    assert code == 1 and "not valid JSON" in output
    code, output = run("slots", "approve", "nope", "v", "--data-dir", data)
    assert code == 1 and "no variant" in output
    code, output = run("slots", "propose", "nope", "--brief", "b", "--data-dir", data)
    assert code == 1 and "content.generation_url" in output


def test_exported_decisions_feed_off_policy_evaluation(tmp_path: Path) -> None:
    """Decisions logged by the decider, exported, then judged by `penchant ope`: the IPS of
    a uniform policy is the mean of reward / (K * propensity), computed here by hand."""
    settings = load_settings(tmp_path / "data")
    store = settings_store(settings)
    try:
        slots = Slots(store.content)
        slot = {"id": "hero", "policy": {"name": "linucb", "alpha": 0.5}, "features": ["device"]}
        slots.put("default", Slot.model_validate(slot))
        for vid in ("a", "b", "c"):
            slots.put_variant("default", "hero", Variant(id=vid, text=vid))
        state = MemoryState()

        def log(tenant: str, event: Event) -> None:
            store.events.append(tenant, [event])

        decider = Decider(
            slots, state, log, rebuild=lambda t, live: rebuild_slot(store.events, state, t, live)
        )
        rng = np.random.default_rng(0)
        for n in range(80):
            device = ("mobile", "desktop")[n % 2]
            ask = DecisionRequest(
                slot="hero", session_id=f"s{n}", context=DecisionContext(device=device)
            )
            decision = decider.decide("default", ask)
            if rng.random() < (0.6 if decision.variant_id == "a" else 0.2):
                click = Event(
                    session_id=f"s{n}",
                    type="click",
                    context=EventContext(decision_id=decision.decision_id),
                )
                decider.reward("default", [click])
    finally:
        store.close()
    logs = tmp_path / "decisions.csv"
    code, output = run(
        "slots",
        "export",
        "hero",
        "--output",
        str(logs),
        "--data-dir",
        str(tmp_path / "data"),
        "--json",
    )
    assert code == 0, output
    assert json.loads(output)["rows"] == 80 and json.loads(output)["actions"] == ["a", "b", "c"]
    rows = list(csv.DictReader(logs.open()))
    reward = np.array([float(r["reward"]) for r in rows])
    pscore = np.array([float(r["propensity"]) for r in rows])
    assert set(reward) <= {0.0, 1.0} and reward.sum() > 0 and (pscore > 0).all()
    uniform = np.full((80, 3, 1), 1 / 3)
    dist = tmp_path / "uniform.npy"
    np.save(dist, uniform)
    code, output = run("ope", "--logs", str(logs), "--action-dist", str(dist), "--json")
    assert code == 0, output
    estimates = json.loads(output)
    assert np.isclose(estimates["ips"]["value"], np.mean(reward / (3 * pscore)), rtol=1e-9)
