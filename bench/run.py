"""Run every benchmark (`make bench`) and print the results as Markdown for docs/benchmarks.md.

Results also go to bench/out/results.json. Arguments are passed to the import benchmark,
e.g. `.venv/bin/python bench/run.py --case ml100k`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import import_bench  # a script beside this one, not a package


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


def main() -> None:
    """Run the benchmarks and report."""
    info = machine()
    results = import_bench.main(sys.argv[1:])
    out = import_bench.OUT / "results.json"
    out.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    print()
    for key, value in info.items():
        print(f"- {key}: {value}")
    print()
    print(markdown(results))


if __name__ == "__main__":
    main()
