"""The Wattline code location: every asset, job, resource and sensor, in one place."""

from dagster import Definitions, in_process_executor

from assets import carbon, dbt_models, demand_response, dr_dispatch, forecasting, prices, registry, telemetry, weather
from assets.source_checks import SOURCE_CHECKS
from orchestration import jobs, retention
from orchestration.automation import SCHEDULES
from orchestration.conditions import wattline_automation
from orchestration.freshness import with_freshness_policies
from orchestration.settings import get_settings
from resources.bms import BmsResource
from resources.carbon_api import CarbonApiResource
from resources.dbt import dbt_cli
from resources.postgres import PostgresResource
from resources.price_api import PriceApiResource
from resources.telemetry_api import TelemetryApiResource
from resources.weather_api import WeatherApiResource
from sensors.alert_conditions import alert_conditions_sensor
from sensors.dr_lifecycle import dr_lifecycle_sensor
from sensors.dr_sensor import dr_events_sensor
from sensors.notifications import notifications_sensor
from sensors.run_alerts import run_failure_alerts, run_success_resolves_alerts

# Every feed client waits and retries as the operator configured (WATTLINE_HTTP_*).
_feeds = {"read_timeout_s": get_settings().http_timeout_s, "max_retries": get_settings().http_retries}

defs = Definitions(
    assets=with_freshness_policies([
        registry.facilities,
        registry.meters,
        telemetry.meter_readings,
        weather.weather_hourly,
        prices.grid_prices,
        carbon.grid_carbon_intensity,
        dbt_models.dbt_incremental_models,
        dbt_models.dbt_models,
        dbt_models.dbt_derived_models,
        forecasting.load_forecast,
        demand_response.dr_events_inbox,
        demand_response.dr_events_current,
        demand_response.dr_baseline,
        demand_response.dr_reduction_plan,
        dr_dispatch.dr_dispatch,
    ]),
    asset_checks=SOURCE_CHECKS,
    schedules=[*SCHEDULES, retention.daily_retention],
    sensors=[
        wattline_automation,
        dr_events_sensor,
        dr_lifecycle_sensor,
        alert_conditions_sensor,
        run_failure_alerts,
        run_success_resolves_alerts,
        notifications_sensor,
    ],
    jobs=[
        jobs.registry_job,
        jobs.telemetry_job,
        jobs.grid_and_weather_job,
        jobs.weather_and_carbon_job,
        jobs.prices_job,
        jobs.incremental_marts_job,
        jobs.unpartitioned_models_job,
        jobs.load_forecast_job,
        jobs.dr_plan_job,
        jobs.dr_dispatch_job,
        retention.retention_job,
    ],
    # Every run is one process. Dagster's default executor starts one more per step, each
    # importing the code location again (4-10 s of CPU on two cores) for steps that mostly
    # wait on PostgreSQL or a dbt subprocess: on a busy machine that, not the work, was what
    # kept DR plans and the marts behind (issue 18, defect 19).
    executor=in_process_executor,
    resources={
        "postgres": PostgresResource(),
        "telemetry_api": TelemetryApiResource(**_feeds),
        "weather_api": WeatherApiResource(**_feeds),
        "price_api": PriceApiResource(**_feeds, five_minute_currency=get_settings().price_feed_currency),
        "carbon_api": CarbonApiResource(**_feeds),
        "dbt": dbt_cli(),
        "bms": BmsResource(),
    },
)
