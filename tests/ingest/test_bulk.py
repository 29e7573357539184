"""Bulk import of event files: rejects, idempotency, resume, mapping and timestamp units."""

from __future__ import annotations

import dataclasses
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from penchant.errors import InvalidInput
from penchant.ingest.bulk import EventSpec, ImportReport, import_events, plan_columns
from penchant.ingest.columns import TimestampUnit
from penchant.ingest.readers import read_chunks
from penchant.ingest.source import SourceFormat
from penchant.schema import Event, EventVocabulary
from penchant.store import Ack, EventStore, Store

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
VOCABULARY = EventVocabulary()

# Rows 3, 4, 5, 6, 7, 8 and 10 are bad, each for its own reason; row 9 is an empty line.
BAD_CSV = f"""user_id,item_id,type,value,timestamp
u1,i1,view,,{T0}
u2,i2,rating,4.5,{T0 + 1}
u3,i3,rating,,{T0 + 2}
,i4,view,,{T0 + 3}
u5,i5,bogus,,{T0 + 4}
u6,i6,dwell,-3,{T0 + 5}
u7,i7,click,,yesterday
u8,i8,click

u10,i10,click,abc,{T0 + 10}
u11,i11,click,,{T0 + 11}
u12,i12,dwell,12.5,{T0 + 12}
"""
EXPECTED_REASONS = {
    3: ["a rating event needs value (the rating)"],
    4: ["needs a user_id or a session_id"],
    5: ["unknown event type (see events.custom_types in penchant.toml)"],
    6: ["dwell value must be >= 0 seconds"],
    7: ["timestamp not parseable as unix seconds or ISO-8601"],
    8: ["expected 5 columns, found 3"],
    9: ["needs a user_id or a session_id", "type missing", "timestamp missing"],
    10: ["value is not a number"],
}


def run(
    store: Store,
    path: Path,
    spec: EventSpec | None = None,
    *,
    chunk_rows: int = 4,
    vocabulary: EventVocabulary = VOCABULARY,
    events: EventStore | None = None,
) -> ImportReport:
    return import_events(
        events or store.events,
        "default",
        path,
        spec or EventSpec(SourceFormat("csv")),
        vocabulary=vocabulary,
        rejects=path.with_name(path.name + ".rejects.jsonl"),
        chunk_rows=chunk_rows,
    )


def stored(store: Store, tenant: str = "default") -> list[Event]:
    return [e for batch in store.events.scan(tenant) for e in batch]


def rejects(report: ImportReport) -> dict[int, dict[str, Any]]:
    assert report.rejects_path is not None
    lines = Path(report.rejects_path).read_bytes().splitlines()
    return {r["row"]: r for r in map(orjson.loads, lines)}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_rows_go_to_the_rejects_file_and_the_import_goes_on(
    store: Store, tmp_path: Path
) -> None:
    report = run(store, write(tmp_path, "events.csv", BAD_CSV))

    assert (report.rows_read, report.stored, report.rejected, report.duplicates) == (12, 4, 8, 0)
    found = rejects(report)
    assert {row: r["reasons"] for row, r in found.items()} == EXPECTED_REASONS
    assert found[10]["values"] == {
        "user_id": "u10",
        "item_id": "i10",
        "type": "click",
        "value": "abc",
        "timestamp": str(T0 + 10),
    }
    assert found[8]["values"] == {"line": "u8,i8,click"}
    events = stored(store)
    assert [e.user_id for e in events] == ["u1", "u2", "u11", "u12"]
    assert events[1].value == 4.5 and events[3].value == 12.5
    assert events[0].timestamp == datetime.fromtimestamp(T0, UTC)
    mode = stat.S_IMODE(os.stat(report.rejects_path or "").st_mode)
    assert mode == 0o600


def test_reimporting_the_same_file_stores_nothing_new(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "events.csv", BAD_CSV)
    first = run(store, path)
    second = run(store, path)

    assert second.stored == 0
    assert second.duplicates == first.stored
    assert second.chunks == first.chunks == 3
    assert second.skipped_chunks == 2  # the second chunk holds rejected rows only
    assert second.rejected == first.rejected
    assert store.events.count("default") == first.stored


class _Crashing:
    """An event store that fails on its n-th write, as if the process died there."""

    def __init__(self, inner: EventStore, fail_at: int) -> None:
        self.inner = inner
        self.calls = 0
        self.fail_at = fail_at

    def append_table(self, tenant: str, table: pa.Table, *, batch_key: str | None = None) -> Ack:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("power cut")
        return self.inner.append_table(tenant, table, batch_key=batch_key)


def test_a_broken_off_import_resumes_where_it_stopped(store: Store, tmp_path: Path) -> None:
    rows = "\n".join(f"u{i},i{i % 7},view,{T0 + i}" for i in range(50))
    path = write(tmp_path, "events.csv", "user_id,item_id,type,timestamp\n" + rows + "\n")
    crashing = _Crashing(store.events, fail_at=4)
    with pytest.raises(RuntimeError, match="power cut"):
        run(store, path, chunk_rows=10, events=crashing)  # type: ignore[arg-type]
    assert store.events.count("default") == 30

    resumed = run(store, path, chunk_rows=10)

    assert (resumed.skipped_chunks, resumed.stored, resumed.duplicates) == (3, 20, 30)
    assert sorted(int(e.user_id[1:]) for e in stored(store) if e.user_id) == list(range(50))


def test_rows_with_an_event_id_are_idempotent_one_by_one(store: Store, tmp_path: Path) -> None:
    header = "event_id,user_id,type,timestamp\n"
    first = write(tmp_path, "a.csv", header + "e1,u1,view,1700000000\ne2,u1,click,1700000001\n")
    # Another file (so other batch keys) that repeats e2 twice and adds e3.
    second = write(
        tmp_path, "b.csv", header + "e2,u1,click,1700000001\ne3,u2,view,1700000002\ne2,u1,x,\n"
    )
    run(store, first)
    report = run(store, second)

    assert (report.stored, report.duplicates, report.rejected) == (1, 1, 1)
    assert sorted(e.event_id or "" for e in stored(store)) == ["e1", "e2", "e3"]


def test_column_mapping_and_one_type_for_every_row(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "who,what,stars,when,type\nu1,i1,4,1700000000,view\n")
    spec = EventSpec(
        SourceFormat("csv"),
        mapping={"who": "user_id", "what": "item_id", "stars": "value", "when": "timestamp"},
        event_type="rating",
    )
    report = run(store, path, spec)

    assert report.stored == 1
    (event,) = stored(store)
    assert (event.user_id, event.item_id, event.type, event.value) == ("u1", "i1", "rating", 4.0)


@pytest.mark.parametrize(
    ("unit", "value", "micros"),
    [
        ("s", "1700000000", 0),
        ("s", "1700000000.25", 250_000),
        ("ms", "1700000000250", 250_000),
        ("us", "1700000000250001", 250_001),
        ("iso", "2023-11-14T22:13:20.25Z", 250_000),
        ("iso", "2023-11-14T23:13:20.25+01:00", 250_000),
        ("iso", "2023-11-14 22:13:20", 0),
        ("iso", "2023-11-14T22:13:20", 0),
        ("auto", "1700000000.25", 250_000),
        ("auto", "2023-11-14T22:13:20.000001Z", 1),
    ],
)
def test_timestamp_units(
    store: Store, tmp_path: Path, unit: TimestampUnit, value: str, micros: int
) -> None:
    path = write(tmp_path, "t.csv", f"user_id,type,timestamp\nu1,view,{value}\n")
    run(store, path, EventSpec(SourceFormat("csv"), timestamp_unit=unit))

    (event,) = stored(store)
    assert event.timestamp == datetime(2023, 11, 14, 22, 13, 20, micros, tzinfo=UTC)


def test_mixed_timestamp_forms_in_one_chunk(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        "user_id,type,timestamp\nu1,view,1700000000\nu2,view,2023-11-14T22:13:20Z\n"
        "u3,view, 1700000000 \n",
    )
    report = run(store, path)

    assert report.stored == 3
    assert {e.timestamp for e in stored(store)} == {datetime.fromtimestamp(T0, UTC)}


def test_a_wrong_unit_is_rejected_with_a_hint(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "user_id,type,timestamp\nu1,view,1700000000250\n")
    report = run(store, path, EventSpec(SourceFormat("csv"), timestamp_unit="s"))

    assert report.rejected == 1
    assert rejects(report)[1]["reasons"] == [
        "timestamp outside 1970..2200 (check --timestamp-unit)"
    ]


def test_without_a_timestamp_column_events_get_the_import_time(
    store: Store, tmp_path: Path
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    run(store, write(tmp_path, "n.csv", "session_id,type\ns1,view\n"))

    (event,) = stored(store)
    assert event.session_id == "s1" and event.user_id is None
    assert before <= event.timestamp <= datetime.now(UTC)


def test_ids_are_checked_like_the_schema(store: Store, tmp_path: Path) -> None:
    long_id = "x" * 257
    path = write(
        tmp_path,
        "ids.csv",
        f'user_id,item_id,type,timestamp\n{long_id},i1,view,{T0}\n"u\x01",i1,view,{T0}\n'
        f"{'y' * 256},i1,view,{T0}\n",
    )
    report = run(store, path)

    assert report.stored == 1
    assert [r["reasons"] for r in rejects(report).values()] == [
        ["user_id longer than 256 characters"],
        ["user_id has control characters"],
    ]


def test_custom_event_types_come_from_the_vocabulary(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", f"user_id,type,timestamp\nu1,quiz_answer,{T0}\n")
    assert run(store, path).rejected == 1
    path = write(tmp_path, "c2.csv", f"user_id,type,timestamp\nu1,quiz_answer,{T0}\n")
    assert run(store, path, vocabulary=EventVocabulary(["quiz_answer"])).stored == 1


def test_jsonl_with_bad_lines_and_mixed_types(store: Store, tmp_path: Path) -> None:
    lines = [
        {"user_id": 1, "item_id": "i1", "type": "view", "timestamp": T0},
        {"user_id": "u2", "item_id": 7, "type": "rating", "value": 3, "timestamp": T0 + 1},
        "this is not json",
        {"user_id": "u4", "type": "view", "timestamp": "2023-11-14T22:13:24Z"},
        ["not", "an", "object"],
        {"user_id": "u6", "type": "rating", "timestamp": T0 + 6},
    ]
    text = "\n".join(x if isinstance(x, str) else orjson.dumps(x).decode() for x in lines)
    report = run(
        store,
        write(tmp_path, "e.jsonl", text + "\n"),
        EventSpec(SourceFormat("jsonl")),
        chunk_rows=100,
    )

    assert (report.stored, report.rejected) == (3, 3)
    found = rejects(report)
    assert sorted(found) == [3, 5, 6]
    assert found[5]["reasons"] == ["not a JSON object"]
    assert found[6]["reasons"] == ["a rating event needs value (the rating)"]
    events = stored(store)
    assert [(e.user_id, e.item_id, e.value) for e in events] == [
        ("1", "i1", None),
        ("u2", "7", 3.0),
        ("u4", None, None),
    ]


def test_clean_jsonl_takes_the_columnar_path(store: Store, tmp_path: Path) -> None:
    rows = [{"user_id": f"u{i}", "type": "view", "timestamp": T0 + i} for i in range(20)]
    path = write(tmp_path, "e.jsonl", "\n".join(orjson.dumps(r).decode() for r in rows))
    report = run(store, path, EventSpec(SourceFormat("jsonl")), chunk_rows=8)

    assert (report.stored, report.chunks, report.rejected) == (20, 3, 0)


def test_parquet_with_typed_columns(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    table = pa.table(
        {
            "user": pa.array([1, 2, None], pa.int64()),
            "item_id": ["i1", "i2", "i3"],
            "type": ["rating", "rating", "view"],
            "value": pa.array([4.0, None, None]),
            "timestamp": pa.array(
                [datetime(2023, 1, 1, tzinfo=UTC)] * 3, pa.timestamp("ms", tz="UTC")
            ),
        }
    )
    pq.write_table(table, path)
    spec = EventSpec(SourceFormat("parquet"), mapping={"user": "user_id"})
    report = run(store, path, spec, chunk_rows=2)

    assert (report.stored, report.rejected) == (1, 2)
    assert {r: v["reasons"] for r, v in rejects(report).items()} == {
        2: ["a rating event needs value (the rating)"],
        3: ["needs a user_id or a session_id"],
    }
    (event,) = stored(store)
    assert event.user_id == "1" and event.timestamp == datetime(2023, 1, 1, tzinfo=UTC)


def test_tenants_are_kept_apart(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "e.csv", f"user_id,type,timestamp\nu1,view,{T0}\n")
    spec = EventSpec(SourceFormat("csv"))
    import_events(store.events, "shop-a", path, spec, vocabulary=VOCABULARY, rejects=tmp_path / "r")
    report = import_events(
        store.events, "shop-b", path, spec, vocabulary=VOCABULARY, rejects=tmp_path / "r"
    )

    assert report.stored == 1  # the same file is new to another tenant
    assert len(stored(store, "shop-a")) == len(stored(store, "shop-b")) == 1


@pytest.mark.parametrize(
    ("columns", "spec", "message"),
    [
        (["item_id", "type"], EventSpec(SourceFormat("csv")), "no user_id or session_id"),
        (["user_id"], EventSpec(SourceFormat("csv")), "no type column"),
        (["u", "type"], EventSpec(SourceFormat("csv"), mapping={"u": "user"}), "field must be"),
        (["type"], EventSpec(SourceFormat("csv"), mapping={"x": "user_id"}), "no column 'x'"),
        (["user_id"], EventSpec(SourceFormat("csv"), event_type="nope"), "not a known"),
    ],
)
def test_a_file_that_cannot_be_imported_fails_before_reading(
    columns: list[str], spec: EventSpec, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        plan_columns(columns, spec, VOCABULARY)


def test_a_missing_file_is_invalid_input(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        run(store, tmp_path / "absent.csv")


def test_chunks_have_exact_sizes_whatever_the_parser_blocks(tmp_path: Path) -> None:
    lines = "".join(f"u{i},view\n" for i in range(1000))
    path = write(tmp_path, "e.csv", "user_id,type\n" + lines)
    sizes = [
        t.num_rows
        for t, _ in read_chunks(path, SourceFormat("csv"), ["user_id"], 300, lambda *a: None)
    ]
    assert sizes == [300, 300, 300, 100]


def test_report_adds_up(store: Store, tmp_path: Path) -> None:
    report = run(store, write(tmp_path, "events.csv", BAD_CSV))
    counts = dataclasses.asdict(report)
    assert counts["rows_read"] == counts["stored"] + counts["duplicates"] + counts["rejected"]
    assert report.events_per_second > 0


def test_a_row_with_bytes_that_are_not_utf8_is_rejected_alone(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(
        b"\xef\xbb\xbfuser_id,type,timestamp\r\nu1,view,1700000000\r\n\xff\xfe,view,1\r\n"
        b"u3,view,1700000003\r\n"
    )
    report = run(store, path)

    assert (report.stored, report.rejected) == (2, 1)
    (reject,) = rejects(report).values()
    assert reject["row"] == 2
    assert reject["reasons"] == ["not valid UTF-8; pass the file's encoding with --encoding"]
    assert [e.user_id for e in stored(store)] == ["u1", "u3"]


def test_other_encodings(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes("user_id,type,timestamp\nJosé,view,1700000000\n".encode("latin-1"))
    run(store, path, EventSpec(SourceFormat("csv", encoding="latin-1")))

    assert [e.user_id for e in stored(store)] == ["José"]


def test_contexts_are_checked_and_stored_like_the_api_stores_them(
    store: Store, tmp_path: Path
) -> None:
    lines = [
        {"user_id": "u1", "type": "impression", "timestamp": T0,
         "context": {"request_id": "r1", "position": 2, "attributes": {}}},
        {"user_id": "u2", "type": "click", "timestamp": T0,
         "context": {"request_id": "r1", "propensity": 1.5}},
        {"user_id": "u3", "type": "click", "timestamp": T0, "context": {"colour": "red"}},
        {"user_id": "u4", "type": "click", "timestamp": T0},
    ]  # fmt: skip
    path = write(tmp_path, "e.jsonl", "\n".join(orjson.dumps(x).decode() for x in lines))
    report = run(store, path, EventSpec(SourceFormat("jsonl")), chunk_rows=100)

    assert (report.stored, report.rejected) == (2, 2)
    reasons = {row: r["reasons"] for row, r in rejects(report).items()}
    assert reasons[2] == ["context.propensity: Input should be less than or equal to 1"]
    assert reasons[3] == ["context.colour: Extra inputs are not permitted"]
    first, last = stored(store)
    assert first.context is not None
    assert (first.context.request_id, first.context.position) == ("r1", 2)
    assert last.context is None


def test_context_as_json_text_in_csv(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "e.csv",
        'user_id,type,timestamp,context\nu1,view,1700000000,"{""surface"": ""home""}"\n'
        "u2,view,1700000000,not json\n",
    )
    report = run(store, path)

    assert (report.stored, report.rejected) == (1, 1)
    (event,) = stored(store)
    assert event.context is not None and event.context.surface == "home"
    assert rejects(report)[2]["reasons"][0].startswith("context: Invalid JSON")
