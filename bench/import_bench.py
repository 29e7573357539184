"""Bulk-import benchmark: events per second and whole-process peak memory of `penchant import`.

Each case runs the real command line in a fresh subprocess on a fresh store (a new SQLite
file with synchronous=FULL, or a new PostgreSQL schema) and reads that process's peak RSS
from `os.wait4`. The `parse-only` backend runs the same import against a store that
discards every chunk, to show what reading and validating alone cost.

    .venv/bin/python bench/import_bench.py                    # every case
    .venv/bin/python bench/import_bench.py --case ml100k --backend sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DATASETS = ROOT.parent / "shared" / "datasets"
PG_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
SYNTHETIC_ROWS = 10_000_000

# Runs the import in-process against a store that keeps nothing: the ingest side alone.
_PARSE_ONLY = """
import json, sys
from pathlib import Path
from penchant.ingest.bulk import EventSpec, import_events
from penchant.ingest.formats import get_preset
from penchant.schema import EventVocabulary
from penchant.store import Ack

class Discard:
    def append_table(self, tenant, table, *, batch_key=None):
        return Ack(stored=table.num_rows)

path, fmt, rejects = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
spec = get_preset(fmt).events
report = import_events(Discard(), "default", path, spec, vocabulary=EventVocabulary(),
                       rejects=rejects)
print(json.dumps(report.__dict__))
"""


def cases() -> dict[str, tuple[Path, str]]:
    """Benchmark inputs: name -> (file, --format)."""
    return {
        "ml100k": (DATASETS / "movielens-100k" / "u.data", "movielens-100k"),
        "synthetic-10m": (OUT / "synthetic-10m.csv", "csv"),
    }


def ensure_synthetic(path: Path, rows: int) -> None:
    """Generate the synthetic file once (bench/out is not committed)."""
    if path.exists():
        return
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "make_synthetic.py"), "--rows", str(rows),
         "--out", str(path)],
        check=True,
    )  # fmt: skip


def run_case(name: str, path: Path, fmt: str, backend: str) -> dict[str, Any]:
    """Import `path` once into a fresh `backend` store; return the numbers."""
    work = OUT / f"run-{name}-{backend}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = dict(os.environ)
    schema = None
    if backend == "parse-only":
        command = [sys.executable, "-c", _PARSE_ONLY, str(path), fmt, str(work / "rejects")]
    else:
        command = [
            sys.executable, "-c", "from penchant.cli import main; main()",
            "import", "events", str(path), "--format", fmt, "--no-catalog",
            "--data-dir", str(work), "--json", "--quiet",
        ]  # fmt: skip
        if backend == "postgres":
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            _pg(f'CREATE SCHEMA "{schema}"')
            env["PENCHANT_STORE__URL"] = PG_URL.format(schema=schema)
        else:
            env["PENCHANT_STORE__SYNCHRONOUS"] = "FULL"
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    try:
        if process.returncode != 0:
            raise RuntimeError(f"{name}/{backend} failed: {stderr.decode()[-2000:]}")
        report = json.loads(stdout)
    finally:
        if schema is not None:
            _pg(f'DROP SCHEMA "{schema}" CASCADE')
        shutil.rmtree(work, ignore_errors=True)
    return {
        "case": name,
        "backend": backend,
        "file": _relative(str(path)),
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "rows": report["rows_read"],
        "stored": report["stored"],
        "import_seconds": report["seconds"],
        "events_per_second": round(report["rows_read"] / report["seconds"]),
        "process_seconds": round(wall, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is in KiB on Linux
        "command": " ".join(_shown(command)),
    }


def _shown(command: list[str]) -> list[str]:
    """The command as a person would type it (the console script instead of python -c)."""
    if "main()" in command[2]:
        return [".venv/bin/penchant", *[_relative(a) for a in command[3:]]]
    return ["(in-process import into a discarding store)", *[_relative(a) for a in command[3:5]]]


def _relative(arg: str) -> str:
    path = Path(arg)
    if path.is_absolute() and path.is_relative_to(ROOT.parent):
        return os.path.relpath(path, ROOT)
    return arg


def _pg(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(statement)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the chosen cases and print one JSON line per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*cases(), "all"], default="all")
    parser.add_argument(
        "--backend", choices=["sqlite", "postgres", "parse-only", "all"], default="all"
    )
    parser.add_argument("--rows", type=int, default=SYNTHETIC_ROWS, help="synthetic file rows")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case")
    args = parser.parse_args(argv)
    results = []
    for name, (path, fmt) in cases().items():
        if args.case not in ("all", name):
            continue
        if name == "synthetic-10m":
            ensure_synthetic(path, args.rows)
        if not path.exists():
            print(f"skipping {name}: {path} not found", file=sys.stderr)
            continue
        for backend in ("parse-only", "sqlite", "postgres"):
            if args.backend not in ("all", backend):
                continue
            for _ in range(args.repeat):
                result = run_case(name, path, fmt, backend)
                print(json.dumps(result), flush=True)
                results.append(result)
    return results


if __name__ == "__main__":
    main()
