"""Loading an hour of meter readings with quarantine, by partition swap.

Each UTC day of `raw.meter_readings` is partitioned by hour. A load COPYs the delivery
into a fresh table, moves every row that breaks a rule to `raw.meter_readings_rejected`
(with the rule and its values), builds the unique index, and swaps the table in as the
hour's partition: one transaction, so a failure anywhere leaves the hour as it was, and
a rerun replaces the hour without deleting a row. Writing a plain table and indexing it
afterwards is what keeps the load near raw COPY speed: inserting into the live
(meter_id, ts) index row by row costs three times as much.

A delivery whose values do not even parse (the typed COPY rejects the whole stream) is
fetched again onto a slow path that stages each line as text, so the malformed lines
are quarantined one by one and the good lines of the hour still load. The slow path
reads each line's fields exactly as COPY's CSV format does (quoted fields, "" within
quotes, commas within quotes), so a line loads the same on either path, whatever else
the delivery holds.

Line breaks inside a quoted field are not taken (the head-end CSV has none): lines are
judged one by one, on both paths (a typed COPY that reads fewer rows than the delivery
has lines falls back to the slow path), so the lines such a field spans are
malformed_row, and a stray quote costs its own line only.
"""

import contextlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO

import psycopg2
import sqlalchemy as sa
from psycopg2 import errors, sql
from urllib3.exceptions import MaxRetryError, ProtocolError
from urllib3.util.retry import Retry

from resources.copy_loader import ensure_day_partitions, read_csv_header
from resources.http import BodyBrokenError, SourceError
from resources.sql_files import statements
from resources.telemetry_api import READING_COLUMNS

TYPES = {
    "ts": "timestamptz", "interval_s": "integer", "energy_kwh": "double precision",
    "active_power_kw": "double precision", "reactive_power_kvar": "double precision",
    "voltage_v": "double precision", "current_a": "double precision",
    "power_factor": "double precision", "frequency_hz": "double precision",
}


@dataclass(frozen=True)
class ReadingRules:
    """The bounds a reading must respect to load."""

    voltage_min_v: float = 80.0
    voltage_max_v: float = 600.0
    future_tolerance_s: int = 300


@dataclass
class HourLoad:
    received: int = 0
    loaded: int = 0
    replaced: bool = False
    rejected: dict[str, int] = field(default_factory=dict)
    slow_path: bool = False
    # Seconds per phase (copy, rules, check, key, swap): where an hour's load time goes.
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def partition_name(hour: datetime) -> str:
    return f"meter_readings_{hour:%Y%m%d_%H}"


def load_hour(
    engine: sa.Engine,
    open_body: Callable[[], contextlib.AbstractContextManager[BinaryIO]],
    hour: datetime,
    rules: ReadingRules,
    body_retry: Retry | None = None,
) -> HourLoad:
    """Replace the hour starting at `hour` with the delivery `open_body()` yields. A body
    that breaks off mid-stream is fetched again from the start under `body_retry`."""
    end = hour + timedelta(hours=1)
    q = statements("meter_readings_load.sql")
    ensure_day_partitions(engine, "raw.meter_readings", hour, end)
    load_name = f"meter_readings_load_{secrets.token_hex(6)}"
    names = {
        "load": sql.Identifier("raw", load_name),
        "index": sql.Identifier(f"{load_name}_pkey"),
        "check": sql.Identifier(f"{load_name}_window"),
        "partition": sql.Identifier("raw", partition_name(hour)),
        "partition_name": sql.Identifier(partition_name(hour)),
        "day": sql.Identifier("raw", f"meter_readings_{hour:%Y%m%d}"),
    }
    statement = lambda name, **extra: sql.SQL(q[name]).format(**names, **extra)  # noqa: E731
    params = {"start": hour, "end": end, **rules.__dict__}
    result = HourLoad()
    connection = engine.raw_connection()
    try:
        with connection.cursor() as cur:
            cur.execute("set local timezone = 'UTC'")
            # Sorting a million rows for the index is several times faster in memory.
            cur.execute("set local maintenance_work_mem = '1GB'")
            cur.execute("set local work_mem = '256MB'")
            cur.execute(q["lock_hour"], params)
            cur.execute("select exists (select 1 from raw.meters where active)")
            if not cur.fetchone()[0]:
                raise SourceError("the meter registry is empty: materialise raw/meters before loading readings")
            cur.execute(q["clear_rejected"], params)
            cur.execute("savepoint staged")
            phase = time.perf_counter()
            try:
                result.received = _copy_whole_body(cur, statement, names, open_body, body_retry)
            except (psycopg2.DataError, RecordSpansLines):
                cur.execute("rollback to savepoint staged")
                cur.execute(statement("new_table"))
                result.slow_path = True
                with open_body() as body:
                    columns = read_csv_header(body, READING_COLUMNS)
                    result.received, malformed = _stage_line_by_line(cur, q, names, body, columns, params)
                result.rejected.update(malformed)

            phase = _lap(result, "copy", phase)
            cur.execute(q["verdicts"])
            cur.execute(statement("judge_rules"), params)
            _move_rejected(cur, statement, params, result)
            phase = _lap(result, "rules", phase)
            # Every row left has its values: NOT NULL again, proven by the window check (one scan).
            cur.execute(statement("not_null_and_window"), params)
            phase = _lap(result, "check", phase)
            cur.execute("savepoint quarantined")
            try:
                cur.execute(statement("unique_index"))
            except errors.UniqueViolation:
                # Rare: repeated keys in the delivery. Quarantine the later copies, then key.
                cur.execute("rollback to savepoint quarantined")
                cur.execute(statement("judge_duplicates"))
                _move_rejected(cur, statement, params, result)
                cur.execute(statement("unique_index"))
            phase = _lap(result, "key", phase)
            cur.execute(statement("count_loaded"))
            result.loaded = cur.fetchone()[0]
            cur.execute("select to_regclass(%s) is not null", (f"raw.{partition_name(hour)}",))
            result.replaced = cur.fetchone()[0]
            # Brief: dropping the old hour locks its day until commit, nothing slow follows.
            cur.execute("set local lock_timeout = '60s'")
            cur.execute(statement("swap"), params)
        connection.commit()
        _lap(result, "swap", phase)
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()
    return result


def _lap(result: HourLoad, name: str, since: float) -> float:
    now = time.perf_counter()
    result.seconds[name] = now - since
    return now


class RecordSpansLines(Exception):
    """The typed COPY read fewer rows than the body has lines: a quoted line break made
    one record of two lines, or a line `\\.` ended the data early (COPY stops there
    without a word). The slow path judges each line on its own, as it must for the two
    paths to agree."""


class _CountingLines:
    """A body read through, counting its lines (the last may lack its newline)."""

    def __init__(self, body: BinaryIO):
        self.body, self.newlines, self.last = body, 0, b"\n"

    def read(self, size: int = -1) -> bytes:
        chunk = self.body.read(size)
        if chunk:
            self.newlines += chunk.count(b"\n")
            self.last = chunk[-1:]
        return chunk

    @property
    def lines(self) -> int:
        return self.newlines + (self.last != b"\n")


def _copy_whole_body(cur, statement, names: dict, open_body, body_retry: Retry | None) -> int:
    """COPY the delivery into a fresh load table; returns the rows received.

    The table is created in this subtransaction, so COPY can FREEZE: rows land already
    frozen, and no later scan or vacuum has to rewrite every page for them. A body that
    breaks off leaves part of the hour in the table: roll back to the savepoint and
    fetch it whole again, as long as the retry policy allows. Fewer rows than lines
    raise RecordSpansLines.
    """
    while True:
        cur.execute(statement("new_table"))
        try:
            with open_body() as body:
                columns = read_csv_header(body, READING_COLUMNS)
                counted = _CountingLines(body)
                cur.copy_expert(_copy(columns, names["load"], freeze=True).as_string(cur), counted, size=1 << 20)
            if cur.rowcount != counted.lines:
                raise RecordSpansLines(f"COPY read {cur.rowcount} rows from {counted.lines} lines")
            return cur.rowcount
        except BodyBrokenError as exc:
            cur.execute("rollback to savepoint staged")
            if body_retry is None:
                raise
            try:
                body_retry = body_retry.increment(method="GET", url=exc.url, error=ProtocolError(str(exc)))
            except MaxRetryError:
                raise BodyBrokenError(f"{exc}; fetched {len(body_retry.history) + 1} times, it never arrived whole", url=exc.url) from exc
            body_retry.sleep()


def _move_rejected(cur, statement, params: dict, result: HourLoad) -> None:
    cur.execute(statement("move_rejected"), params)
    for reason, count in cur.fetchall():
        result.rejected[reason] = result.rejected.get(reason, 0) + count
    cur.execute(statement("clear_verdicts"))


def _copy(columns: Sequence[str], table: sql.Identifier, freeze: bool = False) -> sql.Composed:
    return sql.SQL("copy {table} ({columns}) from stdin with (format csv{freeze})").format(
        table=table, columns=sql.SQL(", ").join(map(sql.Identifier, columns)), freeze=sql.SQL(", freeze" if freeze else "")
    )


class _LinesAsCopyText:
    """The body's lines as rows of COPY's text format: each line, escaped, as the first
    field, whole and as delivered, whatever bytes it holds (a quote, a tab, a backslash,
    a lone carriage return, a `\\.`), less its line ending (LF or CRLF); and whether it
    held bytes no text column can: invalid UTF-8 or a NUL. Such a line lands with those
    bytes written out (`\\xNN`) and is quarantined as `invalid_bytes`, so one bad byte
    costs its line and not the hour. Streams in chunks of whole lines: memory is bound
    by the chunk and the longest line, and for a clean chunk the work is a UTF-8 check
    and a few bytes.replace."""

    def __init__(self, body: BinaryIO, size: int = 1 << 20):
        self.body, self.size, self.carry = body, size, b""

    def read(self, size: int = -1) -> bytes:
        while True:
            chunk = self.body.read(self.size)
            if not chunk:
                # The last line, if the body does not end with a line break.
                tail, self.carry = self.carry, b""
                return self._rows(tail + b"\n") if tail else b""
            data = self.carry + chunk
            end = data.rfind(b"\n") + 1
            data, self.carry = data[:end], data[end:]
            if data:
                return self._rows(data.replace(b"\r\n", b"\n"))

    @classmethod
    def _rows(cls, lines: bytes) -> bytes:
        if b"\x00" not in lines and _is_utf8(lines):
            return cls._escaped(lines).replace(b"\n", b"\tf\n")
        return b"".join(cls._row(line) for line in lines[:-1].split(b"\n"))

    @classmethod
    def _row(cls, line: bytes) -> bytes:
        if b"\x00" not in line and _is_utf8(line):
            return cls._escaped(line) + b"\tf\n"
        written = line.decode("utf-8", "backslashreplace").replace("\x00", "\\x00").encode()
        return cls._escaped(written) + b"\tt\n"

    @staticmethod
    def _escaped(data: bytes) -> bytes:
        return data.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\r", b"\\r")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _stage_line_by_line(cur, q: dict, names: dict, body: BinaryIO, columns: Sequence[str], params: dict) -> tuple[int, dict[str, int]]:
    """Stage each line as text, split it as COPY's CSV format would (lines_checked),
    quarantine the lines that do not parse with their reason and line number, and
    insert the rest, typed, into the load table."""
    cur.execute(q["stage_lines"])
    cur.copy_expert("copy _stage_lines (body, invalid_bytes) from stdin", _LinesAsCopyText(body), size=1 << 20)
    received = cur.rowcount
    # fields[i] is null for an empty unquoted field, as COPY reads it (a quoted "" is '').
    position = {name: sql.SQL("fields[{}]").format(sql.Literal(i + 1)) for i, name in enumerate(columns)}
    # A line that does not split (its quotes do not close) is stored as its pieces.
    delivered = {name: sql.SQL("coalesce(fields[{0}], pieces[{0}])").format(sql.Literal(i + 1)) for i, name in enumerate(columns)}
    value_checks = sql.SQL(" and ").join(
        sql.SQL("({value} is null or raw.valid_input({value}, {type}))").format(value=position[name], type=sql.Literal(kind))
        for name, kind in TYPES.items()
    )
    raw_fields = sql.SQL(", ").join(delivered[name] for name in READING_COLUMNS)
    typed_fields = sql.SQL(", ").join(
        sql.SQL("{}::{}").format(position[name], sql.SQL(TYPES[name])) if name in TYPES else position[name]
        for name in READING_COLUMNS
    )
    cur.execute(sql.SQL(q["lines_checked"]).format(value_checks=value_checks), {"width": len(columns)})
    cur.execute(sql.SQL(q["lines_rejected"]).format(raw_fields=raw_fields), params)
    cur.execute(sql.SQL(q["lines_staged"]).format(typed_fields=typed_fields, **names))
    cur.execute(q["lines_malformed"])
    return received, dict(cur.fetchall())
