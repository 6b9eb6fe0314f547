"""Loading a window of meter readings with quarantine.

The delivery streams into a temporary stage with COPY, every row is checked against
the rules in SQL, rule breakers go to `raw.meter_readings_rejected` with the rule and
their values, and the rest replace the window in `raw.meter_readings`: one transaction,
so a failure anywhere leaves the window as it was.

A delivery whose values do not even parse (a typed COPY rejects the whole stream) is
fetched again onto a slow path that stages each line as text, so the malformed lines
are quarantined one by one and the good lines of the window still load.
"""

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

import psycopg2
import sqlalchemy as sa
from psycopg2 import sql

from resources.copy_loader import ensure_day_partitions, read_csv_header
from resources.http import SourceError
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
class WindowLoad:
    received: int = 0
    loaded: int = 0
    replaced: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    slow_path: bool = False

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def load_window(
    engine: sa.Engine,
    open_body: Callable[[], contextlib.AbstractContextManager[BinaryIO]],
    start: datetime,
    end: datetime,
    rules: ReadingRules,
) -> WindowLoad:
    """Replace [start, end) of raw.meter_readings with the delivery `open_body()` yields."""
    q = statements("meter_readings_load.sql")
    ensure_day_partitions(engine, "raw.meter_readings", start, end)
    params = {"start": start, "end": end, **rules.__dict__}
    result = WindowLoad()
    connection = engine.raw_connection()
    try:
        with connection.cursor() as cur:
            cur.execute("set local timezone = 'UTC'")
            # The classifying sort spans the whole window; in memory it is several times
            # faster than an external merge, and this transaction is the only big user.
            cur.execute("set local work_mem = '512MB'")
            cur.execute("select exists (select 1 from raw.meters where active)")
            if not cur.fetchone()[0]:
                raise SourceError("the meter registry is empty: materialise raw/meters before loading readings")
            cur.execute(q["clear_window"], params)
            result.replaced = cur.rowcount
            cur.execute(q["clear_rejected"], params)
            cur.execute(q["stage"])
            cur.execute("savepoint staged")
            try:
                with open_body() as body:
                    columns = read_csv_header(body, READING_COLUMNS)
                    cur.copy_expert(_copy(columns, "_stage").as_string(cur), body, size=1 << 20)
                result.received = cur.rowcount
            except psycopg2.DataError:
                cur.execute("rollback to savepoint staged")
                result.slow_path = True
                with open_body() as body:
                    columns = read_csv_header(body, READING_COLUMNS)
                    result.received, malformed = _stage_line_by_line(cur, q, body, columns, params)
                result.rejected.update(malformed)
            cur.execute(q["classify_and_load"], params)
            for outcome, count in cur.fetchall():
                if outcome == "loaded":
                    result.loaded = count
                else:
                    result.rejected[outcome] = result.rejected.get(outcome, 0) + count
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()
    return result


def _copy(columns: Sequence[str], table: str) -> sql.Composed:
    return sql.SQL("copy {table} ({columns}) from stdin with (format csv)").format(
        table=sql.Identifier(table), columns=sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def _stage_line_by_line(cur, q: dict, body: BinaryIO, columns: Sequence[str], params: dict) -> tuple[int, dict[str, int]]:
    cur.execute(q["stage_lines"])
    # Each line lands whole in one text field: the separators below never occur in CSV.
    cur.copy_expert("copy _stage_lines (body) from stdin with (format csv, delimiter E'\\x1f', quote E'\\x1e')", body, size=1 << 20)
    received = cur.rowcount
    position = {name: sql.SQL("nullif(fields[{}], '')").format(sql.Literal(i + 1)) for i, name in enumerate(columns)}
    value_checks = sql.SQL(" and ").join(
        sql.SQL("({value} is null or raw.valid_input({value}, {type}))").format(value=position[name], type=sql.Literal(kind))
        for name, kind in TYPES.items()
    )
    raw_fields = sql.SQL(", ").join(position[name] for name in READING_COLUMNS)
    typed_fields = sql.SQL(", ").join(
        sql.SQL("{}::{}").format(position[name], sql.SQL(TYPES[name])) if name in TYPES else position[name]
        for name in READING_COLUMNS
    )
    cur.execute(sql.SQL(q["lines_checked"]).format(value_checks=value_checks), {"width": len(columns)})
    cur.execute(sql.SQL(q["lines_rejected"]).format(raw_fields=raw_fields), params)
    cur.execute(sql.SQL(q["lines_staged"]).format(typed_fields=typed_fields))
    cur.execute(q["lines_malformed"])
    return received, dict(cur.fetchall())
