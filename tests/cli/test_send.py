"""`penchant send`: the CLI as an API client, using the data directory's admin key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from penchant.cli import app
from penchant.store import open_store
from penchant.testing.server import free_port, start_server

runner = CliRunner()


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=env)


def one_line_error(result: Result, says: str) -> None:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert says in lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    data = tmp_path / "data"
    assert invoke("init", "--data-dir", data).exit_code == 0
    port = free_port()
    process = start_server(data, port, log=tmp_path / "server.log", timeout_s=30)
    try:
        yield data, f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def events_file(path: Path, n: int, bad_at: int | None = None) -> Path:
    lines = [
        {
            "event_id": f"e{i}",
            "user_id": f"u{i % 13}",
            "item_id": f"i{i % 7}",
            "type": "nope" if i == bad_at else "click",
        }
        for i in range(n)
    ]
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def count(data: Path) -> int:
    store = open_store(f"sqlite:///{data / 'penchant.db'}")
    try:
        return store.events.count("default")
    finally:
        store.close()


@pytest.mark.slow
def test_send_uses_the_admin_key_and_is_idempotent(
    server: tuple[Path, str], tmp_path: Path
) -> None:
    data, url = server
    file = events_file(tmp_path / "events.jsonl", 2_500)
    first = invoke("send", file, "--url", url, "--batch", "1000", "--data-dir", data, "--json")
    assert first.exit_code == 0, first.output
    assert orjson.loads(first.stdout) == {
        "sent": 2_500,
        "stored": 2_500,
        "duplicates": 0,
        "batches": 3,
    }
    again = invoke("send", file, "--url", url, "--data-dir", data, "--json")
    assert orjson.loads(again.stdout)["duplicates"] == 2_500
    assert count(data) == 2_500


@pytest.mark.slow
def test_send_reports_a_refused_batch_in_one_line(server: tuple[Path, str], tmp_path: Path) -> None:
    data, url = server
    file = events_file(tmp_path / "events.jsonl", 300, bad_at=250)
    result = invoke("send", file, "--url", url, "--batch", "100", "--data-dir", data)
    one_line_error(result, "events[50].type")
    assert count(data) == 200  # the two batches before the bad one stay stored
    wrong = invoke("send", file, "--url", url, "--key", "pk_nope_nope", "--data-dir", data)
    one_line_error(wrong, "HTTP 401")


def test_send_without_a_key_or_a_server_fails_in_one_line(tmp_path: Path) -> None:
    file = events_file(tmp_path / "events.jsonl", 3)
    one_line_error(
        invoke("send", file, "--data-dir", tmp_path / "none", env={"PENCHANT_API_KEY": ""}),
        "run `penchant init`",
    )
    port = free_port()
    one_line_error(
        invoke(
            "send",
            file,
            "--url",
            f"http://127.0.0.1:{port}",
            "--key",
            "pk_a_b",
            "--data-dir",
            tmp_path,
        ),
        "cannot reach the server",
    )
