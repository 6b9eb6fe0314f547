"""Great Expectations suites for the raw tables, run inside PostgreSQL for Dagster asset checks.

Each raw table has a suite, written as code below (one function per table, the
window-dependent thresholds passed in). `validate()` runs a suite on one window of its
table, e.g. the hour a `raw.meter_readings` partition holds, and returns a
`SuiteOutcome` that an asset turns into an `AssetCheckResult`; for meter readings the
check is blocking, so dbt never builds on a window that failed.

How a validation runs, and why:

- In the database. The GX data source is PostgreSQL (`add_postgres`) on the warehouse
  URL, Unix-socket URLs included: the URL goes in through GX's config substitution
  (`${...}` with a runtime environment), because GX's own PostgreSQL URL check rejects
  a URL without a host name. Every expectation compiles to SQL; what comes back are
  counts and at most a few sample values, never the rows.
- On a table asset restricted by a row condition (`ts >= start and ts < end`), not on a
  query asset. GX learns a query asset's columns by running the query and fetching every
  row (1.8 M rows for an hour of readings: seconds and a gigabyte of Python tuples); a
  table's columns come from the catalogue. The window bounds are bound parameters,
  compared with literals by PostgreSQL, so only the window's partitions are read.
- With the table's schema as the connection's search path: GX 1.24 deprecates a table
  asset's schema_name in favour of the connection's own configuration.
- In two passes. The first pass counts (one scan of the window for all column rules,
  no sample queries); only the expectations that failed are run again to fetch up to
  five unexpected values, so a clean window costs one pass.
- With a fresh ephemeral GX context per validation. It costs ~20 ms against a second
  or more of SQL, and nothing is shared between threads or grows in a long-lived
  process (GX caches metrics per batch and keeps every asset added to a data source).

Rules that cannot fail on a window are left out: "ts is within the window" and "ts is
not null" hold by construction, as rows outside the window (or without a time) are not
in the batch.

Great Expectations takes seconds to import, so it is imported inside the functions that
need it: importing this module (and the asset modules that import it) stays cheap.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Empty currencies pass (GX skips nulls): a feed that names none is priced in its zone's.
from resources.price_api import CURRENCIES
from resources.readings_loader import ReadingRules

# The energy sources a meter may report: the grid and the sources of the emission-factor seed.
ENERGY_SOURCES = ("grid", "solar", "wind", "hydro", "natural_gas", "coal", "nuclear", "battery")
PRICE_RESOLUTIONS = ("5min", "1h")
CARBON_FACTOR_TYPES = ("lifecycle", "direct")

SAMPLE_SIZE = 5
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
# Rows fetched to find SAMPLE_SIZE distinct unexpected values: the first few bad rows
# often repeat one value.
SAMPLE_ROWS = 50


def _gx():
    import great_expectations

    return great_expectations


def _expect():
    import great_expectations.expectations

    return great_expectations.expectations


@dataclass(frozen=True)
class Suite:
    """The expectations one raw table's windows must meet.

    `expectations` are Great Expectations expectation objects without a row condition:
    `validate()` restricts each to the window on `time_column`.
    """

    name: str
    table: str
    time_column: str
    expectations: tuple[Any, ...]


@dataclass(frozen=True)
class Failure:
    """One expectation a window did not meet, in plain words and numbers."""

    expectation: str
    columns: tuple[str, ...]
    description: str
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    sample_values: tuple[Any, ...] = ()
    observed_value: Any = None


@dataclass(frozen=True)
class SuiteOutcome:
    """What a suite found in one window of its table."""

    suite: str
    table: str
    window_start: datetime
    window_end: datetime
    passed: bool
    failures: list[Failure] = field(default_factory=list)
    evaluated_expectations: int = 0
    successful_expectations: int = 0
    row_count: int | None = None
    seconds: float = 0.0

    @property
    def window(self) -> str:
        return f"{self.window_start.isoformat()} → {self.window_end.isoformat()}"

    def description(self) -> str:
        """One line for the check result."""
        where = f"{self.table} [{self.window}]"
        if self.passed:
            rows = f" on {self.row_count:,} rows" if self.row_count is not None else ""
            return f"{where}: all {self.evaluated_expectations} expectations met{rows}."
        failed = "; ".join(f.description for f in self.failures)
        return f"{where}: {len(self.failures)} of {self.evaluated_expectations} expectations failed: {failed}"

    def metadata(self) -> dict[str, Any]:
        """Metadata for `AssetCheckResult(metadata=...)`: plain values, and the failing
        expectations as a Markdown table under `failures` (a `MetadataValue.md`)."""
        metadata: dict[str, Any] = {
            "table": self.table,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "evaluated_expectations": self.evaluated_expectations,
            "successful_expectations": self.successful_expectations,
            "failed_expectations": len(self.failures),
            "validation_seconds": round(self.seconds, 3),
        }
        if self.row_count is not None:
            metadata["row_count"] = self.row_count
        if self.failures:
            from dagster import MetadataValue

            metadata["failures"] = MetadataValue.md(failures_markdown(self.failures))
        return metadata

    def check_result(self, **kwargs: Any):
        """This outcome as a `dagster.AssetCheckResult`; kwargs (check_name, asset_key,
        severity, ...) are passed through."""
        from dagster import AssetCheckResult

        return AssetCheckResult(passed=self.passed, metadata=self.metadata(), description=self.description(), **kwargs)


def failures_markdown(failures: list[Failure]) -> str:
    def cell(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| expectation | columns | unexpected | % | sample values | observed | what it means |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for f in failures:
        percent = None if f.unexpected_percent is None else f"{f.unexpected_percent:.3g}"
        lines.append(
            "| " + " | ".join(cell(v) for v in (
                f.expectation, ", ".join(f.columns), f.unexpected_count, percent,
                ", ".join(_show(v) for v in f.sample_values), f.observed_value, f.description,
            )) + " |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------
# Suites, one per raw table. Adding a rule is adding one line.


def meter_readings_suite(
    min_rows: int,
    *,
    voltage_v: tuple[float, float] = (ReadingRules.voltage_min_v, ReadingRules.voltage_max_v),
    energy_sources: tuple[str, ...] = ENERGY_SOURCES,
    unique_key: bool = True,
) -> Suite:
    """`raw.meter_readings`. The loader quarantines bad rows already, so the failure to
    expect is completeness: `min_rows` is what the active meters should have delivered in
    the window times a completeness threshold, and a head-end outage that delivers half an
    hour fails it. The rest is defence in depth. The voltage band defaults to the loader's.

    `unique_key=False` drops the (meter_id, ts) check, which the primary key already
    enforces on the real table and which is by far the costliest rule: GX counts
    duplicates with a GROUP BY joined back to the window. On 1.8 M rows (an hour of 30,000
    one-minute meters, 2 cores) the suite takes ~1.1 s without it and 4.5-7.5 s with it."""
    x = _expect()
    expectations = [
        x.ExpectTableRowCountToBeBetween(min_value=min_rows),
        x.ExpectColumnValuesToNotBeNull(column="meter_id"),
        x.ExpectColumnValuesToNotBeNull(column="facility_id"),
        x.ExpectColumnValuesToNotBeNull(column="energy_kwh"),
        x.ExpectColumnValuesToBeBetween(column="energy_kwh", min_value=0),
        x.ExpectColumnValuesToBeBetween(column="power_factor", min_value=0, max_value=1),
        x.ExpectColumnValuesToBeBetween(column="voltage_v", min_value=voltage_v[0], max_value=voltage_v[1]),
        x.ExpectColumnValuesToBeInSet(column="energy_source", value_set=list(energy_sources)),
    ]
    if unique_key:
        expectations.append(x.ExpectCompoundColumnsToBeUnique(column_list=["meter_id", "ts"]))
    return Suite("meter_readings", "raw.meter_readings", "ts", tuple(expectations))


def weather_hourly_suite(min_rows: int) -> Suite:
    """`raw.weather_hourly`: physically plausible values, one row per facility and hour."""
    x = _expect()
    return Suite("weather_hourly", "raw.weather_hourly", "time", (
        x.ExpectTableRowCountToBeBetween(min_value=min_rows),
        x.ExpectColumnValuesToBeBetween(column="temperature_c", min_value=-80, max_value=60),
        x.ExpectColumnValuesToBeBetween(column="relative_humidity_pct", min_value=0, max_value=100),
        x.ExpectColumnValuesToBeBetween(column="cloud_cover_pct", min_value=0, max_value=100),
        x.ExpectColumnValuesToBeBetween(column="shortwave_radiation_w_m2", min_value=0, max_value=1500),
        x.ExpectColumnValuesToBeBetween(column="wind_speed_kmh", min_value=0, max_value=400, strict_max=True),
        x.ExpectCompoundColumnsToBeUnique(column_list=["facility_id", "time"]),
    ))


def grid_prices_suite(min_rows: int, *, currencies: tuple[str, ...] = CURRENCIES) -> Suite:
    """`raw.grid_prices`. Negative prices are real (surplus renewables), hence the floor
    of -1000 per MWh; the cap is above any market's price ceiling seen so far."""
    x = _expect()
    return Suite("grid_prices", "raw.grid_prices", "interval_start", (
        x.ExpectTableRowCountToBeBetween(min_value=min_rows),
        x.ExpectColumnValuesToBeBetween(column="price_per_mwh", min_value=-1000, max_value=20000),
        x.ExpectColumnValuesToBeInSet(column="currency", value_set=list(currencies)),
        x.ExpectColumnValuesToBeInSet(column="resolution", value_set=list(PRICE_RESOLUTIONS)),
        x.ExpectColumnPairValuesAToBeGreaterThanB(column_A="interval_end", column_B="interval_start"),
        x.ExpectCompoundColumnsToBeUnique(column_list=["zone", "source", "resolution", "interval_start"]),
    ))


def grid_carbon_intensity_suite(min_rows: int) -> Suite:
    """`raw.grid_carbon_intensity`: lignite, the dirtiest source, is ~1,100 g/kWh over its
    life cycle, so 2,000 is a generous ceiling."""
    x = _expect()
    return Suite("grid_carbon_intensity", "raw.grid_carbon_intensity", "hour_start", (
        x.ExpectTableRowCountToBeBetween(min_value=min_rows),
        x.ExpectColumnValuesToBeBetween(column="carbon_intensity_g_per_kwh", min_value=0, max_value=2000),
        x.ExpectColumnValuesToBeInSet(column="factor_type", value_set=list(CARBON_FACTOR_TYPES)),
        x.ExpectCompoundColumnsToBeUnique(column_list=["zone", "factor_type", "hour_start"]),
    ))


# ---------------------------------------------------------------------------------
# The runner.


def validate(
    database_url: str,
    suite: Suite,
    window_start: datetime,
    window_end: datetime,
    *,
    table: str | None = None,
) -> SuiteOutcome:
    """Run `suite` on the rows of its table whose time column is in [window_start, window_end).

    `database_url` is a SQLAlchemy or libpq PostgreSQL URL (`Database.sqlalchemy_url`).
    `table` ("schema.name") validates another table with the same columns instead of
    `suite.table`, e.g. a load table before it is swapped in.
    """
    if window_start.tzinfo is None or window_end.tzinfo is None:
        # A naive bound would be read in the session's time zone, silently shifting the window.
        raise ValueError("window_start and window_end must be timezone-aware")
    if not window_start < window_end:
        raise ValueError(f"empty window: {window_start} → {window_end}")
    schema, name = (table or suite.table).split(".")
    if not (_IDENTIFIER.match(schema) and _IDENTIFIER.match(name)):
        raise ValueError(f"not a plain schema.table name: {table or suite.table!r}")
    started = time.perf_counter()

    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.row_conditions import Column

    context = gx.get_context(mode="ephemeral", runtime_environment={"wattline_database_url": database_url})
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    # The schema goes in the search path (GX has deprecated a table asset's schema_name),
    # after any server options the URL already sets.
    options = " ".join(filter(None, [_url_options(database_url), f"-c search_path={schema}"]))
    source = context.data_sources.add_postgres(
        "warehouse", connection_string="${wattline_database_url}", kwargs={"connect_args": {"options": options}}
    )
    try:
        batch = source.add_table_asset(name, table_name=name).add_batch_definition_whole_table("window").get_batch()
        in_window = (Column(suite.time_column) >= window_start) & (Column(suite.time_column) < window_end)
        expectations = [e.copy(update={"row_condition": in_window}) for e in suite.expectations]

        # GX returns results in an order of its own, so they are matched to expectations
        # by configuration, never by position.
        counted = {_key(r.expectation_config): r for r in _run(gx, batch, suite.name, expectations, samples=0).results}
        again = [r.expectation_config.to_domain_obj() for r in counted.values() if not r.success and _has_samples(r)]
        if again:
            counted |= {_key(r.expectation_config): r for r in _run(gx, batch, suite.name, again, samples=SAMPLE_ROWS).results}
    finally:
        source.get_engine().dispose()
        source.get_execution_engine().engine.dispose()

    results = [counted[_key(e.configuration)] for e in expectations]
    failures = [_failure(r, f"{schema}.{name}") for r in results if not r.success]
    return SuiteOutcome(
        suite=suite.name,
        table=f"{schema}.{name}",
        window_start=window_start,
        window_end=window_end,
        passed=not failures,
        failures=failures,
        evaluated_expectations=len(results),
        successful_expectations=len(results) - len(failures),
        row_count=_row_count(results),
        seconds=time.perf_counter() - started,
    )


def _url_options(database_url: str) -> str | None:
    import sqlalchemy

    options = sqlalchemy.engine.make_url(database_url).query.get("options")
    return options[-1] if isinstance(options, tuple) else options


def _run(gx, batch, name: str, expectations: list, samples: int):
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    return batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": samples})


def _key(config) -> tuple[str, str]:
    return config.type, repr(sorted((k, repr(v)) for k, v in config.kwargs.items() if k != "batch_id"))


def _has_samples(result) -> bool:
    return bool(result.result.get("unexpected_count"))


def _row_count(results) -> int | None:
    for r in results:
        if r.expectation_config.type == "expect_table_row_count_to_be_between" and isinstance(r.result.get("observed_value"), int):
            return r.result["observed_value"]
    counts = [r.result["element_count"] for r in results if isinstance(r.result.get("element_count"), int)]
    return max(counts) if counts else None


def _failure(result, table: str) -> Failure:
    config = result.expectation_config
    kwargs = config.kwargs
    kind = config.type
    columns = tuple(
        c for c in ([kwargs.get("column")] + list(kwargs.get("column_list") or []) + [kwargs.get("column_A"), kwargs.get("column_B")]) if c
    )
    rule = _rule(kind, kwargs, columns, table)
    error = _error(result)
    if error is not None:
        return Failure(kind, columns, f"{rule}: could not be checked ({error})")

    r = result.result
    samples = tuple(dict.fromkeys(_plain(v) for v in r.get("partial_unexpected_list") or []))[:SAMPLE_SIZE]
    count, total, observed = r.get("unexpected_count"), r.get("element_count"), r.get("observed_value")
    if count is not None:
        finding = f"{count:,} of {total:,} rows are not" if total is not None else f"{count:,} rows are not"
        if kind == "expect_compound_columns_to_be_unique":
            finding = f"{count:,} of {total:,} rows share their key with another row"
        elif kind == "expect_column_values_to_not_be_null":
            finding = f"{count:,} of {total:,} rows are null"
        if samples and kind != "expect_column_values_to_not_be_null":
            finding += ", e.g. " + ", ".join(_show(v) for v in samples)
    else:
        finding = f"it has {observed:,}" if isinstance(observed, int) else f"observed {observed!r}"
    return Failure(
        expectation=kind,
        columns=columns,
        description=f"{rule}: {finding}",
        unexpected_count=count,
        unexpected_percent=r.get("unexpected_percent"),
        sample_values=samples,
        observed_value=_plain(observed),
    )


def _error(result) -> str | None:
    """The first error GX met evaluating an expectation (e.g. a missing column), if any.
    GX reports it flat or, per metric, one level down."""
    info = result.exception_info or {}
    for entry in [info, *(v for v in info.values() if isinstance(v, dict))]:
        if entry.get("raised_exception"):
            lines = (entry.get("exception_message") or "error").strip().splitlines()
            return lines[0] if lines else "error"
    return None


def _rule(kind: str, kw: dict, columns: tuple[str, ...], table: str) -> str:
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if kind == "expect_table_row_count_to_be_between":
        return f"{table} must have {_range_words(lo, hi, kw)} rows in the window".replace("  ", " ")
    if kind == "expect_column_values_to_be_between":
        return f"{columns[0]} must be {_range_words(lo, hi, kw)}"
    if kind == "expect_column_values_to_not_be_null":
        return f"{columns[0]} must not be null"
    if kind == "expect_column_values_to_be_in_set":
        return f"{columns[0]} must be one of {', '.join(map(str, kw['value_set']))}"
    if kind == "expect_compound_columns_to_be_unique":
        return f"({', '.join(columns)}) must be unique"
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        relation = "at least" if kw.get("or_equal") else "greater than"
        return f"{kw['column_A']} must be {relation} {kw['column_B']}"
    shown = {k: v for k, v in kw.items() if k not in ("row_condition", "condition_parser", "batch_id")}
    return f"{kind}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def _range_words(lo, hi, kw: dict) -> str:
    if lo is not None and hi is not None and not kw.get("strict_min") and not kw.get("strict_max"):
        return f"between {_bound(lo)} and {_bound(hi)}"
    parts = []
    if lo is not None:
        parts.append(f"above {_bound(lo)}" if kw.get("strict_min") else f"at least {_bound(lo)}")
    if hi is not None:
        parts.append(f"below {_bound(hi)}" if kw.get("strict_max") else f"at most {_bound(hi)}")
    return " and ".join(parts)


def _bound(value: Any) -> str:
    # GX stores bounds as floats; a rule reads better as "between 0 and 1".
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _show(value)


def _plain(value: Any) -> Any:
    """A value as metadata can hold it: datetimes as ISO text, keys as tuples."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return tuple(_plain(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) >= 1e6 else repr(round(value, 6))
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return str(value)
