"""Schemathesis over the service's own OpenAPI spec: every operation, with a key of its scope.

Every operation of the spec (a route added later included) is fuzzed in process, on each
persistent store, with schemathesis' examples, coverage and fuzzing phases, positive and
negative data: no server error, responses that match their declared status, content type and
schema, and authentication enforced (`ignored_auth` retries each accepted request without a
key and with a wrong one). A stateful run chains operations through the links schemathesis
infers from the spec and checks `use_after_free` as well.

PENCHANT_FUZZ_EXAMPLES sets the generated examples per operation and the stateful scenarios
(10; `make fuzz` runs 500); when it is set, or with -v, each run prints its counts.
PENCHANT_FUZZ_SEED changes the seed (0).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from apitools import MAX_BATCH, MAX_BODY, seed_world
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Flaky
from schemathesis import checks
from schemathesis.python import asgi
from test_scope_matrix import NEEDS

from penchant.privacy.keys import create_key
from penchant.service.app import create_app
from penchant.settings import load_settings
from penchant.types import Scope

EXAMPLES = int(os.environ.get("PENCHANT_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("PENCHANT_FUZZ_SEED", "0"))

CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.ignored_auth,
]
#: `use_after_free` needs the history of a scenario, which only the stateful run records.
STATEFUL_CHECKS = [*CHECKS, checks.use_after_free]

#: How often the stateful run's serving looks for catalog changes (docs/serving.md: a catalog
#: write reaches serving within it, plus the rebuild); the stateless run keeps the default, as
#: frequent rebuilds under its hundreds of writes cost more than they find.
REFRESH_S = 0.05
SETTLE_S = 2.0

SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass
class Fuzzed:
    """The app under test, its spec, a key of each scope, and what the run did."""

    schema: schemathesis.BaseSchema
    app: FastAPI
    keys: dict[Scope, str]
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    failures: int = 0
    restarts: int = 0

    def headers(self, method: str, path: str) -> dict[str, str] | None:
        """A valid key with the scope the operation needs (the scope matrix's table); an
        operation missing there gets an admin key, so a new route is fuzzed all the same."""
        needed = NEEDS.get((method.upper(), path), Scope.ADMIN)
        if needed is None:
            return None
        return {"Authorization": f"Bearer {self.keys[needed]}"}

    def settle(self, item_id: str) -> None:
        """Wait, at most SETTLE_S, until serving no longer knows a deleted item: catalog
        writes reach serving within `refresh_s` by design, not at once."""
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            catalog = self.app.state.serving.of("default").engine().catalog
            code = catalog.codes([item_id])[0]
            if code < 0 or not catalog.available[code]:
                return
            time.sleep(REFRESH_S / 2)

    @contextmanager
    def counting(self) -> Iterator[None]:
        """Count the cases that fail, for the report."""
        try:
            yield
        except BaseException:  # schemathesis' FailureGroup is a BaseExceptionGroup
            self.failures += 1
            raise


@pytest.fixture
def refresh_s() -> float | None:
    """`serving.refresh_s` of the app under test; None (the default) unless a test sets it."""
    return None


@pytest.fixture
def fuzzed(
    tmp_path: Path, store_url: str, refresh_s: float | None, request: pytest.FixtureRequest
) -> Iterator[Fuzzed]:
    """The app on a trained world (so recommendations answer), started by schemathesis' own
    ASGI transport, which keeps it running until its shutdown."""
    settings = load_settings(
        tmp_path,
        store={"url": store_url},
        service={"max_batch": MAX_BATCH, "max_body_bytes": MAX_BODY},
        events={"custom_types": ["bookmark"]},
        serving={} if refresh_s is None else {"refresh_s": refresh_s},
    )
    seed_world(settings)
    app = create_app(settings)
    config = schemathesis.Config(seed=SEED)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
        keys = {scope: create_key(app.state.store.keys, "default", [scope]) for scope in Scope}
        fuzzed = Fuzzed(schema=schema, app=app, keys=keys)
        yield fuzzed
        report(request, fuzzed)
    finally:
        # The app's lifespan and its event loop's thread, both: while that thread lives, the
        # BLAS thread limit it set and restored cannot be set again from another thread
        # (OpenBLAS), and test_the_service_runs_blas_on_one_thread, later, failed.
        asgi._shutdown()


@pytest.fixture
def fuzz_schema(fuzzed: Fuzzed) -> schemathesis.BaseSchema:
    """The spec `schemathesis.pytest.from_fixture` parametrizes over."""
    return fuzzed.schema


@pytest.fixture(autouse=True)
def _node_id(request: pytest.FixtureRequest) -> None:
    """Schemathesis' `from_fixture` (4.32) renames the test node through `_nodeid`, which
    pytest 9 no longer has; give it one so that it runs (it only changes report names)."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


lazy = schemathesis.pytest.from_fixture("fuzz_schema")


@lazy.parametrize()
@SETTINGS
def test_every_operation(case: schemathesis.Case, fuzzed: Fuzzed) -> None:
    started = time.perf_counter()
    with fuzzed.counting():
        response = case.call_and_validate(
            headers=fuzzed.headers(case.method, case.path), checks=CHECKS
        )
    fuzzed.statuses[(case.operation.label, response.status_code)] += 1
    fuzzed.seconds[case.operation.label] += time.perf_counter() - started


@pytest.mark.parametrize("refresh_s", [REFRESH_S])
def test_stateful_links(fuzzed: Fuzzed) -> None:
    """Operations chained through the links schemathesis infers from the spec (an id from a
    response fed to the next request), checked with `use_after_free` too.

    What `use_after_free` can see here: a DELETE that succeeded and a later request, in the
    same scenario, to that path or one under it (`PUT /v1/items/x`, `DELETE /v1/items/x`,
    then `GET /v1/items/x` or `GET /v1/items/x/similar`), which must not succeed. A deleted
    item leaves serving within `refresh_s` (docs/serving.md), so after an item's DELETE the
    scenario waits for that, at most SETTLE_S; without the wait `/similar` answers 200 for
    the deleted item until serving's next rebuild. What it cannot see:
    a deleted or erased id read back through a query parameter
    (`GET /v1/recommendations?user_id=x`) or inside a body or a list (a deleted item in
    someone's recommendations), state across scenarios, and any path no inferred link
    reaches.
    """
    machine: Any = fuzzed.schema.as_state_machine()

    class Scenario(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            headers = fuzzed.headers(case.method, case.path)
            return {"headers": headers} if headers else {}

        def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            fuzzed.statuses[(f"stateful {case.operation.label}", response.status_code)] += 1
            deleted = case.operation.label == "DELETE /v1/items/{id}"
            if deleted and 200 <= response.status_code < 300:
                fuzzed.settle(case.path_parameters["id"])

        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            with fuzzed.counting():
                case.validate_response(
                    response,
                    checks=STATEFUL_CHECKS,
                    headers=kwargs.get("headers"),
                    transport_kwargs=kwargs or None,
                    recorder=self.recorder,
                )

    # As schemathesis' own runner: generation only (no replays of saved or shrunk scenarios,
    # which the app's state, kept from scenario to scenario, would send elsewhere).
    settings = hypothesis.settings(
        SETTINGS, phases=[Phase.generate], database=None, stateful_step_count=10
    )
    for _ in range(3):
        try:
            Scenario.run(settings=settings)
            break
        except Flaky:
            # Hypothesis replays a prefix of choices to explore past it; that state can send
            # it elsewhere the second time. Like schemathesis' runner, take that as the end of
            # a run, not a failure, unless a check failed (then it is how that failure ends).
            if fuzzed.failures:
                raise
            fuzzed.restarts += 1


@pytest.mark.parametrize("refresh_s", [REFRESH_S])
def test_a_deleted_trained_item_leaves_serving(fuzzed: Fuzzed) -> None:
    headers = {"Authorization": f"Bearer {fuzzed.keys[Scope.ADMIN]}"}
    with asgi.get_client(fuzzed.app) as client:
        assert client.delete("/v1/items/i39", headers=headers).status_code == 204
        # docs/serving.md: a catalog write reaches serving within `refresh_s` (and a rebuild)
        deadline = time.monotonic() + SETTLE_S
        while (similar := client.get("/v1/items/i39/similar", headers=headers)).ok:
            if time.monotonic() > deadline:
                break
            time.sleep(REFRESH_S)
        listed = client.get(
            "/v1/recommendations", params={"user_id": "u1", "k": 40}, headers=headers
        ).json()["items"]
    assert similar.status_code == 404
    assert "i39" not in [item["item_id"] for item in listed]


def report(request: pytest.FixtureRequest, fuzzed: Fuzzed) -> None:
    """With -v or PENCHANT_FUZZ_EXAMPLES set, print the operations, requests and statuses."""
    plugins = request.config.pluginmanager
    terminal, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    asked = request.config.get_verbosity() > 0 or "PENCHANT_FUZZ_EXAMPLES" in os.environ
    if terminal is None or not asked or not fuzzed.statuses:
        return
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        write_report(terminal, fuzzed)


def write_report(terminal: Any, fuzzed: Fuzzed) -> None:
    """Requests per operation and status, and the seconds the stateless run spent on each."""
    by_operation: dict[str, Counter[int]] = {}
    for (label, status), n in sorted(fuzzed.statuses.items()):
        by_operation.setdefault(label, Counter())[status] += n
    total = sum(fuzzed.statuses.values())
    terminal.write_line("")
    terminal.write_line(
        f"schemathesis: {len(by_operation)} operations, {total} requests "
        f"({EXAMPLES} generated examples per operation, seed {SEED}), "
        f"{fuzzed.failures} failed validations"
        + (f", {fuzzed.restarts} stateful restarts" if fuzzed.restarts else "")
    )
    for label, statuses in by_operation.items():
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        took = f", {fuzzed.seconds[label]:.1f} s" if label in fuzzed.seconds else ""
        terminal.write_line(f"  {label}: {sum(statuses.values())} ({counts}){took}")
