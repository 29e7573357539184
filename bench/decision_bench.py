"""POST /v1/decisions over HTTP: latency and server cost of three policies, open and closed loop.

For each policy (`thompson`, `linucb`, `linear-thompson`, with their default
hyperparameters) a fresh data directory in a temporary directory, an admin key of a tenant of
its own (`dbench-<hex>`, so that nothing it writes to Redis mixes with anything else), and the
real server (`penchant serve`, 2 workers) with its online state on Redis
(`PENCHANT_STATE__URL`, default redis://127.0.0.1:6379/0), so that both workers learn from
one set of statistics. One slot is defined through the HTTP API: the policy, the features
device, time and segment, 8 segments, a click worth 1, and 8 variants of text. Before any
timing, 20 decisions must all be answered 200 and one click on a decision must add exactly
the policy's reward delta (for the decision's logged context) to the chosen variant's
statistics in Redis.

Then bench/http_load.py, in a separate process, drives `--decisions` with 32 keep-alive
connections: first in an open loop at each `--rates` (requests due on a fixed schedule, their
latency counted from when each was due), then in a closed loop (each connection asks again
when its answer arrives: the capacity). A share `--reward-share` of the answers is followed by
a click carrying the decision's id back (`POST /v1/events` on connections of their own; not
measured, but the server's work). Warm-up is excluded. An open loop sends every request it
scheduled (rate x seconds), so one that the server cannot keep up with runs on until its
backlog is answered. After each load the statistics must have counted one pull per decision
answered and one reward per click answered.

Server CPU is its workers' and their writers' CPU time over the measured part per answered
decision (the clicks' work included); Redis CPU likewise, from Redis's INFO; server peak RSS
is all its processes' added up, after every load of that server. The target (p99 <= 10 ms at
32 connections) is judged on the open loops, as the serving benchmark judges its own: in a
closed loop of 32 clients the mean latency is 32 / throughput (Little's law).

Prints Markdown and writes bench/out/decisions.json (`--smoke`: decisions-smoke.json, short
loads, to check the script in a minute). The Redis keys of each run's tenant are deleted
after it.

    .venv/bin/python bench/decision_bench.py [--seconds 30 --rates 1000,1500 --smoke --trace DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_ingest import peak_rss_mb  # scripts beside this one, not a package
from serving_bench import (
    _children,
    _cpu_seconds,
    _sockets,
    code_state,
    wait_until_loaded,
    worker_pids,
)

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
POLICIES = ("thompson", "linucb", "linear-thompson")
SEGMENTS = tuple(f"seg{i}" for i in range(8))
VARIANTS = tuple(f"v{i}" for i in range(8))
SLOT = "hero"
TARGET_P99_MS = 10.0
#: The open loop counts as keeping up when it answers at least this share of the offered rate.
KEEP_UP = 0.98
#: The code this benchmark measures most directly (its digest is recorded with the results).
DECISION_CODE = ("src/penchant/content/decisions.py", "src/penchant/service/routes/decisions.py")


def _log(text: str) -> None:
    print(f"[decisions {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def slot_body(policy: str) -> dict[str, Any]:
    """The slot's definition: the policy, three feature groups, 8 segments, clicks worth 1."""
    return {
        "policy": {"name": policy},
        "features": ["device", "time", "segment"],
        "segments": list(SEGMENTS),
        "reward": {"click": 1.0},
    }


def call(port: int, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request on a fresh connection; the answer's status and JSON (None when empty)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers)
        answer = conn.getresponse()
        raw = answer.read()
    finally:
        conn.close()
    return answer.status, (json.loads(raw) if raw else None)


def define_slot(port: int, key: str, policy: str) -> None:
    """PUT the slot, then its 8 variants, through the API."""
    status, body = call(port, key, "PUT", f"/v1/slots/{SLOT}", slot_body(policy))
    if status != 200:
        raise RuntimeError(f"PUT /v1/slots/{SLOT}: {status} {body}")
    for i, vid in enumerate(VARIANTS):
        text = {"text": f"Headline {i}: picked for you"}
        status, body = call(port, key, "PUT", f"/v1/slots/{SLOT}/variants/{vid}", text)
        if status != 200:
            raise RuntimeError(f"PUT variant {vid}: {status} {body}")


class Stats:
    """The slot's learned statistics in Redis, read as the server reads them."""

    def __init__(self, redis_url: str, tenant: str, policy: str) -> None:
        from penchant.bandits import make_policy
        from penchant.content.decisions import stats_key
        from penchant.content.features import signature, width
        from penchant.schema.content import Slot
        from penchant.store.state import open_state

        slot = Slot.model_validate({"id": SLOT, **slot_body(policy)})
        self.state, self.tenant = open_state(redis_url), tenant
        self.policy = make_policy(slot.policy)
        self.d = width(slot)
        self.width = self.policy.width(self.d)
        self.keys = [stats_key(signature(slot), v) for v in VARIANTS]

    def table(self) -> np.ndarray[Any, Any]:
        """(variants, width) statistics, zeros where none are stored."""
        out = np.zeros((len(self.keys), self.width))
        for row, raw in enumerate(self.state.get_many(self.tenant, self.keys)):
            if raw is not None:
                out[row] = np.frombuffer(raw, dtype="<f8")
        return out

    def totals(self) -> tuple[float, float]:
        """(pulls, rewards) over every variant. Counting policies hold [pulls, rewards];
        linear ones [vec(sum x xᵀ), sum r x], whose first cells count x[0]² = 1 per pull and
        r·x[0] = r per reward (x[0] is the intercept)."""
        t = self.table()
        if self.width == 2:
            return float(t[:, 0].sum()), float(t[:, 1].sum())
        return float(t[:, 0].sum()), float(t[:, self.d * self.d].sum())

    def clean(self) -> int:
        """Delete every key of the run's tenant; return how many there were."""
        return self.state.delete_prefix(self.tenant, "")


def sanity(port: int, key: str, stats: Stats) -> dict[str, Any]:
    """20 decisions answered 200, and one click adding exactly the policy's reward delta to
    the chosen variant's statistics (raises RuntimeError otherwise)."""
    from penchant.content.decisions import decision_key

    made = []
    for i in range(20):
        ctx = {"device": ("mobile", "desktop", "tablet")[i % 3], "segment": SEGMENTS[i % 8]}
        ask = {"slot": SLOT, "user_id": f"u{i:07d}", "context": ctx}
        status, body = call(port, key, "POST", "/v1/decisions", ask)
        if status != 200:
            raise RuntimeError(f"POST /v1/decisions answered {status}: {body}")
        made.append(body)
    decision = made[0]
    raw = stats.state.get(stats.tenant, decision_key(decision["decision_id"]))
    if raw is None:
        raise RuntimeError("the decision's record is not in Redis")
    x = np.asarray(json.loads(raw)["x"], dtype=np.float64)
    row = VARIANTS.index(decision["variant"]["id"])
    before = stats.table()[row]
    click = {
        "event_id": f"sanity-{decision['decision_id']}",
        "user_id": "u0000000",
        "type": "click",
        "context": {"decision_id": decision["decision_id"]},
    }
    status, body = call(port, key, "POST", "/v1/events", {"events": [click]})
    if status != 200 or body["stored"] != 1:
        raise RuntimeError(f"POST /v1/events answered {status}: {body}")
    moved = stats.table()[row] - before
    expected = stats.policy.reward_delta(x, 1.0)
    if not np.allclose(moved, expected, rtol=1e-12, atol=1e-12) or not expected.any():
        raise RuntimeError(f"the click moved the statistics by {moved}, not {expected}")
    pulls, rewards = stats.totals()
    if pulls != 20 or rewards != 1:
        raise RuntimeError(f"after 20 decisions and a click: {pulls} pulls, {rewards} rewards")
    return {"decisions": 20, "variants seen": len({m["variant"]["id"] for m in made})}


def redis_cpu_s(stats: Stats) -> float:
    """Redis's CPU seconds so far (its INFO; the server may run elsewhere: then 0)."""
    client = getattr(stats.state, "_redis", None)
    if client is None:
        return 0.0
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def drive(
    server: Any,
    port: int,
    key: str,
    args: argparse.Namespace,
    stats: Stats,
    rate: float,
    policy: str,
) -> dict[str, Any]:
    """Run bench/http_load.py (open loop at `rate`, closed when 0); add what the server's
    processes and Redis did during the measured part, and check the statistics counted
    every decision and click of the load."""
    workers = worker_pids(server, args.workers)
    sockets_idle = {p: _sockets(p) for p in workers}
    command = [sys.executable, str(HERE / "http_load.py"), "--port", str(port)]
    command += ["--concurrency", str(args.concurrency), "--requests", str(args.requests)]
    command += ["--seconds", str(args.seconds), "--warmup", str(args.warmup)]
    command += ["--users", str(args.users), "--seed", str(args.seed), "--decisions", SLOT]
    command += ["--segments", ",".join(SEGMENTS), "--reward-share", str(args.reward_share)]
    if rate:
        command += ["--rate", str(rate)]
    if args.trace:
        mode = f"open{rate:g}" if rate else "closed"
        command += ["--trace", str(Path(args.trace) / f"{policy}-{mode}.csv")]
    load_before = Path("/proc/loadavg").read_text().split()[0]
    pulls_before, rewards_before = stats.totals()
    load = subprocess.Popen(
        command, env=os.environ | {"PENCHANT_BENCH_KEY": key}, stdout=subprocess.PIPE, text=True
    )
    assert load.stdout is not None
    line = load.stdout.readline()  # `measuring`: the connections are open, warm-up done
    helpers = [c for w in workers if w != server.pid for c in _children(w)]
    cpu_before = {p: _cpu_seconds(p) for p in {server.pid, *workers, *helpers}}
    redis_before = redis_cpu_s(stats)
    per_worker = {p: _sockets(p) - sockets_idle[p] for p in workers}
    out, _ = load.communicate(timeout=args.seconds + 600)
    # the clicks are all answered before http_load.py exits: this counts them too
    redis_used = redis_cpu_s(stats) - redis_before
    cpu = {p: _cpu_seconds(p) - cpu_before[p] for p in cpu_before}
    if load.returncode != 0 or line.strip() != "measuring":
        raise RuntimeError(f"http_load.py failed with {load.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    answered = max(1, result["ok"])
    worker_cpu = sum(cpu[p] for p in workers)
    helper_cpu = sum(cpu[p] for p in helpers)
    pulls, rewards = stats.totals()
    clicks = result["clicks"] or {"ok": 0}
    result.update(
        {
            "mode": f"open {rate:g}/s" if rate else "closed",
            "load_average_before": float(load_before),
            "connections_per_worker": sorted(per_worker.values(), reverse=True),
            "worker_cpu_pct": sorted(
                (round(100 * cpu[p] / result["wall_s"]) for p in workers), reverse=True
            ),
            "server_cpu_ms_per_request": round(1000 * (worker_cpu + helper_cpu) / answered, 3),
            "writer_cpu_ms_per_request": round(1000 * helper_cpu / answered, 3),
            "redis_cpu_ms_per_request": round(1000 * redis_used / answered, 3),
            "pulls_counted": round(pulls - pulls_before),
            "rewards_counted": round(rewards - rewards_before, 6),
        }
    )
    decided = result["ok"] + result["warmup_ok"]
    if result["pulls_counted"] != decided or result["rewards_counted"] != clicks["ok"]:
        raise RuntimeError(
            f"the statistics counted {result['pulls_counted']} pulls and "
            f"{result['rewards_counted']} rewards for {decided} decisions and "
            f"{clicks['ok']} clicks answered"
        )
    return result


def policy_runs(args: argparse.Namespace, policy: str) -> list[dict[str, Any]]:
    """One server for one policy, in a fresh data directory and tenant: define the slot,
    check it learns, load it at each rate and then closed; return a row per load."""
    from penchant.privacy.keys import create_key
    from penchant.settings import load_settings
    from penchant.store import open_store
    from penchant.testing.server import free_port, start_server

    tenant = f"dbench-{uuid.uuid4().hex[:10]}"
    stats = Stats(args.redis, tenant, policy)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="decisions-") as tmp:
        data_dir = Path(tmp)
        store = open_store(load_settings(data_dir).store_url)
        key = create_key(store.keys, tenant, ["admin"], name="decision bench")
        store.close()
        env = {"PENCHANT_STATE__URL": args.redis, "PENCHANT_TENANT": tenant}
        port = free_port()
        server = start_server(
            data_dir, port, workers=args.workers, env=env, log=data_dir / "server.log"
        )
        try:
            wait_until_loaded(server, args.workers)  # both workers up before connecting
            define_slot(port, key, policy)
            checked = sanity(port, key, stats)
            _log(f"{policy}: slot defined, {json.dumps(checked)}, the click counted; load")
            for rate in [*args.rates, 0.0]:
                row = drive(server, port, key, args, stats, rate, policy)
                row["policy"] = policy
                rows.append(row)
                _log(f"  {json.dumps(row)}")
            rss = peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
            cleaned = stats.clean()
            _log(f"  {cleaned} Redis keys of {tenant} deleted")
    for row in rows:
        row["server_peak_rss_mb"] = rss
        row["workers"] = args.workers
    return rows


def digest() -> str:
    """A short hash of the decision code measured, to tell runs of its versions apart."""
    root = HERE.parent
    text = b"".join((root / p).read_bytes() for p in DECISION_CODE)
    return hashlib.sha256(text).hexdigest()[:12]


def machine() -> dict[str, str]:
    """What the numbers were measured on (bench/run.py's description) and the code state."""
    import run  # a script beside this one

    return {**run.machine(), "commit": code_state(), "decision code sha256": digest()}


def met(row: dict[str, Any]) -> bool:
    """Whether an open loop met the target: no errors, kept up, p99 within it."""
    offered = float(row["offered_rps"] or 0.0)
    return bool(
        row["errors"] == 0
        and offered > 0
        and row["throughput_rps"] >= KEEP_UP * offered
        and row["p99_ms"] <= TARGET_P99_MS
    )


def targets(rows: list[dict[str, Any]]) -> list[str]:
    """The target on each open loop, then each closed loop's capacity and Little's law."""
    out = []
    for r in rows:
        if r["offered_rps"]:
            out.append(
                f"p99 <= {TARGET_P99_MS:g} ms at {r['concurrency']} connections ({r['policy']}, "
                f"open loop at {r['offered_rps']:,.0f}/s): {r['throughput_rps']:,} req/s "
                f"answered, p99 {r['p99_ms']} ms, {r['errors']} errors: "
                f"{'met' if met(r) else 'NOT met'}"
            )
    for r in rows:
        if not r["offered_rps"]:
            mean = 1000 * r["concurrency"] / max(r["throughput_rps"], 1e-9)
            out.append(
                f"closed loop ({r['policy']}, {r['concurrency']} connections): capacity "
                f"{r['throughput_rps']:,} req/s, p99 {r['p99_ms']} ms; Little's law puts its "
                f"mean at {r['concurrency']} / throughput = {mean:.1f} ms, so a closed loop "
                f"meets a {TARGET_P99_MS:g} ms p99 only far above "
                f"{1000 * r['concurrency'] / TARGET_P99_MS:,.0f} req/s"
            )
    out.append(
        f"(an open loop meets the target when it answers at least {KEEP_UP:.0%} of the offered "
        f"rate, without errors, at p99 <= {TARGET_P99_MS:g} ms)"
    )
    return out


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table, in the style of docs/benchmarks.md."""
    lines = [
        f"HTTP, `POST /v1/decisions`, {report['rows'][0]['workers']} workers, state on Redis, "
        f"{len(VARIANTS)} variants, features device + time + segment ({len(SEGMENTS)} "
        f"segments); a share {report['args']['reward_share']} of answers followed by a click "
        "(not measured); server CPU is its workers' and their writers' per answered decision:",
        "",
        "| policy | mode | connections | offered req/s | requests | errors | achieved req/s | "
        "p50 ms | p95 ms | p99 ms | max ms | server CPU ms/req | Redis CPU ms/req | "
        "server peak RSS MiB | clicks | load avg before |",
        "| --- | --- |" + " ---: |" * 14,
    ]
    for r in report["rows"]:
        offered = f"{r['offered_rps']:,.0f}" if r["offered_rps"] else "closed"
        clicks = (r["clicks"] or {}).get("ok", 0)
        lines.append(
            f"| {r['policy']} | {r['mode']} | {r['concurrency']} | {offered} | "
            f"{r['requests']:,} | {r['errors']} | {r['throughput_rps']:,} | {r['p50_ms']} | "
            f"{r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['server_cpu_ms_per_request']} | "
            f"{r['redis_cpu_ms_per_request']} | {r['server_peak_rss_mb']:,} | {clicks:,} | "
            f"{r['load_average_before']} |"
        )
    loadgen = max(r["loadgen_cpu_pct"] for r in report["rows"])
    lines += ["", f"The load generator used at most {loadgen}% of one core.", "", "Targets:"]
    lines += [f"- {line}" for line in report["targets"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print Markdown, write bench/out/decisions.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated")
    parser.add_argument("--rates", default="1000,1500", help="open-loop rates, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per load")
    parser.add_argument("--requests", type=int, default=100_000, help="measured requests at most")
    parser.add_argument("--warmup", type=int, default=1_000, help="unmeasured requests first")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--users", type=int, default=1_000_000, help="user ids to draw from")
    parser.add_argument("--reward-share", type=float, default=0.05, help="decisions clicked")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the state's URL")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="5 s loads (a quick check)")
    parser.add_argument("--trace", metavar="DIR", help="each load's answers' latencies, as CSV")
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r]
    if args.smoke:
        args.seconds, args.warmup = 5.0, 300
    if args.trace:
        Path(args.trace).mkdir(parents=True, exist_ok=True)
    OUT.mkdir(exist_ok=True)
    report: dict[str, Any] = {"machine": machine()}
    report["args"] = dict(vars(args))
    rows = []
    for policy in args.policies.split(","):
        rows += policy_runs(args, policy)
    report["rows"] = rows
    report["machine"]["load average after"] = Path("/proc/loadavg").read_text().strip()
    report["machine"]["commit after"] = code_state()
    if digest() != report["machine"]["decision code sha256"]:
        _log("the decision code changed during the run: its numbers mix two versions")
    report["targets"] = targets(rows)
    report["command"] = " ".join([".venv/bin/python bench/decision_bench.py", *(argv or [])])
    name = "decisions-smoke.json" if args.smoke else "decisions.json"
    (OUT / name).write_text(json.dumps(report, indent=2) + "\n")
    print()
    for key, value in report["machine"].items():
        print(f"- {key}: {value}")
    print()
    print(markdown(report))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
