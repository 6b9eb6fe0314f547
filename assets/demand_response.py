"""Demand response: each event's baseline per facility and 15-minute interval, one
dynamic partition per event version (`<event id>@<version>`, added by the DR sensor)."""

from datetime import UTC, datetime, timedelta

from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from orchestration.partitions import dr_event_partitions
from resources.postgres import PostgresResource
from resources.python_marts import as_json, column_schema, create_tables
from resources.sql_files import statements

SQL = "dr_tables.sql"
BASELINE = AssetKey(["marts", "fct_dr_baseline"])
OWNERS = ["team:energy-data"]


@asset(
    key=BASELINE,
    deps=[
        # An event's baseline reads weeks of 15-minute load before it, whichever hours.
        AssetDep(AssetKey(["marts", "fct_load_15min"]), partition_mapping=AllPartitionMapping()),
        AssetKey(["marts", "fct_load_forecast"]),
        AssetKey(["marts", "dim_facility"]),
    ],
    partitions_def=dr_event_partitions,
    group_name="demand_response",
    kinds={"python", "postgres"},
    owners=OWNERS,
    check_specs=[
        AssetCheckSpec(
            "every_facility_has_a_baseline",
            asset=BASELINE,
            description="Fails when a facility of the event has neither a forecast nor an eligible day for its customer baseline: no plan can be made for it.",
        )
    ],
)
def dr_baseline(context: AssetExecutionContext, postgres: PostgresResource):
    """What each facility of a demand-response event would draw in each 15-minute
    interval of the event without it (`marts.fct_dr_baseline`).

    Two baselines side by side: the load forecast (`fct_load_forecast`, the hour's kW)
    and the CAISO-style 10-in-10 customer baseline (CBL): the same wall-clock intervals
    averaged over the 10 most recent eligible days of the same day type (not event
    days, complete), scaled by the day-of adjustment (actual over CBL from 4 h to 1 h
    before the event, clamped to 0.8–1.2). The plan works from the forecast where one
    covers the interval and from the adjusted CBL elsewhere; `baseline_source` says
    which. One partition per event version; a rerun replaces its rows.
    """
    import pandas as pd

    from assets.dr_baseline import BaselineRule, customer_baseline

    sql = statements(SQL)
    create_tables(postgres, sql["create_tables"])
    event_id, _, version = context.partition_key.partition("@")
    rule = BaselineRule()
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["event"], {"event_id": event_id, "version": version})
        event = cur.fetchone()
        if event is None:
            raise Failure(f"no DR event {event_id} version {version} in ops.dr_events")
        columns = [d.name for d in cur.description]
        event = dict(zip(columns, event, strict=True))
        facility_ids = list(event["facility_ids"])
        start, end = event["event_start"], event["event_end"]
        cur.execute(sql["facilities"], {"facility_ids": facility_ids})
        timezones = dict(cur.fetchall())
        cur.execute(sql["load_history"], {
            "facility_ids": facility_ids,
            "start": start - timedelta(days=rule.lookback_days + 1),
            "end": start,
        })
        history = pd.DataFrame(cur.fetchall(), columns=["facility_id", "interval_start", "avg_kw"])
        cur.execute(sql["other_event_starts"], {"facility_ids": facility_ids, "event_id": event_id, "before": start})
        other_events = cur.fetchall()
        forecast = {}
        cur.execute(sql["forecast_exists"])
        if cur.fetchone()[0]:
            cur.execute(sql["forecast"], {
                "facility_ids": facility_ids, "start": start.replace(minute=0, second=0, microsecond=0), "end": end,
            })
            forecast = {(f, t): kw for f, t, kw in cur.fetchall()}

    created_at = datetime.now(UTC)
    rows, missing, summary = [], [], []
    for facility_id in facility_ids:
        timezone = timezones.get(facility_id)
        if timezone is None:
            missing.append(f"{facility_id}: not in marts.dim_facility")
            continue
        event_days = {
            pd.Timestamp(s).tz_convert(timezone).date() for f, s in other_events if f == facility_id
        }
        load = history[history.facility_id == facility_id].set_index("interval_start").avg_kw
        cbl = customer_baseline(load, start, end, timezone, event_days, rule)
        slots = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"), freq="15min", inclusive="left")
        cbl_by_slot = {} if cbl is None else {row.interval_start: row for row in cbl.intervals.itertuples()}
        facility_rows = []
        for slot in slots:
            hour = slot.floor("h").to_pydatetime()
            forecast_kw = forecast.get((facility_id, hour))
            cbl_row = cbl_by_slot.get(slot)
            if forecast_kw is None and cbl_row is None:
                continue
            facility_rows.append({
                "event_id": event_id,
                "version": version,
                "facility_id": facility_id,
                "interval_start": slot.to_pydatetime(),
                "interval_end": (slot + pd.Timedelta(minutes=15)).to_pydatetime(),
                "forecast_kw": forecast_kw,
                "cbl_kw": None if cbl_row is None else round(float(cbl_row.cbl_kw), 4),
                "adjusted_cbl_kw": None if cbl_row is None else round(float(cbl_row.adjusted_kw), 4),
                "cbl_days": None if cbl is None else len(cbl.days_used),
                "adjustment_ratio": None if cbl is None else round(cbl.ratio, 4),
                "baseline_kw": round(float(forecast_kw if forecast_kw is not None else cbl_row.adjusted_kw), 4),
                "baseline_source": "forecast" if forecast_kw is not None else "cbl",
                "created_at": created_at,
            })
        if len(facility_rows) < len(slots):
            missing.append(
                f"{facility_id}: {len(slots) - len(facility_rows)} of {len(slots)} intervals have neither a forecast "
                f"nor an eligible CBL day in the {rule.lookback_days} days before"
            )
        rows += facility_rows
        summary.append(
            f"| {facility_id} | {sum(r['baseline_source'] == 'forecast' for r in facility_rows)} / {len(slots)} | "
            f"{'–' if cbl is None else len(cbl.days_used)} | {'–' if cbl is None else f'{cbl.ratio:.3f}'} | "
            f"{(cbl.note if cbl is not None and cbl.note else '')} |"
        )

    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["replace_baseline"], {"event_id": event_id, "version": version, "rows": as_json(rows)})
        schema = column_schema(cur, "marts.fct_dr_baseline")
    for problem in missing:
        context.log.error(problem)
    yield MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "dagster/column_schema": schema,
            "event_id": event_id,
            "version": version,
            "event_start": MetadataValue.timestamp(start),
            "event_end": MetadataValue.timestamp(end),
            "facilities": len(facility_ids),
            "facilities_without_baseline": len(missing),
            "baselines": MetadataValue.md(
                "| facility | intervals from the forecast | CBL days | day-of ratio | note |\n| --- | ---: | ---: | ---: | --- |\n"
                + "\n".join(summary)
            ),
        }
    )
    yield AssetCheckResult(
        check_name="every_facility_has_a_baseline",
        passed=not missing,
        severity=AssetCheckSeverity.ERROR,
        description="Every facility of the event has a baseline for every interval." if not missing else "; ".join(missing[:10]),
        metadata={"facilities_without_baseline": len(missing)},
    )
