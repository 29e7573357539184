"""Run every benchmark (`make bench`) and print the results as Markdown for docs/benchmarks.md.

Results also go to bench/out/results.json (imports and HTTP), bench/out/models.json (models
against peer libraries), bench/out/scale.json (training at scale), bench/out/serving.json
(serving at scale) and bench/out/decisions.json (POST /v1/decisions). Arguments are passed to
the import benchmark, e.g. `.venv/bin/python bench/run.py --case ml100k`; `--only-models`
runs just the model benchmarks, `--only-serving` just the serving one, `--only-decisions`
just the decisions one, `--only-experiments` the interleaving sensitivity, a simulated A/B
test of popular against personalized through the real service, and the first lists of each
pipeline in six simulated worlds (`bench/simulated_lift.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_ingest  # scripts beside this one, not a package
import import_bench

#: HTTP ingestion runs: (uvicorn workers, concurrent client connections).
HTTP_CASES = ((1, 2), (2, 4))
HTTP_REPEAT = 3


def machine() -> dict[str, str]:
    """What the numbers were measured on."""

    def shell(*command: str) -> str:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        return (done.stdout or done.stderr).strip()

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": shell("sh", "-c", "free -g | awk '/Mem:/ {print $2 \" GiB\"}'"),
        "python3 --version": shell("python3", "--version"),
        "venv python": platform.python_version(),
        "date": shell("date"),
        "load average before": shell("cat", "/proc/loadavg"),
    }


def markdown(results: list[dict[str, Any]]) -> str:
    """The results as a Markdown table: the median run of each case, and every run's rate."""
    lines = [
        "| case | store | rows | events/s (median) | every run | import s | peak RSS MiB (max) |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: |",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["case"], r["backend"]), []).append(r)
    for (case, backend), runs in groups.items():
        runs = sorted(runs, key=lambda r: r["events_per_second"])
        mid = runs[len(runs) // 2]
        rates = ", ".join(f"{r['events_per_second']:,}" for r in runs)
        lines.append(
            f"| {case} | {backend} | {mid['rows']:,} | {mid['events_per_second']:,} | {rates} | "
            f"{mid['import_seconds']} | {max(r['peak_rss_mib'] for r in runs)} |"
        )
    lines.append("")
    commands = {(r["case"], r["backend"]): r["command"] for r in results}
    lines.extend(f"- {case}, {backend}: `{cmd}`" for (case, backend), cmd in commands.items())
    return "\n".join(lines)


def http_runs() -> list[dict[str, Any]]:
    """HTTP batch ingestion on loopback: batches of 1,000 events, SQLite, synchronous=FULL."""
    runs = []
    for workers, clients in HTTP_CASES:
        for _ in range(HTTP_REPEAT):
            options = argparse.Namespace(
                clients=clients, batch=1000, batches=300, seconds=60.0, workers=workers
            )
            result = http_ingest.run(options)
            result["command"] = (
                f".venv/bin/python bench/http_ingest.py --workers {workers} "
                f"--clients {clients} --batch 1000 --batches 300"
            )
            print(json.dumps(result), flush=True)
            runs.append(result)
    return runs


def http_markdown(runs: list[dict[str, Any]]) -> str:
    """HTTP runs as a Markdown table: the median run of each configuration."""
    lines = [
        "| workers | clients | events/s (median) | every run | p50 ms | p99 ms | peak RSS MiB |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["workers"], r["clients"]), []).append(r)
    for (workers, clients), group in groups.items():
        group = sorted(group, key=lambda r: r["events_per_s"])
        mid = group[len(group) // 2]
        rates = ", ".join(f"{r['events_per_s']:,}" for r in group)
        lines.append(
            f"| {workers} | {clients} | {mid['events_per_s']:,} | {rates} | {mid['p50_ms']} | "
            f"{mid['p99_ms']} | {max(r['server_peak_rss_mb'] for r in group)} |"
        )
    return "\n".join(lines)


def model_runs() -> None:
    """The model benchmark against peer libraries, training at scale, item text embedding
    throughput, cold items against a TF-IDF baseline, the learned ranker's serving latency,
    and what served lists teach it on the simulated world (their own scripts)."""
    here = Path(__file__).resolve().parent
    scripts = (
        "models_bench.py",
        "scale_models.py",
        "embed_bench.py",
        "cold_start_bench.py",
        "ranker_bench.py",
        "impression_bench.py",
    )
    for script in scripts:
        subprocess.run([sys.executable, str(here / script)], check=True)


def serving_run() -> None:
    """The serving benchmark (its own script, which prints its Markdown), with the served
    case's open loop five times in a row: the HTTP target is a draw of a noisy machine."""
    here = Path(__file__).resolve().parent
    command = [sys.executable, str(here / "serving_bench.py"), "--open-runs", "5"]
    subprocess.run(command, check=True)


def decisions_run() -> None:
    """The decisions benchmark (its own script, which prints its Markdown): three policies,
    state on the Redis at 127.0.0.1:6379."""
    here = Path(__file__).resolve().parent
    subprocess.run([sys.executable, str(here / "decision_bench.py")], check=True)


def experiments_run() -> None:
    """Interleaving against A/B in a cascade-click world, then `penchant simulate` (2,000
    people, five days), then each pipeline's first lists in six simulated worlds, each
    printing its own results."""
    here = Path(__file__).resolve().parent
    subprocess.run([sys.executable, str(here / "interleaving_sensitivity.py")], check=True)
    penchant = Path(sys.executable).parent / "penchant"
    command = [str(penchant), "simulate", "--users", "2000", "--seed", "0", "--visits", "5"]
    subprocess.run([*command, "--output", str(here / "out" / "experiment")], check=True)
    subprocess.run([sys.executable, str(here / "simulated_lift.py")], check=True)


def main() -> None:
    """Run the benchmarks and report."""
    info = machine()
    if "--only-models" in sys.argv:
        model_runs()
        return
    if "--only-serving" in sys.argv:
        serving_run()
        return
    if "--only-decisions" in sys.argv:
        decisions_run()
        return
    if "--only-experiments" in sys.argv:
        experiments_run()
        return
    results = import_bench.main(sys.argv[1:])
    http = http_runs()
    out = import_bench.OUT / "results.json"
    out.write_text(json.dumps({"machine": info, "results": results, "http": http}, indent=2))
    print()
    for key, value in info.items():
        print(f"- {key}: {value}")
    print()
    print(markdown(results))
    print()
    print(http_markdown(http))
    print()
    model_runs()
    serving_run()
    decisions_run()
    experiments_run()


if __name__ == "__main__":
    main()
