"""Serving at scale: recommend latency in-process and over HTTP, three retrievals compared.

The world (bench/serving_world.py, built once and cached): 100,000 items, 1,000,000 users,
about 10 interactions each, an active bundle of `popular` and a 64-factor `ials`.

In-process: three `Engine`s on the same bundle and catalog: `exact` (`ann_min_items` above
the catalog size: every item scored), `served` (what the server does by default:
`retrieval="auto"` with the indexes saved with the bundle, or one `auto` builds; the index
kind it ends up with, e.g. `bounded`, is recorded and shown in its label) and `HNSW`
(`retrieval="hnsw"`, on an HNSW index built here once, whose build is timed). All use the
default surface, with BLAS and OpenMP pinned to one thread as the server pins them. Each
answers `--warmup` then `--inproc-requests` requests for random known users, k=20, with the
filters `price <= 600` and not category `c03` (availability is always on); only
`Engine.recommend` is timed. Then: a per-stage timing of the pipeline on each engine, the
served engine called from 1, 2, 4 and 16 threads at once (as a worker's thread pool would),
the agreement of served and HNSW with exact (recall@100 of the retrieval against exact
scoring, history excluded on both sides; the model source's 200 candidates under the
filters; the served top-20), and the process's peak RSS. `--cprofile` also writes cProfile
reports of each engine.

HTTP: the real server (`penchant serve`, 2 workers) on a copy of the world's database, once per
case (served: the default retrieval; HNSW: `PENCHANT_SERVING__RETRIEVAL=hnsw`; exact:
`ann_min_items` above the catalog; all with impressions logged, and served once more without),
loaded by bench/http_load.py in a separate process: 32 keep-alive connections, the same
requests, first in an open loop (`--rate` requests a second sent on a schedule over the
connections, latency counted from when each was due), then in a closed loop (each connection
sends its next request when the answer arrives: the server's capacity). The server's
peak RSS is all its processes' added up; its CPU per request is its workers' CPU time over
the measured part. The last server also answers `GET /health` from 32 connections (the HTTP
stack alone) and the requests from one connection (latency without queueing), closed loop.
The HTTP target (p99 <= 30 ms at >= 1,000 requests/s) is judged on the open loop: with 32
clients in a closed loop, mean latency = 32 / throughput (Little's law), so a closed loop
would need far more than 1,000 requests/s before its p99 came under 30 ms. With
`--open-runs N` the servers of the served retrieval answer the open loop N times in a row
before their closed loop, and the report says in how many runs the target was met: how
steady it is, not one draw.

Prints Markdown tables and writes bench/out/serving.json (`--smoke`: serving-smoke.json, on a
small world, to check the script in a minute).

    .venv/bin/python bench/serving_bench.py [--requests 30000 --seconds 30 --rate 1000]
        [--skip-http] [--skip-inproc] [--skip-no-impressions] [--open-runs 1] [--cprofile]
        [--smoke]
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
#: The in-process engines, in the order of the tables.
ENGINES = ("exact", "served", "HNSW")
#: HTTP cases: (label, retrieval, impressions logged). Retrieval `default` leaves the server's
#: `serving.retrieval` as it is (auto), `hnsw` sets it, `exact` puts `ann_min_items` above the
#: catalog size.
HTTP_CASES = (
    ("served", "default", True),
    ("HNSW", "hnsw", True),
    ("exact", "exact", True),
    ("served", "default", False),
)
#: The open loop counts as keeping up when it answers at least this share of the offered rate.
KEEP_UP = 0.98
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
    """The `ann_min_items` of the indexed runs: the default, or the whole of a smaller catalog."""
    return min(50_000, int(stamp["params"]["items"]))


def build_engines(world: Path, ann_min: int) -> dict[str, Any]:
    """The bundle, the catalog and the three engines, with how long each took."""
    from penchant.jobs.registry import ModelRegistry
    from penchant.models.ann import ItemIndex
    from penchant.models.factors import FactorModel
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
    model = bundle.models["ials"]
    assert isinstance(model, FactorModel)
    n_items = len(model.item_ids_)
    # what the server passes besides: purchases and dismissals recorded by training, and
    # the item indexes training saved with the bundle
    prebuilt = dict(bundle.indexes)
    timings: dict[str, float] = {
        "load bundle s": round(load_s, 2),
        "read catalog s": round(items_s, 2),
    }

    def engine(name: str, **options: Any) -> Any:
        began = time.perf_counter()
        out = Engine(bundle.version, bundle.models, items, exclusions=bundle.exclusions, **options)
        timings[f"engine {name} s"] = round(time.perf_counter() - began, 2)
        return out

    exact = engine("exact", ann_min_items=n_items + 1, prebuilt=prebuilt)
    served = engine("served", ann_min_items=ann_min, retrieval="auto", prebuilt=prebuilt)
    started = time.perf_counter()
    index = ItemIndex.build(model.item_factors_, method="hnsw", min_items=ann_min)
    timings["HNSW index build s"] = round(time.perf_counter() - started, 2)
    hnsw = engine(
        "HNSW", ann_min_items=ann_min, retrieval="hnsw", prebuilt=prebuilt | {"ials": index}
    )
    engines = {"exact": exact, "served": served, "HNSW": hnsw}
    kinds = {name: index_kind(e) for name, e in engines.items()}
    _log(f"engines: {json.dumps(timings)}; index kinds {json.dumps(kinds)}")
    served_index = served.serving.indexes.get("ials")
    return {
        "bundle": bundle,
        "engines": engines,
        "timings": timings,
        "index": {
            "kinds": kinds,
            "served params": None if served_index is None else served_index.params,
            "prebuilt": {name: i.kind for name, i in prebuilt.items()},
            "HNSW engine kept the index built here": hnsw.serving.indexes.get("ials") is index,
        },
    }


def index_kind(engine: Any) -> str:
    """The kind of index the engine retrieves `ials` candidates with (`exact` without one)."""
    index = engine.serving.indexes.get("ials")
    return "exact" if index is None else str(index.kind)


def engine_label(name: str, kinds: dict[str, str] | None) -> str:
    """An engine's name, with the index kind where the name does not tell it."""
    kind = (kinds or {}).get(name)
    if kind is None or kind == name.lower():
        return name
    return f"{name} ({kind})"


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
            spent[label] += 0.0  # listed when entered: an outer part before its inner ones
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
    # module functions the pipeline calls by their global name, and their labels
    functions = [
        (pipeline_module, "place_pins", "place_pins"),
        (sources_module, "_top", "  _top (exact top-n over the catalog)"),
        (sources_module, "_search", "  _search (index.search with the eligible items)"),
    ]
    originals = [(module, name, getattr(module, name)) for module, name, _ in functions]
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
        model.scores = timed("  ials.scores (exact: every item)", model.scores)
        if index is not None:
            index.search = timed("    of which index.search", index.search)
        for module, name, label in functions:
            setattr(module, name, timed(label, getattr(module, name)))
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


def agreement(built: dict[str, Any], users: list[str]) -> dict[str, Any]:
    """How close the served and HNSW engines' retrieval and lists come to exact, for `users`."""
    import scipy.sparse as sp

    from penchant.ranking.sources import _search, _top
    from penchant.ranking.state import Activity

    engines = built["engines"]
    exact = engines["exact"]
    compared = {name: engines[name] for name in ENGINES if name != "exact"}
    model = built["bundle"].models["ials"]
    codes = model.user_codes(users)
    history = sp.csr_matrix(model.history_[codes])
    vectors = model.user_vectors(codes, history)
    # recall@100 of the retrieval alone, what the user consumed excluded on both sides
    scores = vectors @ model.item_factors_.T
    rows = np.repeat(np.arange(len(codes)), np.diff(history.indptr))
    scores[rows, history.indices] = -np.inf
    truth = np.argpartition(-scores, 99, axis=1)[:, :100]
    recall100 = {}
    for name, engine in compared.items():
        found, _ = engine.serving.indexes["ials"].search(vectors, 100, exclude=history)
        recall100[name] = np.mean(
            [len(np.intersect1d(t, f)) / 100 for t, f in zip(truth, found, strict=True)]
        )
    # the model source's 200 candidates under the benchmark's filters, and the served lists
    now = datetime.now(UTC)
    empty = Activity([], [], [])
    candidates: dict[str, list[float]] = {name: [] for name in compared}
    served: dict[str, list[float]] = {name: [] for name in compared}
    for user, vector in zip(users, vectors, strict=True):
        request = _request(user, now)
        query = exact._query(request, empty, empty)  # the same catalog: the same eligibility
        want, _ = _top(scores_row(model, vector), query.eligible, 200)
        listed = set(exact.recommend(request).item_ids)
        for name, engine in compared.items():
            got, _ = _search(engine.serving.indexes["ials"], vector[None, :], query, 200)
            candidates[name].append(len(np.intersect1d(want, got)) / max(1, len(want)))
            shown = engine.recommend(request).item_ids
            served[name].append(len(listed & set(shown)) / max(1, len(listed)))
    return {
        "users": len(users),
        "against exact": {
            name: {
                "recall@100 (retrieval, history excluded)": round(float(recall100[name]), 4),
                "recall@200 (model source candidates, filtered)": round(
                    float(np.mean(candidates[name])), 4
                ),
                "overlap@20 (served lists)": round(float(np.mean(served[name])), 4),
            }
            for name in compared
        },
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
    """Latency of the three engines, their stages and their agreement."""
    from threadpoolctl import threadpool_limits

    n_users = stamp["params"]["users"]
    rng = np.random.default_rng(args.seed)
    draw = rng.integers(0, n_users, args.warmup + args.inproc_requests)
    users = [serving_world.user_id(int(u)) for u in draw]
    with threadpool_limits(limits=1):
        built = build_engines(args.world, ann_min(stamp))
        engines = built["engines"]
        results: dict[str, Any] = {"timings": built["timings"], "index": built["index"]}
        results["latency"] = {}
        for name, engine in engines.items():
            _log(f"in-process latency, {name}: {args.warmup} + {args.inproc_requests} requests")
            results["latency"][name] = latency(engine, users, args.warmup)
            _log(f"  {json.dumps(results['latency'][name])}")
        served = results["latency"]["served"]
        results["ratios"] = {
            f"{name} / served": {
                key: round(results["latency"][name][key] / served[key], 2)
                for key in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")
            }
            for name in ("exact", "HNSW")
        }
        profile_users = users[args.warmup : args.warmup + 500]
        results["stages"] = {
            name: stage_profile(engine, profile_users) for name, engine in engines.items()
        }
        _log("threads calling the served engine at once")
        results["threads"] = thread_scaling(
            engines["served"], users[args.warmup : args.warmup + 1600], (1, 2, 4, 16)
        )
        sample = rng.choice(n_users, args.agreement_users, replace=False)
        _log(f"agreement over {args.agreement_users} users")
        results["agreement"] = agreement(built, [serving_world.user_id(int(u)) for u in sample])
        if args.cprofile:
            for name, engine in engines.items():
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
    # the workers' own children: the impression writers (started by the warm-up's lists)
    helpers = [c for w in workers if w != server.pid for c in _children(w)]
    cpu_before = {p: _cpu_seconds(p) for p in {server.pid, *workers, *helpers}}
    per_worker = {p: _sockets(p) - sockets_idle[p] for p in workers}
    out, _ = load.communicate(timeout=seconds + 600)
    cpu = {p: _cpu_seconds(p) - cpu_before[p] for p in cpu_before}
    if load.returncode != 0 or line.strip() != "measuring":
        raise RuntimeError(f"http_load.py failed with {load.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    worker_cpu = sum(cpu[p] for p in workers)
    helper_cpu = sum(cpu[p] for p in helpers)
    requests = max(1, result["requests"])
    result.update(
        {
            "connections_per_worker": sorted(per_worker.values(), reverse=True),
            "worker_cpu_pct": sorted(
                (round(100 * cpu[p] / result["wall_s"]) for p in workers), reverse=True
            ),
            # everything the server did per answer: its workers and their impression writers
            "server_cpu_ms_per_request": round(1000 * (worker_cpu + helper_cpu) / requests, 2),
            "writer_cpu_ms_per_request": round(1000 * helper_cpu / requests, 2),
        }
    )
    return result


def http_case(
    data_dir: Path,
    key: str,
    label: str,
    retrieval: str,
    impressions: bool,
    args: argparse.Namespace,
    stamp: dict[str, Any],
    *,
    extras: bool = False,
) -> dict[str, Any]:
    """Start the server in one configuration, load it, stop it; return the measurements.

    With `args.rate`, the server first answers an open loop at that rate (`open_loop`; with
    `args.open_runs` > 1 that many in a row, all in `open_loop_repeats`), then the
    closed-loop load over as many connections. With `extras`, it then
    answers two more closed-loop loads: `GET /health` from as many connections (what the
    HTTP stack costs without ranking) and the recommendation requests from one connection
    (latency without queueing).
    """
    from penchant.settings import load_settings
    from penchant.store import open_store
    from penchant.testing.server import free_port, start_server

    n_items = stamp["params"]["items"]
    env = {
        "PENCHANT_SERVING__ANN_MIN_ITEMS": str(
            n_items + 1 if retrieval == "exact" else ann_min(stamp)
        ),
        "PENCHANT_SERVING__LOG_IMPRESSIONS": "true" if impressions else "false",
    }
    if retrieval not in ("default", "exact"):
        env["PENCHANT_SERVING__RETRIEVAL"] = retrieval
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

        def load(concurrency: int, seconds: float, *extra: str) -> dict[str, Any]:
            return drive(
                server,
                port,
                key,
                args,
                stamp,
                concurrency=concurrency,
                seconds=seconds,
                extra=extra,
            )

        # The open loop first: the closed loop saturates the cores and leaves the impression
        # writer (idle CPU time only) a backlog that it would work off during the next load.
        open_loops = []
        if args.rate > 0:
            # repeated for the served retrieval only: the others cannot keep up at all
            for _ in range(max(1, args.open_runs) if retrieval == "default" else 1):
                open_loops.append(load(args.concurrency, args.seconds, "--rate", str(args.rate)))
            _log("  open loop done; closed loop")
        result = load(args.concurrency, args.seconds)
        if open_loops:
            result["open_loop"] = open_loops[0]
            if len(open_loops) > 1:
                result["open_loop_repeats"] = open_loops
        if extras:
            short = min(10.0, args.seconds)
            result["extra"] = {
                "GET /health": load(args.concurrency, short, "--get", "/health"),
                "one connection": load(1, short),
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
            "retrieval_setting": retrieval,
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
        for i, (label, retrieval, impressions) in enumerate(cases):
            extras = i == len(cases) - 1
            results.append(
                http_case(data_dir, key, label, retrieval, impressions, args, stamp, extras=extras)
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
        lines += ["", *inproc_markdown(inproc)]
    http = report.get("http")
    if http:
        lines += ["", *http_markdown(http, kinds(report))]
    lines += ["", "Targets:"]
    for line in report["targets"]:
        lines.append(f"- {line}")
    return "\n".join(lines)


def kinds(report: dict[str, Any]) -> dict[str, str] | None:
    """The index kind of each in-process engine, where the in-process part ran."""
    inproc = report.get("in_process")
    return inproc["index"]["kinds"] if inproc else None


def inproc_markdown(inproc: dict[str, Any]) -> list[str]:
    """The in-process tables: latency, agreement, stages, threads."""
    names = {name: engine_label(name, inproc["index"]["kinds"]) for name in ENGINES}
    lines = [
        f"In-process, k={K}, filters price <= 600 and not c03 (+ availability), one BLAS "
        f"thread, {inproc['latency']['served']['requests']:,} requests after warm-up:",
        "",
        "| retrieval | p50 ms | p95 ms | p99 ms | max ms | mean ms | requests/s per core |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in inproc["latency"].items():
        lines.append(
            f"| {names[name]} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} | "
            f"{r['mean_ms']} | {r['per_core_rps']:,} |"
        )
    for name, ratio in inproc["ratios"].items():
        lines.append(
            f"| {name} | {ratio['p50_ms']} | {ratio['p95_ms']} | {ratio['p99_ms']} | | "
            f"{ratio['mean_ms']} | |"
        )
    against = inproc["agreement"]["against exact"]
    lines += [
        "",
        f"Agreement with exact over {inproc['agreement']['users']:,} users:",
        "",
        "| agreement (against exact) | " + " | ".join(names[n] for n in against) + " |",
        "| --- |" + " ---: |" * len(against),
    ]
    for metric in next(iter(against.values())):
        lines.append(f"| {metric} | " + " | ".join(str(a[metric]) for a in against.values()) + " |")
    stages = inproc["stages"]
    labels: list[str] = []  # each engine's parts in call order, merged
    for name in ENGINES:
        at = 0
        for label in stages[name]:
            if label in labels:
                at = labels.index(label) + 1
            else:
                labels.insert(at, label)
                at += 1
    lines += [
        "",
        "| stage (mean ms per request) | " + " | ".join(names[n] for n in ENGINES) + " |",
        "| --- |" + " ---: |" * len(ENGINES),
    ]
    for label in labels:
        cells = " | ".join(str(stages[n].get(label, "")) for n in ENGINES)
        lines.append(f"| {label.replace('  ', '&nbsp;&nbsp;')} | {cells} |")
    lines += [
        "",
        f"Threads calling the {names['served']} engine at once, in one process (a worker's "
        "thread pool):",
        "",
        "| threads | requests/s | CPU ms per request | of which system | cores busy |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in inproc["threads"]:
        lines.append(
            f"| {t['threads']} | {t['requests_per_s']} | {t['cpu_ms_per_request']} | "
            f"{t['system_ms_per_request']} | {t['cores_busy']} |"
        )
    lines += ["", f"In-process peak RSS: {inproc['peak_rss_mib']:,} MiB (three engines)."]
    return lines


def http_label(r: dict[str, Any], kinds: dict[str, str] | None) -> str:
    """An HTTP case's retrieval, with the index kind the in-process engine of that name chose
    (the same bundle and the same serving settings)."""
    return engine_label(r["retrieval"], kinds)


def on_off(r: dict[str, Any]) -> str:
    """Whether an HTTP case logged impressions."""
    return "on" if r["log_impressions"] else "off"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else ""


def _against_served(http: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, case, served case) for exact and HNSW against served, impressions on, where
    both ran."""
    on = {r["retrieval"]: r for r in http if r["log_impressions"]}
    if "served" not in on:
        return []
    return [(f"{n} / served", on[n], on["served"]) for n in ("exact", "HNSW") if n in on]


def http_markdown(http: list[dict[str, Any]], kinds: dict[str, str] | None) -> list[str]:
    """The HTTP tables: closed loop (with the extra loads), then open loop."""
    lines = [
        f"HTTP, {http[0]['workers']} workers, keep-alive connections (closed loop), the same "
        "requests; server CPU is the CPU time of the workers and their impression writers per "
        "answered request:",
        "",
        "| retrieval | impressions | connections | requests | errors | req/s | p50 ms | "
        "p95 ms | p99 ms | server CPU ms/req | server peak RSS MiB | impressions stored | "
        "connections per worker |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def row(r: dict[str, Any], label: str, impressions: str, rss: str, stored: str) -> str:
        return (
            f"| {label} | {impressions} | {r['concurrency']} | {r['requests']:,} | "
            f"{r['errors']} | {r['throughput_rps']:,} | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['p99_ms']} | {r['server_cpu_ms_per_request']} | {rss} | {stored} | "
            f"{r['connections_per_worker']} |"
        )

    for r in http:
        impressions = on_off(r)
        label = http_label(r, kinds)
        rss, stored = f"{r['server_peak_rss_mb']:,}", f"{r['impressions_stored']:,}"
        lines.append(row(r, label, impressions, rss, stored))
        for name, extra in r.get("extra", {}).items():
            lines.append(row(extra, f"{label}, {name}", impressions, "", ""))
    for name, a, b in _against_served(http):
        lines.append(
            f"| {name} | on | | | | {_ratio(a['throughput_rps'], b['throughput_rps'])} | "
            f"{_ratio(a['p50_ms'], b['p50_ms'])} | {_ratio(a['p95_ms'], b['p95_ms'])} | "
            f"{_ratio(a['p99_ms'], b['p99_ms'])} | "
            f"{_ratio(a['server_cpu_ms_per_request'], b['server_cpu_ms_per_request'])} | | | |"
        )
    opened = [r for r in http if "open_loop" in r]
    if opened:
        lines += [
            "",
            "The same servers in an open loop: requests sent on a schedule at the offered rate "
            "over the same connections, latency counted from when each was due:",
            "",
            "| retrieval | impressions | connections | offered req/s | requests | errors | "
            "achieved req/s | p50 ms | p95 ms | p99 ms | max ms | server CPU ms/req | "
            "connections per worker |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
            "--- |",
        ]
        for r in opened:
            o = r["open_loop"]
            lines.append(
                f"| {http_label(r, kinds)} | {on_off(r)} | "
                f"{o['concurrency']} | {o['offered_rps']:,} | {o['requests']:,} | "
                f"{o['errors']} | {o['throughput_rps']:,} | {o['p50_ms']} | {o['p95_ms']} | "
                f"{o['p99_ms']} | {o['max_ms']} | {o['server_cpu_ms_per_request']} | "
                f"{o['connections_per_worker']} |"
            )
        for name, a, b in _against_served(opened):
            oa, ob = a["open_loop"], b["open_loop"]
            lines.append(
                f"| {name} | on | | | | | {_ratio(oa['throughput_rps'], ob['throughput_rps'])} | "
                f"| | {_ratio(oa['p99_ms'], ob['p99_ms'])} | | | |"
            )
    runs = [*http, *(r["open_loop"] for r in opened)]
    runs += [extra for r in http for extra in r.get("extra", {}).values()]
    loadgen = max(r["loadgen_cpu_pct"] for r in runs)
    lines += ["", f"The load generator used at most {loadgen}% of one core."]
    return lines


def targets(report: dict[str, Any]) -> list[str]:
    """Each target, met or not; then the closed-loop capacity, for information."""
    out = []
    inproc = report.get("in_process")
    if inproc:
        p99 = inproc["latency"]["served"]["p99_ms"]
        met = "met" if p99 <= TARGET_INPROC_P99_MS else "NOT met"
        label = engine_label("served", kinds(report))
        out.append(f"in-process p99 <= {TARGET_INPROC_P99_MS} ms ({label}): {p99} ms, {met}")
    http = report.get("http") or []
    target = f"HTTP p99 <= {TARGET_HTTP_P99_MS:g} ms at >= {TARGET_HTTP_RPS:,.0f} req/s"
    for r in http:
        if r["retrieval"] != "served":
            continue
        case = f"{http_label(r, kinds(report))}, impressions {on_off(r)}"
        o = r.get("open_loop")
        if o is None:
            out.append(f"{target} ({case}): not measured (no open loop: --rate 0)")
            continue
        offered = float(o["offered_rps"] or 0.0)
        ok = _met(o)
        out.append(
            f"{target} ({case}), open loop at {offered:,.0f} req/s offered: "
            f"{o['throughput_rps']:,} req/s answered, p99 {o['p99_ms']} ms, "
            f"{o['errors']} errors: {'met' if ok else 'NOT met'}"
        )
        repeats = r.get("open_loop_repeats")
        if repeats:
            met = sum(_met(x) for x in repeats)
            p99s = ", ".join(f"{x['p99_ms']}" for x in repeats)
            out.append(
                f"  the open loop {len(repeats)} times in a row on that server: p99 {p99s} ms; "
                f"met in {met} of {len(repeats)}"
            )
    if http:
        out.append(
            f"(the HTTP target is judged on the open loop: met when the offered rate is at least "
            f"{TARGET_HTTP_RPS:,.0f} req/s, at least {KEEP_UP:.0%} of it is answered, without "
            f"errors, and p99 <= {TARGET_HTTP_P99_MS:g} ms)"
        )
        capacity = "; ".join(
            f"{http_label(r, kinds(report))}, impressions {on_off(r)}: "
            f"{r['throughput_rps']:,} req/s at p99 {r['p99_ms']} ms"
            for r in http
        )
        clients = http[0]["concurrency"]
        out.append(
            f"for information, the closed-loop capacity ({clients} connections): {capacity}. "
            f"With {clients} clients in a closed loop, mean latency = {clients} / throughput "
            f"(Little's law), so a closed loop would need far more than "
            f"{TARGET_HTTP_RPS:,.0f} req/s before its p99 came under {TARGET_HTTP_P99_MS:g} ms."
        )
    return out


def _met(o: dict[str, Any]) -> bool:
    """Whether one open-loop run met the HTTP target."""
    offered = float(o["offered_rps"] or 0.0)
    return bool(
        o["errors"] == 0
        and offered >= TARGET_HTTP_RPS
        and o["throughput_rps"] >= KEEP_UP * offered
        and o["p99_ms"] <= TARGET_HTTP_P99_MS
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print Markdown, write bench/out/serving.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30_000, help="HTTP requests per case")
    parser.add_argument("--seconds", type=float, default=30.0, help="HTTP seconds per case")
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP connections")
    parser.add_argument(
        "--rate",
        type=float,
        default=1_000.0,
        help="HTTP open-loop requests/s, before each closed-loop load (0: no open loop)",
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument(
        "--open-runs",
        type=int,
        default=1,
        help="open loops in a row per server (how steady the HTTP target is)",
    )
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
