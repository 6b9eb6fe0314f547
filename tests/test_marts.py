"""The marts as a user checks them: a rollup of 10-second readings by hand, partition runs
that equal a full refresh, every column documented, the docs site builds, and the
hand-checked dbt unit tests pass."""

import base64
import json
import logging
import math
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance, materialize

from assets.budget_burndown import BURN_DOWN, PLOTTED_HOUR
from assets.carbon import grid_carbon_intensity
from assets.dbt_models import dbt_derived_models, dbt_incremental_models, dbt_models
from assets.prices import grid_prices
from assets.telemetry import meter_readings
from assets.weather import weather_hourly
from orchestration.runs import hourly_range_tags
from resources.dbt import dbt_cli
from resources.postgres import PostgresResource
from simulator.config import SimulatorConfig
from simulator.server import SimulatorServer
from tests.conftest import load_registry, own_warehouse, source_resources
from tests.support import load

SEED, FACILITIES = 11, 3  # test_telemetry_load's world: the same registry
DAY = datetime(2026, 2, 10, tzinfo=UTC)  # a day no other module loads
WINDOW = (DAY + timedelta(hours=6), DAY + timedelta(hours=12))

# Time-partitioned tables, keyed for comparison, and the tables rebuilt whole.
INCREMENTAL = {
    "intermediate.int_meter_load_15min": ("meter_id", "interval_start"),
    "intermediate.int_facility_energy_hourly": ("facility_id", "hour_start", "energy_source"),
    "marts.fct_load_15min": ("facility_id", "interval_start"),
    "marts.fct_load_hourly": ("facility_id", "hour_start"),
    "marts.fct_emissions_hourly": ("facility_id", "hour_start", "energy_source"),
    "marts.fct_energy_cost_hourly": ("facility_id", "hour_start"),
    "marts.fct_facility_utilization_15min": ("facility_id", "interval_start"),
}
DAILY = "marts.fct_load_daily"


@pytest.fixture(scope="module")
def world(warehouse, dbt_manifest):
    """Six hours of the simulator's fleet with its weather, prices and carbon, loaded
    through the source assets."""
    config = SimulatorConfig(seed=SEED, facilities=FACILITIES, interval_s=60, now=lambda: DAY + timedelta(days=2))
    with SimulatorServer(config) as server:
        load_registry(warehouse, server.url)
        resources = {**source_resources(warehouse, server.url, max_retries=0), "dbt": dbt_cli()}
        assert materialize([meter_readings], resources=resources, tags=hourly_range_tags(*WINDOW)).success
        assert materialize(
            [weather_hourly, grid_prices, grid_carbon_intensity], resources=resources, partition_key=f"{DAY:%Y-%m-%d}"
        ).success
        assert materialize([dbt_models], resources=resources).success
        yield resources


def snapshot(engine) -> dict[str, list[tuple]]:
    """Every row of the window in the time-partitioned marts, and the world's rows of the rest."""
    tables = {}
    with engine.connect() as conn:
        for table, key in INCREMENTAL.items():
            time_column = key[1]
            tables[table] = list(conn.execute(sa.text(
                f"select * from {table} where {time_column} >= :s and {time_column} < :e order by {', '.join(key)}"
            ), {"s": WINDOW[0], "e": WINDOW[1]}).all())
        tables[DAILY] = list(conn.execute(sa.text(
            f"select * from {DAILY} where day_end > :s and day_start < :e order by facility_id, local_date"
        ), {"s": WINDOW[0], "e": WINDOW[1]}).all())
        # Other modules share the database: the world's facilities only.
        facilities = [f"FAC-{i + 1:04d}" for i in range(FACILITIES)]
        for (table,) in conn.execute(sa.text(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema = 'marts' order by 1"
        )):
            if table not in INCREMENTAL and table != DAILY:
                tables[table] = list(conn.execute(sa.text(
                    f"select * from {table} where facility_id = any(:f) order by 1, 2"
                ), {"f": facilities}).all())
    return tables


def same_rows(left: list[tuple], right: list[tuple]) -> bool:
    """Equal row by row; doubles to 1e-9 relative, as sums in another order differ in the last bits."""
    def same(a, b):
        if isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
        return a == b

    return len(left) == len(right) and all(
        len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True)) for a, b in zip(left, right, strict=True)
    )


def test_partition_runs_equal_a_full_refresh(engine, world):
    def hour(h):
        return DAY + timedelta(hours=h)
    # A backfill of two hours, the hours after it, then one of the first hours again (as
    # the settlement schedule does); the whole-table marts after the last run, as the
    # automation builds them.
    burn_downs = []
    with DagsterInstance.ephemeral() as instance:
        for start, end, derived in [(6, 8, False), (8, 12, True), (7, 8, True)]:
            assets = [dbt_incremental_models, dbt_derived_models] if derived else [dbt_incremental_models]
            result = materialize(assets, resources=world, instance=instance, tags=hourly_range_tags(hour(start), hour(end)))
            assert result.success
            if derived:
                (event,) = [m for m in result.asset_materializations_for_node("dbt_derived_models") if m.asset_key == BURN_DOWN]
                burn_downs.append(event.metadata)
    # The burn-down plot, drawn once an hour: the second rebuild in the same hour points at the first.
    first, second = burn_downs
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", first["burn_down"].value).group(1))
    assert png.startswith(b"\x89PNG") and len(png) > 2_000
    if second[PLOTTED_HOUR].value == first[PLOTTED_HOUR].value:
        assert second["burn_down"].value == f"Plotted at {first[PLOTTED_HOUR].value}: see that materialisation."
    else:
        # The clock passed the hour between the two runs: drawn again.
        assert "data:image/png;base64," in second["burn_down"].value
    incremental = snapshot(engine)
    assert len(incremental["marts.fct_load_15min"]) == FACILITIES * 6 * 4
    assert len(incremental["marts.fct_load_hourly"]) == FACILITIES * 6
    assert incremental["marts.fct_emissions_hourly"] and incremental["marts.fct_energy_cost_hourly"]

    dbt_cli().cli(["build", "--full-refresh", "--select", "config.materialized:incremental+"]).wait()
    full = snapshot(engine)
    assert full.keys() == incremental.keys()
    for table in full:
        assert same_rows(full[table], incremental[table]), table


def test_the_marts_use_the_feeds_of_their_hours(engine, world):
    with engine.connect() as conn:
        sources = dict(conn.execute(sa.text(
            "select location_factor_basis, count(*) from marts.fct_emissions_hourly "
            "where energy_source = 'grid' and hour_start >= :s and hour_start < :e group by 1"
        ), {"s": WINDOW[0], "e": WINDOW[1]}).all())
        prices = dict(conn.execute(sa.text(
            "select price_source, count(*) from marts.fct_energy_cost_hourly "
            "where hour_start >= :s and hour_start < :e group by 1"
        ), {"s": WINDOW[0], "e": WINDOW[1]}).all())
    # Every grid hour found its zone's hourly intensity and a price: no silent fallback.
    assert sources == {"grid_hourly": FACILITIES * 6}
    assert set(prices) <= {"real_time", "day_ahead"} and sum(prices.values()) == FACILITIES * 6


def test_a_quarter_hour_of_10_second_readings_rolls_up_as_by_hand(engine, world):
    start = datetime(2026, 2, 11, 8, tzinfo=UTC)

    def reading(meter, second, kw, source):
        ts = start + timedelta(seconds=second)
        return [ts.strftime("%Y-%m-%dT%H:%M:%SZ"), meter, "R10", 10, kw * 10 / 3600, kw, 1.0, 230.0, 10.0, 0.95, 50.0, source]

    # M1 draws 36 kW from the grid all quarter; the solar meter M2 gives 18 kW for 5 minutes.
    rows = [reading("R10-M1", s, 36.0, "grid") for s in range(0, 900, 10)]
    rows += [reading("R10-M2", s, 18.0, "solar") for s in range(0, 300, 10)]
    load(engine, rows, start)
    assert materialize([dbt_incremental_models], resources=world, tags=hourly_range_tags(start, start + timedelta(hours=1))).success

    with engine.connect() as conn:
        quarter = conn.execute(sa.text(
            "select energy_kwh, grid_energy_kwh, onsite_energy_kwh, avg_kw, min_kw, max_kw, reading_count, "
            "data_completeness from marts.fct_load_15min where facility_id = 'R10'"
        )).one()
        hour = conn.execute(sa.text(
            "select energy_kwh, avg_kw, peak_15min_kw, data_completeness from marts.fct_load_hourly where facility_id = 'R10'"
        )).one()
    # 90 × 0.1 kWh + 30 × 0.05 kWh; demand 54 kW while both run, 36 kW after. M2 went
    # silent after 5 minutes: the average is each meter over the time it covered (36 + 18
    # kW), and completeness shows the 10 minutes M2 is missing.
    assert quarter == pytest.approx((10.5, 9.0, 1.5, 54.0, 36.0, 54.0, 120, (900 + 300) / (2 * 900)))
    assert hour == pytest.approx((10.5, 54.0, 54.0, 1200 / (2 * 3600)))


def test_every_mart_and_column_is_described(engine, world, dbt_manifest):
    manifest = json.loads(dbt_manifest.read_text())
    marts = {
        node["name"]: node for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("schema") == "marts"
    }
    with engine.connect() as conn:
        built = {}
        for table, column in conn.execute(sa.text(
            "select table_name, column_name from information_schema.columns where table_schema = 'marts'"
        )):
            built.setdefault(table, set()).add(column)
    assert set(marts) >= {"dim_facility", "dim_meter", "fct_load_15min", "fct_load_hourly", "fct_load_daily",
                          "fct_emissions_hourly", "fct_energy_cost_hourly", "fct_carbon_budget_status",
                          "fct_facility_utilization_15min"}
    undocumented = []
    for name, node in marts.items():
        if not node["description"].strip():
            undocumented.append(name)
        described = {c for c, meta in node["columns"].items() if meta["description"].strip()}
        # Columns the yml documents must be the columns the table has, and vice versa.
        assert name in built, f"marts.{name} was not built"
        undocumented += [f"{name}.{column}" for column in sorted(built[name] - described)]
        assert not described - built[name], f"{name} documents columns it does not have: {described - built[name]}"
    assert undocumented == []


def test_the_docs_site_generates(world, tmp_path):
    dbt_cli().cli(["docs", "generate"], target_path=tmp_path).wait()
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    documented = {node["metadata"]["name"] for node in catalog["nodes"].values() if node["metadata"]["schema"] == "marts"}
    assert {"fct_load_15min", "fct_carbon_budget_status", "dim_facility"} <= documented


def test_the_hand_checked_unit_tests_pass(pg_server, dbt_manifest, tmp_path, monkeypatch):
    # dbt reads the column types of a unit test's inputs from the warehouse: every model is
    # built first, over an empty warehouse of the test's own, so that the test needs no
    # other module to have built them. (`--empty` cannot: it breaks `{{ ref() }} as alias`.)
    with own_warehouse(pg_server, "wattline_unit") as (database, _):
        for name, value in database.dbt_env().items():
            monkeypatch.setenv(name, value)
        dbt_cli().cli(
            ["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"], target_path=tmp_path / "empty"
        ).wait()
        invocation = dbt_cli().cli(["test", "--select", "test_type:unit"], target_path=tmp_path, raise_on_error=False)
        invocation.wait()
    results = json.loads((tmp_path / "run_results.json").read_text())["results"]
    outcome = {r["unique_id"].split(".")[-1]: r["status"] for r in results}
    assert {
        "fct_load_15min_sums_meters_per_quarter_hour",
        "fct_load_daily_uses_the_local_day_and_its_dst_length",
        "fct_load_hourly_averages_the_open_hour_over_its_time",
        "fct_carbon_budget_status_projects_the_unmeasured_period",
        "stg_grid_prices_currency_from_the_feed_or_the_zone",
        "fct_energy_cost_hourly_never_guesses_a_currency",
        "fct_meter_anomalies_supply_is_not_load",
        "fct_emissions_hourly_factors_by_source_and_hour",
        "fct_energy_cost_hourly_prefers_real_time_then_day_ahead",
        "fct_carbon_budget_status_at_the_thresholds",
        "fct_facility_utilization_15min_bands_at_their_edges",
    } <= set(outcome)
    assert {name: status for name, status in outcome.items() if status != "pass"} == {}


def test_a_new_warehouse_builds_the_budget_marts_whatever_the_plot_reads(pg_server, dbt_manifest, monkeypatch):
    """The first incremental_marts_job on a new warehouse failed when dbt built
    fct_carbon_budget_daily before fct_carbon_budget_status: its burn-down plot read the
    status mart (`relation "marts.fct_carbon_budget_status" does not exist`). And a plot
    that cannot be drawn never fails its table's materialisation."""
    with own_warehouse(pg_server, "wattline_burn") as (database, fresh):
        # The postgres resource points dbt at its warehouse through these variables.
        for name, value in database.dbt_env().items():
            monkeypatch.setenv(name, value)
        resources = {"postgres": PostgresResource(url=database.url), "dbt": dbt_cli()}
        window = hourly_range_tags(DAY, DAY + timedelta(hours=1))
        with DagsterInstance.ephemeral() as instance:
            assert materialize([dbt_models], resources=resources, instance=instance).success
            assert materialize([dbt_incremental_models], resources=resources, instance=instance, tags=window).success

            # The whole-table marts as the job builds them after the hours: the table waits
            # for the status mart it plots, so the plot is drawn.
            assert AssetKey(["marts", "fct_carbon_budget_status"]) in dbt_derived_models.asset_deps[BURN_DOWN]
            job = materialize([dbt_derived_models], resources=resources, instance=instance)
            assert job.success
            (event,) = [m for m in job.asset_materializations_for_node("dbt_derived_models") if m.asset_key == BURN_DOWN]
            assert not event.metadata["burn_down"].value.startswith("Not drawn"), event.metadata["burn_down"].value
            assert PLOTTED_HOUR in event.metadata

        # A status mart from before its thresholds columns (an upgrade that rebuilt the
        # budget table alone), on an instance with no plot this hour: the table reads none
        # of those columns and is materialised; the plot, which draws the thresholds, is
        # skipped with the reason, and the next materialisation tries again.
        with fresh.begin() as conn:
            conn.execute(sa.text("alter table marts.fct_carbon_budget_status drop column critical_pct cascade"))
        with DagsterInstance.ephemeral() as instance:
            alone = materialize([dbt_derived_models], selection=[BURN_DOWN], resources=resources, instance=instance)
            assert alone.success
            (event,) = alone.asset_materializations_for_node("dbt_derived_models")
            assert event.asset_key == BURN_DOWN
            assert event.metadata["burn_down"].value.startswith("Not drawn: UndefinedColumn"), event.metadata["burn_down"].value
            assert PLOTTED_HOUR not in event.metadata
            warnings = [e.user_message for e in instance.all_logs(alone.run_id) if e.level == logging.WARNING]
            assert any("burn-down plot was not drawn" in message for message in warnings), warnings
