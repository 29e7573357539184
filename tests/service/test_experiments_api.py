"""/v1/experiments: define, start, ramp and stop an A/B test; its arms served and logged."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apitools import admin_client, seed_world
from fastapi.testclient import TestClient
from scipy import stats

from penchant.schema import Event
from penchant.settings import Settings, load_settings
from penchant.store import EventFilter

POPULAR = {"stages": [{"stage": "model", "model": "popular", "n": 100}, {"stage": "score"}]}
AB = {
    "surface": "default",
    "arms": [
        {"name": "control", "surface": "default"},
        {"name": "popular", "surface": "popular", "weight": 1.0},
    ],
    "salt": "tests",  # a fixed split: the statistical checks below do not depend on chance
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = load_settings(tmp_path, surfaces={"popular": POPULAR})
    seed_world(settings)
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    from penchant.service.app import create_app

    with admin_client(create_app(settings)) as client:
        yield client


def put(client: TestClient, name: str, body: dict[str, Any]) -> Any:
    return client.put(f"/v1/experiments/{name}", json=body)


def test_an_experiment_is_a_draft_until_started_then_fixed(client: TestClient) -> None:
    made = put(client, "ab", AB)
    assert made.status_code == 200, made.text
    draft = made.json()
    assert draft["status"] == "draft" and draft["history"] == [] and draft["salt"]
    # a draft can be redefined; it keeps its salt
    again = put(client, "ab", {**AB, "ramp": 0.5}).json()
    assert again["ramp"] == 0.5 and again["salt"] == draft["salt"]
    # without a salt a random one is drawn, and a redefined draft keeps it
    unsalted = {k: v for k, v in AB.items() if k != "salt"}
    drawn = put(client, "ab2", unsalted).json()["salt"]
    assert drawn and drawn != "tests"
    assert put(client, "ab2", {**unsalted, "ramp": 0.5}).json()["salt"] == drawn
    started = client.post("/v1/experiments/ab/start")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running"
    assert [c["status"] for c in started.json()["history"]] == ["running"]
    refused = put(client, "ab", AB)
    assert refused.status_code == 409 and "fixed" in refused.json()["error"]["message"]
    ramped = client.put("/v1/experiments/ab/ramp", json={"ramp": 0.8}).json()
    assert ramped["ramp"] == 0.8 and [c["ramp"] for c in ramped["history"]] == [0.5, 0.8]
    assert client.delete("/v1/experiments/ab").status_code == 409  # running
    assert client.post("/v1/experiments/ab/start").status_code == 409  # already
    stopped = client.post("/v1/experiments/ab/stop").json()
    assert stopped["status"] == "stopped" and len(stopped["history"]) == 3
    assert client.post("/v1/experiments/ab/stop").status_code == 409
    assert client.get("/v1/experiments").json()["experiments"][0]["id"] == "ab"
    assert client.delete("/v1/experiments/ab").status_code == 204
    assert client.get("/v1/experiments/ab").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**AB, "arms": AB["arms"][:1]}, "arms"),
        ({**AB, "arms": [AB["arms"][0], AB["arms"][0]]}, "arms"),
        ({**AB, "ramp": 1.5}, "ramp"),
        ({**AB, "unit": "device"}, "unit"),
        ({**AB, "arms": [AB["arms"][0], {"name": "b", "surface": "x", "weight": 0}]}, "arms"),
        ({**AB, "status": "running"}, "status"),
        ({**AB, "surprise": 1}, "surprise"),
    ],
)
def test_bad_definitions_are_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    answer = put(client, "bad", body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"].startswith(field)
    assert client.get("/v1/experiments/bad").status_code == 404


def test_start_needs_configured_surfaces_and_a_free_surface(client: TestClient) -> None:
    unknown = {**AB, "arms": [AB["arms"][0], {"name": "b", "surface": "nowhere"}]}
    assert put(client, "x1", unknown).status_code == 200
    refused = client.post("/v1/experiments/x1/start")
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "arms[1].surface"
    assert put(client, "x2", AB).status_code == 200
    assert put(client, "x3", AB).status_code == 200
    assert client.post("/v1/experiments/x2/start").status_code == 200
    busy = client.post("/v1/experiments/x3/start")
    assert busy.status_code == 409 and "x2" in busy.json()["error"]["message"]
    assert client.post("/v1/experiments/nope/start").status_code == 404
    assert client.put("/v1/experiments/x2/ramp", json={"ramp": -0.1}).status_code == 422


def served(client: TestClient, user: str) -> str:
    answer = client.get("/v1/recommendations", params={"user_id": user, "k": 3})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["pipeline"])


def test_each_user_keeps_one_arm_and_its_impressions_name_it(client: TestClient) -> None:
    assert put(client, "ab", AB).status_code == 200
    users = [f"u{i}" for i in range(60)]
    before = {u: served(client, u) for u in users}
    assert set(before.values()) == {"default"}  # a draft serves nothing
    assert client.post("/v1/experiments/ab/start").status_code == 200
    first = {u: served(client, u) for u in users}
    assert {u: served(client, u) for u in users} == first  # stable
    counts = Counter(first.values())
    assert set(counts) == {"default", "popular"}
    assert stats.binomtest(counts["popular"], len(users), 0.5).pvalue > 0.001
    store = client.app.state.store  # type: ignore[attr-defined]
    logged = impressions(store, "u7", want=9)
    arm = "popular" if first["u7"] == "popular" else "control"
    assert {
        (e.context.attributes.get("experiment"), e.context.attributes.get("arm"))
        for e in logged
        if e.context is not None
    } == {("ab", arm), (None, None)}
    assert client.post("/v1/experiments/ab/stop").status_code == 200
    assert {served(client, u) for u in users} == {"default"}


def test_raising_the_ramp_only_adds_users(client: TestClient) -> None:
    assert put(client, "ab", {**AB, "ramp": 0.3}).status_code == 200
    assert client.post("/v1/experiments/ab/start").status_code == 200
    store = client.app.state.store  # type: ignore[attr-defined]
    users = [f"u{i}" for i in range(60)]
    for u in users:
        served(client, u)
    low = arms_of(store, users, want=60 * 3)
    assert client.put("/v1/experiments/ab/ramp", json={"ramp": 0.9}).status_code == 200
    for u in users:
        served(client, u)
    high = arms_of(store, users, want=2 * 60 * 3)
    assert 5 <= len(low) < len(high) and len(high) >= 40
    assert all(high[u] == arm for u, arm in low.items())


def impressions(store: Any, user: str | None, *, want: int) -> list[Event]:
    """Logged impressions (of one user, or everyone's), once at least `want` have been
    written: the log writer hands lists on every second."""
    deadline = time.monotonic() + 30
    logged: list[Event] = []
    while time.monotonic() < deadline and len(logged) < want:
        time.sleep(0.1)
        where = EventFilter(user_id=user, types=("impression",))
        logged = [e for batch in store.events.scan("default", where) for e in batch]
    assert len(logged) >= want
    return logged


def arms_of(store: Any, users: list[str], *, want: int) -> dict[str, str]:
    """Each user's arm of experiment `ab`, from the first `want` impressions logged."""
    out: dict[str, str] = {}
    for e in impressions(store, None, want=want):
        attributes = e.context.attributes if e.context is not None else {}
        if e.user_id in users and attributes.get("experiment") == "ab":
            arm = str(attributes["arm"])
            assert out.setdefault(str(e.user_id), arm) == arm
    return out


def test_an_interleaving_experiment_drafts_both_arms_and_credits_clicks(
    client: TestClient,
) -> None:
    three = {**AB, "kind": "interleaving", "arms": [*AB["arms"], {"name": "c", "surface": "x"}]}
    assert put(client, "il", three).status_code == 422
    assert put(client, "il", {**AB, "kind": "interleaving"}).status_code == 200
    assert client.post("/v1/experiments/il/start").status_code == 200
    users = [f"u{i}" for i in range(60)]
    answers = {}
    for u in users:
        got = client.get("/v1/recommendations", params={"user_id": u, "k": 6}).json()
        assert got["pipeline"] == "interleaved:default,popular"
        ids = [i["item_id"] for i in got["items"]]
        assert len(ids) == len(set(ids)) == 6
        answers[got["request_id"]] = u
    store = client.app.state.store  # type: ignore[attr-defined]
    shown: dict[str, dict[int, tuple[str, str]]] = {}
    for e in impressions(store, None, want=60 * 6):
        assert e.context is not None and e.context.attributes["interleaving"] is True
        assert e.context.request_id is not None and e.context.position is not None
        team = str(e.context.attributes["team"])
        shown.setdefault(e.context.request_id, {})[e.context.position] = (str(e.item_id), team)
    assert set(shown) == set(answers)
    # every list holds items of both teams, each within one pick of the other
    for positions in shown.values():
        teams = [t for _, t in positions.values()]
        assert abs(teams.count("control") - teams.count("popular")) <= 1
    # the simulated people always click the popular team's first item: popular wins
    clicks = []
    for request_id, positions in shown.items():
        position = min(p for p, (_, t) in positions.items() if t == "popular")
        item = positions[position][0]
        context = {"request_id": request_id, "position": position}
        clicks.append(
            {"event_id": f"c-{request_id}", "user_id": answers[request_id], "item_id": item,
             "type": "click", "context": context}
        )  # fmt: skip
    assert client.post("/v1/events", json={"events": clicks}).json()["stored"] == 60
    report = client.get("/v1/experiments/il/report").json()
    assert report["kind"] == "interleaving" and report["lists"] == 60 and report["units"] == 60
    assert report["wins"] == {"control": 0, "popular": 60} and report["ties"] == 0
    assert report["delta"] == 1.0 and report["p_value"] < 1e-9
    assert report["verdict"] == "popular preferred"


SLOT_AB = {
    "slot": "hero",
    "arms": [
        {"name": "greedy", "policy": {"name": "epsilon-greedy", "epsilon": 0.0}},
        {"name": "uniform", "policy": {"name": "epsilon-greedy", "epsilon": 1.0}},
    ],
}


def test_an_experiment_on_a_slot_gives_each_arm_its_own_policy(client: TestClient) -> None:
    assert client.put("/v1/slots/hero", json={"policy": {"name": "thompson"}}).status_code == 200
    for vid in ("a", "b"):
        assert client.put(f"/v1/slots/hero/variants/{vid}", json={"text": vid}).status_code == 200
    both = {**SLOT_AB, "surface": "default"}
    assert put(client, "bad", both).status_code == 422  # a surface or a slot, not both
    mixed = {**SLOT_AB, "arms": [SLOT_AB["arms"][0], {"name": "x", "surface": "default"}]}
    assert put(client, "bad", mixed).status_code == 422
    wrong = {**SLOT_AB, "arms": [SLOT_AB["arms"][0], {"name": "x", "policy": {"name": "nope"}}]}
    assert put(client, "wrong", wrong).status_code == 200
    refused = client.post("/v1/experiments/wrong/start")
    assert refused.status_code == 422 and refused.json()["error"]["field"].startswith("arms[1]")
    assert put(client, "sx", SLOT_AB).status_code == 200
    assert client.post("/v1/experiments/sx/start").status_code == 200
    chosen: dict[str, list[tuple[str, str, float]]] = {}
    clicks = []
    for i in range(60):
        user = f"u{i}"
        for _ in range(4):
            got = client.post("/v1/decisions", json={"slot": "hero", "user_id": user}).json()
            chosen.setdefault(user, []).append(
                (got["decision_id"], got["variant"]["id"], got["propensity"])
            )
            if got["variant"]["id"] == "b":  # people here only ever click b, at once
                clicks.append(
                    {"event_id": f"c-{got['decision_id']}", "user_id": user, "type": "click",
                     "context": {"decision_id": got["decision_id"]}}
                )  # fmt: skip
                sent = client.post("/v1/events", json={"events": clicks[-1:]})
                assert sent.json()["stored"] == 1
    store = client.app.state.store  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30  # decisions and rewards reach the log every second
    while time.monotonic() < deadline and (
        store.events.count("default", EventFilter(types=("decision",))) < 240
        or store.events.count("default", EventFilter(types=("reward",))) < len(clicks)
    ):
        time.sleep(0.1)
    report = client.get("/v1/experiments/sx/report").json()
    assert [m["metric"] for m in report["metrics"]] == [
        "reward_per_decision",
        "rewarded_share",
        "reward_per_user",
    ]
    units = report["units"]
    assert units["greedy"] + units["uniform"] == 60
    totals = report["totals"]
    assert totals["greedy"]["decisions"] + totals["uniform"]["decisions"] == 240
    assert totals["greedy"]["reward"] + totals["uniform"]["reward"] == len(clicks)
    # the uniform arm chooses at random (propensity 1/2); greedy learns, from its own users'
    # rewards only, that b pays, and sticks to it
    decisions = {
        e.context.decision_id: e
        for batch in store.events.scan("default", EventFilter(types=("decision",)))
        for e in batch
    }
    for picks in chosen.values():
        arms = {decisions[d].context.attributes["arm"] for d, _, _ in picks}
        assert len(arms) == 1  # one arm per user
        if arms == {"uniform"}:
            assert {p for _, _, p in picks} == {0.5}
    values = {m["metric"]: m["values"] for m in report["metrics"]}
    assert values["reward_per_decision"]["greedy"] > values["reward_per_decision"]["uniform"]


def test_reports_segment_by_a_user_attribute_and_end_where_asked(client: TestClient) -> None:
    assert put(client, "ab", AB).status_code == 200
    assert client.post("/v1/experiments/ab/start").status_code == 200
    users = [f"u{i}" for i in range(60)]
    for i, u in enumerate(users[:40]):
        plan = {"attributes": {"plan": "gold" if i % 2 else "free"}}
        assert client.put(f"/v1/users/{u}", json=plan).status_code == 200
    for u in users:
        served(client, u)
    store = client.app.state.store  # type: ignore[attr-defined]
    impressions(store, None, want=60 * 3)
    report = client.get("/v1/experiments/ab/report", params={"segment_by": "plan"}).json()
    assert report["segment_by"] == "plan"
    assert set(report["segments"]) == {"gold", "free", "unknown"}
    sizes = {name: sum(s["units"].values()) for name, s in report["segments"].items()}
    assert sizes == {"gold": 20, "free": 20, "unknown": 20}
    early = client.get("/v1/experiments/ab/report", params={"until": "2020-01-01T00:00:00Z"})
    assert early.status_code == 200 and sum(early.json()["units"].values()) == 0
    by_session = {**AB, "unit": "session"}
    assert put(client, "sess", {**by_session, "surface": "default"}).status_code == 200
    refused = client.get("/v1/experiments/sess/report", params={"segment_by": "plan"})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "segment_by"
