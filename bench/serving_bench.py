"""Serving at scale: recommend latency in-process and over HTTP, approximate against exact.

The world (bench/serving_world.py, built once and cached): 100,000 items, 1,000,000 users,
about 10 interactions each, an active bundle of `popular` and a 64-factor `ials`.

In-process: two `Engine`s on the same bundle and catalog, one retrieving exactly
(`ann_min_items` above the catalog size) and one through the ANN index (the default
`ann_min_items`, 50,000), default surface, BLAS and OpenMP pinned to one thread as the
server pins them. Each answers `--warmup` then `--inproc-requests` requests for random
known users, k=20, with the filters `price <= 600` and not category `c03` (availability
is always on); only `Engine.recommend` is timed. Then: a per-stage timing of the pipeline,
the ANN engine called from 1, 2, 4 and 16 threads at once (as a worker's thread pool would),
the agreement of the two (recall@100 of the ANN retrieval against exact scoring, history
excluded on both sides; the model source's 200 candidates under the filters; the served
top-20), and the process's peak RSS. `--cprofile` also writes cProfile reports.

HTTP: the real server (`uvicorn`, 2 workers) on a copy of the world's database, once per
case (ANN or exact, impressions logged or not), loaded by bench/http_load.py in a separate
process: 32 keep-alive connections, closed loop, the same requests. The server's peak RSS
is all its processes' added up; its CPU per request is its workers' CPU time over the
measured part. The last server also answers `GET /health` from 32 connections (the HTTP
stack alone) and the requests from one connection (latency without queueing). With 32
clients in a closed loop, mean latency = 32 / throughput (Little's law), so a p99 of 30 ms
needs about 1,070 requests/s or more.

Prints Markdown tables and writes bench/out/serving.json (`--smoke`: serving-smoke.json, on a
small world, to check the script in a minute).

    .venv/bin/python bench/serving_bench.py [--requests 30000 --seconds 30] [--skip-http]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serving_world  # scripts beside this one, not a package
from http_ingest import peak_rss_mb
from http_load import FILTERS

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
K = 20
#: HTTP cases: (label, approximate retrieval, impressions logged).
HTTP_CASES = (("ANN", True, True), ("exact", False, True), ("ANN", True, False))
TARGET_INPROC_P99_MS = 5.0
TARGET_HTTP_P99_MS = 30.0
TARGET_HTTP_RPS = 1_000.0


def _log(text: str) -> None:
    print(f"[serving {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean of latencies, in ms."""
    ms = np.sort(np.asarray(seconds)) * 1000
    pick = {q: float(ms[min(len(ms) - 1, int(q * len(ms)))]) for q in (0.5, 0.95, 0.99)}
    return {
        "p50_ms": round(pick[0.5], 3),
        "p95_ms": round(pick[0.95], 3),
        "p99_ms": round(pick[0.99], 3),
        "max_ms": round(float(ms[-1]), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def _request(user: str, now: datetime | None = None) -> Any:
    from penchant.ranking import RankingRequest

    fields: dict[str, Any] = {"user_id": user, "k": K, "filters": FILTERS}
    if now is not None:
        fields["context"] = {"time": now.isoformat()}
    return RankingRequest.model_validate(fields)


# -- in-process ---------------------------------------------------------------------------
def ann_min(stamp: dict[str, Any]) -> int:
    """The `ann_min_items` of the ANN runs: the default, or the whole of a smaller catalog."""
    return min(50_000, int(stamp["params"]["items"]))


def build_engines(world: Path, ann_min: int) -> dict[str, Any]:
    """The bundle, the catalog and both engines, with how long each took."""
    from penchant.jobs.registry import ModelRegistry
    from penchant.models.ann import ItemIndex
    from penchant.ranking import Engine
    from penchant.settings import load_settings
    from penchant.store import open_store

    settings = load_settings(world)
    started = time.perf_counter()
    bundle = ModelRegistry.of(settings).load()
    load_s = time.perf_counter() - started
    store = open_store(settings.store_url)
    try:
        started = time.perf_counter()
        items = [item for batch in store.catalog.scan_items(serving_world.TENANT) for item in batch]
        items_s = time.perf_counter() - started
    finally:
        store.close()
    n_items = len(bundle.models["ials"].item_ids_)
    # what the server passes besides: purchases and dismissals recorded by training, and
    # the item indexes training saved with the bundle (where this version of penchant has them)
    extra: dict[str, Any] = {}
    if hasattr(bundle, "exclusions"):
        extra["exclusions"] = bundle.exclusions
    if hasattr(bundle, "indexes"):
        extra["prebuilt"] = bundle.indexes
    started = time.perf_counter()
    exact = Engine(bundle.version, bundle.models, items, ann_min_items=n_items + 1, **extra)
    exact_s = time.perf_counter() - started
    started = time.perf_counter()
    ann = Engine(bundle.version, bundle.models, items, ann_min_items=ann_min, **extra)
    ann_s = time.perf_counter() - started
    started = time.perf_counter()
    index = ItemIndex.build(bundle.models["ials"].item_factors_, min_items=ann_min)
    index_s = time.perf_counter() - started
    _log(f"engines: exact {exact_s:.1f} s, ANN {ann_s:.1f} s; an index built anew {index_s:.1f} s")
    return {
        "bundle": bundle,
        "engines": {"exact": exact, "ANN": ann},
        "timings": {
            "load bundle s": round(load_s, 2),
            "read catalog s": round(items_s, 2),
            "engine exact s": round(exact_s, 2),
            "engine ANN s": round(ann_s, 2),
            "ANN index build s": round(index_s, 2),
        },
        "index": {"kind": index.kind, "params": index.params, "prebuilt": "prebuilt" in extra},
    }


def latency(engine: Any, users: list[str], warmup: int) -> dict[str, float]:
    """Time `engine.recommend` over requests for `users` (the first `warmup` not counted)."""
    requests = [_request(u) for u in users]
    for request in requests[:warmup]:
        engine.recommend(request)
    times = []
    for request in requests[warmup:]:
        began = time.perf_counter()
        engine.recommend(request)
        times.append(time.perf_counter() - began)
    out = percentiles(times)
    out["requests"] = len(times)
    out["per_core_rps"] = round(1000 / out["mean_ms"], 1)
    return out


@contextlib.contextmanager
def stage_timer(engine: Any) -> Iterator[dict[str, float]]:
    """Time each pipeline stage and the parts around them (patches only this process)."""
    import penchant.ranking.pipeline as pipeline_module
    import penchant.ranking.sources as sources_module

    spent: dict[str, float] = defaultdict(float)

    def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - began

        return call

    pipeline = engine.pipelines[engine.default_surface]
    stages, explain = list(pipeline.stages), pipeline.explain
    catalog = engine.serving.catalog
    model = engine.serving.models["ials"]
    index = engine.serving.indexes.get("ials")
    patched_modules = [
        (pipeline_module, "place_pins"),
        (sources_module, "_top"),
        (sources_module, "_search"),
    ]
    originals = [(m, n, getattr(m, n)) for m, n in patched_modules]
    try:
        pipeline.stages = [
            (name, timed(f"stage {i} {name} {getattr(s, 'name', '') or ''}".strip(), s))
            for i, (name, s) in enumerate(stages)
        ]
        if explain is not None:
            pipeline.explain = timed("explain (final list)", explain)
        engine._query = timed("query (eligibility, history)", engine._query)
        catalog.allowed = timed("  of which catalog.allowed (filters)", catalog.allowed)
        model.user_vectors = timed("  ials.user_vectors", model.user_vectors)
        model.scores = timed("  ials.scores (exact: 100k dot products)", model.scores)
        if index is not None:
            index.search = timed("  index.search (faiss)", index.search)
        pipeline_module.place_pins = timed("place_pins", pipeline_module.place_pins)
        sources_module._top = timed("  _top (exact top-n over the catalog)", sources_module._top)
        sources_module._search = timed("  _search (ANN + eligibility)", sources_module._search)
        yield spent
    finally:
        pipeline.stages, pipeline.explain = stages, explain
        for obj, name in ((engine, "_query"), (catalog, "allowed"), (model, "user_vectors")):
            obj.__dict__.pop(name, None)
        model.__dict__.pop("scores", None)
        if index is not None:
            index.__dict__.pop("search", None)
        for module, name, original in originals:
            setattr(module, name, original)


def stage_profile(engine: Any, users: list[str]) -> dict[str, float]:
    """Mean ms per request spent in each stage (and in `recommend` as a whole)."""
    requests = [_request(u) for u in users]
    with stage_timer(engine) as spent:
        began = time.perf_counter()
        for request in requests:
            engine.recommend(request)
        total = time.perf_counter() - began
    out = {label: round(1000 * s / len(requests), 3) for label, s in spent.items()}
    out["recommend (whole)"] = round(1000 * total / len(requests), 3)
    return out


def thread_scaling(engine: Any, users: list[str], counts: tuple[int, ...]) -> list[dict[str, Any]]:
    """Requests per second and CPU per request with T threads calling `recommend` at once,
    as a server worker's thread pool does with T requests in flight."""
    import threading

    requests = [_request(u) for u in users]
    out = []
    for count in counts:
        chunks = [requests[i::count] for i in range(count)]

        def work(chunk: list[Any]) -> None:
            for request in chunk:
                engine.recommend(request)

        threads = [threading.Thread(target=work, args=(c,)) for c in chunks]
        cpu, began = os.times(), time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall, after = time.perf_counter() - began, os.times()
        user, system = after.user - cpu.user, after.system - cpu.system
        out.append(
            {
                "threads": count,
                "requests_per_s": round(len(requests) / wall, 1),
                "cpu_ms_per_request": round(1000 * (user + system) / len(requests), 2),
                "system_ms_per_request": round(1000 * system / len(requests), 2),
                "cores_busy": round((user + system) / wall, 2),
            }
        )
        _log(f"  threads {json.dumps(out[-1])}")
    return out


def agreement(built: dict[str, Any], users: list[str]) -> dict[str, float]:
    """How close ANN retrieval and ANN serving come to exact, for `users`."""
    import scipy.sparse as sp

    from penchant.ranking.sources import _search, _top
    from penchant.ranking.state import Activity

    exact, ann = built["engines"]["exact"], built["engines"]["ANN"]
    model = built["bundle"].models["ials"]
    codes = model.user_codes(users)
    history = sp.csr_matrix(model.history_[codes])
    vectors = model.user_vectors(codes, history)
    index = ann.serving.indexes["ials"]
    # recall@100 of the retrieval alone, what the user consumed excluded on both sides
    scores = vectors @ model.item_factors_.T
    rows = np.repeat(np.arange(len(codes)), np.diff(history.indptr))
    scores[rows, history.indices] = -np.inf
    truth = np.argpartition(-scores, 99, axis=1)[:, :100]
    found, _ = index.search(vectors, 100, exclude=history)
    recall100 = np.mean(
        [len(np.intersect1d(t, f)) / 100 for t, f in zip(truth, found, strict=True)]
    )
    # the model source's 200 candidates under the benchmark's filters, and the served lists
    now = datetime.now(UTC)
    empty = Activity([], [], [])
    candidates, served = [], []
    for user, vector in zip(users, vectors, strict=True):
        request = _request(user, now)
        query = ann._query(request, empty, empty)
        want, _ = _top(scores_row(model, vector), query.eligible, 200)
        got, _ = _search(index, model, vector[None, :], query, 200)
        candidates.append(len(np.intersect1d(want, got)) / max(1, len(want)))
        a = exact.recommend(request).item_ids
        b = ann.recommend(request).item_ids
        served.append(len(set(a) & set(b)) / max(1, len(a)))
    return {
        "users": len(users),
        "recall@100 (retrieval, history excluded)": round(float(recall100), 4),
        "recall@200 (model source candidates, filtered)": round(float(np.mean(candidates)), 4),
        "overlap@20 (served lists)": round(float(np.mean(served)), 4),
    }


def scores_row(model: Any, vector: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Exact scores of every item for one user vector."""
    return np.asarray(model.item_factors_ @ vector, dtype=np.float32)


def cprofile(engine: Any, users: list[str], limit: int = 30) -> str:
    """cProfile of `recommend` over requests for `users`: the top functions by own time."""
    requests = [_request(u) for u in users]
    profiler = cProfile.Profile()
    profiler.enable()
    for request in requests:
        engine.recommend(request)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    # file names relative to the repository or to the Python library, not this machine's paths
    relative = text.getvalue().replace(f"{HERE.parent}/", "")
    return re.sub(r"/\S*/lib/python3\.\d+/", "", relative)


def in_process(args: argparse.Namespace, stamp: dict[str, Any]) -> dict[str, Any]:
    """Latency of both engines, their stages and their agreement."""
    from threadpoolctl import threadpool_limits

    n_users = stamp["params"]["users"]
    rng = np.random.default_rng(args.seed)
    draw = rng.integers(0, n_users, args.warmup + args.inproc_requests)
    users = [serving_world.user_id(int(u)) for u in draw]
    with threadpool_limits(limits=1):
        built = build_engines(args.world, ann_min(stamp))
        results: dict[str, Any] = {"timings": built["timings"], "index": built["index"]}
        results["latency"] = {}
        for name, engine in built["engines"].items():
            _log(f"in-process latency, {name}: {args.warmup} + {args.inproc_requests} requests")
            results["latency"][name] = latency(engine, users, args.warmup)
            _log(f"  {json.dumps(results['latency'][name])}")
        exact, ann = results["latency"]["exact"], results["latency"]["ANN"]
        results["ratio exact/ANN"] = {
            key: round(exact[key] / ann[key], 2)
            for key in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")
        }
        profile_users = users[args.warmup : args.warmup + 500]
        results["stages"] = {
            name: stage_profile(engine, profile_users) for name, engine in built["engines"].items()
        }
        _log("threads calling the ANN engine at once")
        results["threads"] = thread_scaling(
            built["engines"]["ANN"], users[args.warmup : args.warmup + 1600], (1, 2, 4, 16)
        )
        sample = rng.choice(n_users, args.agreement_users, replace=False)
        _log(f"agreement over {args.agreement_users} users")
        results["agreement"] = agreement(built, [serving_world.user_id(int(u)) for u in sample])
        if args.cprofile:
            for name, engine in built["engines"].items():
                text = cprofile(engine, profile_users)
                smoke = "-smoke" if args.smoke else ""
                path = OUT / f"serving-cprofile{smoke}-{name}.txt"
                path.write_text(text)
                _log(f"cProfile of {name} written to bench/out/{path.name}")
    results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return results


# -- HTTP ---------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        out += [int(p) for p in task.read_text().split()]
    return out


def worker_pids(server: Any, workers: int) -> list[int]:
    """The processes that answer requests: uvicorn itself with one worker, else its worker
    children (not multiprocessing's resource tracker)."""
    if workers == 1:
        return [server.pid]
    out = []
    for pid in _children(server.pid):
        with contextlib.suppress(OSError):
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
    return out


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sockets(pid: int) -> int:
    """Open sockets of a process."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def wait_until_loaded(server: Any, workers: int, timeout_s: float = 300.0) -> float:
    """Wait until every worker has started and stopped working (loaded its engine).

    A worker still loading accepts no connection, so a client connecting then would be
    served by the other worker only. Returns the seconds waited.
    """
    began = time.monotonic()
    quiet = 0
    last: float | None = None
    while time.monotonic() - began < timeout_s:
        time.sleep(0.5)
        pids = worker_pids(server, workers)
        busy = sum(_cpu_seconds(p) for p in {server.pid, *pids})
        quiet = quiet + 1 if last is not None and busy - last < 0.05 else 0
        last = busy
        if len(pids) >= workers and quiet >= 3:
            return time.monotonic() - began
    raise RuntimeError("the server's workers did not settle")


def drive(
    server: Any,
    port: int,
    key: str,
    args: argparse.Namespace,
    stamp: dict[str, Any],
    *,
    concurrency: int,
    seconds: float,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run bench/http_load.py against a running server; add what the server's processes did
    during the measured part (CPU per worker, connections each worker took)."""
    workers = worker_pids(server, args.workers)
    sockets_idle = {p: _sockets(p) for p in workers}
    command = [sys.executable, str(HERE / "http_load.py"), "--port", str(port)]
    command += ["--concurrency", str(concurrency), "--requests", str(args.requests)]
    command += ["--seconds", str(seconds), "--users", str(stamp["params"]["users"])]
    command += ["--seed", str(args.seed), *extra]
    load = subprocess.Popen(
        command, env=os.environ | {"PENCHANT_BENCH_KEY": key}, stdout=subprocess.PIPE, text=True
    )
    assert load.stdout is not None
    line = load.stdout.readline()  # `measuring`: the connections are open, warm-up done
    cpu_before = {p: _cpu_seconds(p) for p in {server.pid, *workers}}
    per_worker = {p: _sockets(p) - sockets_idle[p] for p in workers}
    out, _ = load.communicate(timeout=seconds + 600)
    cpu = {p: _cpu_seconds(p) - cpu_before[p] for p in cpu_before}
    if load.returncode != 0 or line.strip() != "measuring":
        raise RuntimeError(f"http_load.py failed with {load.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    worker_cpu = sum(cpu[p] for p in workers)
    result.update(
        {
            "connections_per_worker": sorted(per_worker.values(), reverse=True),
            "worker_cpu_pct": sorted(
                (round(100 * cpu[p] / result["wall_s"]) for p in workers), reverse=True
            ),
            "server_cpu_ms_per_request": round(1000 * worker_cpu / max(1, result["requests"]), 2),
        }
    )
    return result


def http_case(
    data_dir: Path,
    key: str,
    label: str,
    ann: bool,
    impressions: bool,
    args: argparse.Namespace,
    stamp: dict[str, Any],
    *,
    extras: bool = False,
) -> dict[str, Any]:
    """Start the server in one configuration, load it, stop it; return the measurements.

    With `extras`, the same server then answers two more loads: `GET /health` from as many
    connections (what the HTTP stack costs without ranking) and the recommendation requests
    from one connection (latency without queueing).
    """
    from penchant.settings import load_settings
    from penchant.store import open_store
    from penchant.testing.server import free_port, start_server

    n_items = stamp["params"]["items"]
    env = {
        "PENCHANT_SERVING__ANN_MIN_ITEMS": str(ann_min(stamp) if ann else n_items + 1),
        "PENCHANT_SERVING__LOG_IMPRESSIONS": "true" if impressions else "false",
    }
    settings = load_settings(data_dir)
    store = open_store(settings.store_url)
    events_before = store.events.count(serving_world.TENANT)
    store.close()
    port = free_port()
    log = data_dir / "server.log"
    commit = code_state()  # the code the server loads
    started = time.monotonic()
    server = start_server(data_dir, port, workers=args.workers, env=env, log=log, timeout_s=300)
    try:
        waited = wait_until_loaded(server, args.workers)
        ready_s = time.monotonic() - started
        _log(f"HTTP {label}, impressions {impressions}: server ready in {ready_s:.1f} s; load")
        result = drive(
            server, port, key, args, stamp, concurrency=args.concurrency, seconds=args.seconds
        )
        if extras:
            short = min(10.0, args.seconds)
            result["extra"] = {
                "GET /health": drive(
                    server,
                    port,
                    key,
                    args,
                    stamp,
                    concurrency=args.concurrency,
                    seconds=short,
                    extra=("--get", "/health"),
                ),
                "one connection": drive(
                    server, port, key, args, stamp, concurrency=1, seconds=short
                ),
            }
        supervisor = _cpu_seconds(server.pid) if args.workers > 1 else 0.0
        rss = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    store = open_store(settings.store_url)
    stored = store.events.count(serving_world.TENANT) - events_before
    store.close()
    result.update(
        {
            "retrieval": label,
            "log_impressions": impressions,
            "workers": args.workers,
            "commit": commit,
            "server_ready_s": round(ready_s, 1),
            "server_settle_s": round(waited, 1),
            "supervisor_cpu_s": round(supervisor, 1),
            "server_peak_rss_mb": rss,
            "impressions_stored": stored,
        }
    )
    _log(f"  {json.dumps(result)}")
    return result


def http_runs(args: argparse.Namespace, stamp: dict[str, Any]) -> list[dict[str, Any]]:
    """Every HTTP case on one copy of the world's database (impressions go there)."""
    from penchant.privacy.keys import create_key
    from penchant.settings import load_settings
    from penchant.store import open_store

    results = []
    with tempfile.TemporaryDirectory(prefix="serving-http-", dir=OUT) as tmp:
        data_dir = Path(tmp)
        for name in ("penchant.db", "penchant.db-wal"):
            if (args.world / name).exists():
                shutil.copyfile(args.world / name, data_dir / name)
                _fsync(data_dir / name)  # no server run pays for writing the copy back
        target = os.path.relpath(args.world / "models", data_dir)
        (data_dir / "models").symlink_to(target, target_is_directory=True)
        store = open_store(load_settings(data_dir).store_url)
        key = create_key(store.keys, serving_world.TENANT, ("recs:read",), name="serving bench")
        store.close()
        cases = [c for c in HTTP_CASES if c[2] or not args.skip_no_impressions]
        for i, (label, ann, impressions) in enumerate(cases):
            extras = i == len(cases) - 1
            results.append(
                http_case(data_dir, key, label, ann, impressions, args, stamp, extras=extras)
            )
    return results


# -- report -------------------------------------------------------------------------------
def code_state() -> str:
    """The commit of the code measured, and whether src/ differs from it."""

    def git(*command: str) -> str:
        done = subprocess.run(["git", *command], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "src")
    return git("rev-parse", "--short", "HEAD") + (" plus changes in src/" if changed else "")


def machine() -> dict[str, str]:
    """What the numbers were measured on: bench/run.py's description, and the code state."""
    import run  # a script beside this one

    return {**run.machine(), "commit": code_state()}


def markdown(report: dict[str, Any]) -> str:
    """The results as Markdown, in the style of docs/benchmarks.md."""
    stamp, lines = report["world"], []
    p = stamp["params"]
    lines += [
        f"World: {p['items']:,} items, {p['users']:,} users, {stamp['events']:,} interactions; "
        f"`popular` + `ials` ({p['factors']} factors, {p['epochs']} epochs).",
        "",
        "| build step | seconds |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {value} |" for name, value in stamp["timings"].items()]
    inproc = report.get("in_process")
    if inproc:
        lines += [f"| {name} (serving) | {value} |" for name, value in inproc["timings"].items()]
        lines += [
            "",
            f"In-process, k={K}, filters price <= 600 and not c03 (+ availability), one BLAS "
            f"thread, {inproc['latency']['ANN']['requests']:,} requests after warm-up:",
            "",
            "| retrieval | p50 ms | p95 ms | p99 ms | max ms | mean ms | requests/s per core |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, r in inproc["latency"].items():
            lines.append(
                f"| {name} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} | "
                f"{r['mean_ms']} | {r['per_core_rps']:,} |"
            )
        ratio = inproc["ratio exact/ANN"]
        lines.append(
            f"| exact / ANN | {ratio['p50_ms']} | {ratio['p95_ms']} | {ratio['p99_ms']} | | "
            f"{ratio['mean_ms']} | |"
        )
        lines += ["", "| agreement (ANN against exact) | value |", "| --- | ---: |"]
        lines += [f"| {k} | {v} |" for k, v in inproc["agreement"].items()]
        stages = inproc["stages"]
        labels = list(dict.fromkeys([*stages["exact"], *stages["ANN"]]))
        lines += ["", "| stage (mean ms per request) | exact | ANN |", "| --- | ---: | ---: |"]
        for label in labels:
            a, b = stages["exact"].get(label, ""), stages["ANN"].get(label, "")
            lines.append(f"| {label.replace('  ', '&nbsp;&nbsp;')} | {a} | {b} |")
        lines += [
            "",
            "Threads calling the ANN engine at once, in one process (a worker's thread pool):",
            "",
            "| threads | requests/s | CPU ms per request | of which system | cores busy |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for t in inproc["threads"]:
            lines.append(
                f"| {t['threads']} | {t['requests_per_s']} | {t['cpu_ms_per_request']} | "
                f"{t['system_ms_per_request']} | {t['cores_busy']} |"
            )
        lines += ["", f"In-process peak RSS: {inproc['peak_rss_mib']:,} MiB (both engines)."]
    http = report.get("http")
    if http:
        lines += [
            "",
            f"HTTP, {http[0]['workers']} workers, keep-alive connections (closed loop), the same "
            "requests; server CPU is the workers' CPU time per answered request:",
            "",
            "| retrieval | impressions | connections | requests | errors | req/s | p50 ms | "
            "p95 ms | p99 ms | server CPU ms/req | server peak RSS MiB | impressions stored | "
            "connections per worker |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
            "--- |",
        ]

        def row(r: dict[str, Any], label: str, impressions: str, rss: str, stored: str) -> str:
            return (
                f"| {label} | {impressions} | {r['concurrency']} | {r['requests']:,} | "
                f"{r['errors']} | {r['throughput_rps']:,} | {r['p50_ms']} | {r['p95_ms']} | "
                f"{r['p99_ms']} | {r['server_cpu_ms_per_request']} | {rss} | {stored} | "
                f"{r['connections_per_worker']} |"
            )

        for r in http:
            impressions = "on" if r["log_impressions"] else "off"
            lines.append(
                row(
                    r,
                    r["retrieval"],
                    impressions,
                    f"{r['server_peak_rss_mb']:,}",
                    f"{r['impressions_stored']:,}",
                )
            )
            for name, extra in r.get("extra", {}).items():
                lines.append(row(extra, f"{r['retrieval']}, {name}", impressions, "", ""))
        pair = [r for r in http if r["log_impressions"]]
        if len(pair) == 2:
            ann, exact = pair if pair[0]["retrieval"] == "ANN" else pair[::-1]
            lines.append(
                f"| exact / ANN | on | | | | "
                f"{exact['throughput_rps'] / ann['throughput_rps']:.2f} | "
                f"{exact['p50_ms'] / ann['p50_ms']:.2f} | {exact['p95_ms'] / ann['p95_ms']:.2f} | "
                f"{exact['p99_ms'] / ann['p99_ms']:.2f} | "
                f"{exact['server_cpu_ms_per_request'] / ann['server_cpu_ms_per_request']:.2f} | "
                "| | |"
            )
        loadgen = max(r["loadgen_cpu_pct"] for r in http)
        lines += ["", f"The load generator used at most {loadgen}% of one core."]
    lines += ["", "Targets:"]
    for line in report["targets"]:
        lines.append(f"- {line}")
    return "\n".join(lines)


def targets(report: dict[str, Any]) -> list[str]:
    """Each target, met or not."""
    out = []
    inproc = report.get("in_process")
    if inproc:
        p99 = inproc["latency"]["ANN"]["p99_ms"]
        met = "met" if p99 <= TARGET_INPROC_P99_MS else "NOT met"
        out.append(f"in-process p99 <= {TARGET_INPROC_P99_MS} ms (ANN): {p99} ms, {met}")
    for r in report.get("http") or []:
        if r["retrieval"] != "ANN":
            continue
        ok = r["p99_ms"] <= TARGET_HTTP_P99_MS and r["throughput_rps"] >= TARGET_HTTP_RPS
        out.append(
            f"HTTP p99 <= {TARGET_HTTP_P99_MS} ms at >= {TARGET_HTTP_RPS:,.0f} req/s (ANN, "
            f"impressions {'on' if r['log_impressions'] else 'off'}): {r['p99_ms']} ms at "
            f"{r['throughput_rps']:,} req/s, {'met' if ok else 'NOT met'}"
        )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print Markdown, write bench/out/serving.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30_000, help="HTTP requests per case")
    parser.add_argument("--seconds", type=float, default=30.0, help="HTTP seconds per case")
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP connections")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--inproc-requests", type=int, default=2_000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--agreement-users", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-http", action="store_true", help="in-process only")
    parser.add_argument("--skip-inproc", action="store_true", help="HTTP only")
    parser.add_argument(
        "--skip-no-impressions", action="store_true", help="skip the run without impressions"
    )
    parser.add_argument("--cprofile", action="store_true", help="also write cProfile reports")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the world first")
    parser.add_argument("--smoke", action="store_true", help="a small world (a quick check)")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    report: dict[str, Any] = {"machine": machine()}
    params = serving_world.WorldParams()
    args.world = serving_world.WORLD
    if args.smoke:  # a small world, to check the script end to end in a minute
        params = serving_world.WorldParams(users=20_000, items=5_000, epochs=2)
        args.world = OUT / "serving-world-smoke"
    stamp = serving_world.ensure(params, rebuild=args.rebuild, world=args.world)
    report["world"] = {k: v for k, v in stamp.items() if k != "manifest"}
    if not args.skip_inproc:
        report["in_process"] = in_process(args, stamp)
    if not args.skip_http:
        report["http"] = http_runs(args, stamp)
    report["machine"]["load average after"] = Path("/proc/loadavg").read_text().strip()
    report["machine"]["commit after"] = code_state()
    if report["machine"]["commit after"] != report["machine"]["commit"]:
        _log("the code changed during the run: its numbers mix two versions")
    report["targets"] = targets(report)
    report["command"] = " ".join([".venv/bin/python bench/serving_bench.py", *(argv or [])])
    name = "serving-smoke.json" if args.smoke else "serving.json"
    (OUT / name).write_text(json.dumps(report, indent=2) + "\n")
    print()
    for key, value in report["machine"].items():
        print(f"- {key}: {value}")
    print()
    print(markdown(report))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
