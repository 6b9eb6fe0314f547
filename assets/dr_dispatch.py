"""Dispatch: a planned demand-response event's actions sent to each facility's
building-management system when the plan begins (`ops.dr_dispatches`)."""

from collections import defaultdict

from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.demand_response import DR_ASSET, PLAN, SQL, fetch_event
from orchestration.partitions import dr_event_version
from resources.bms import BmsResource, DispatchError
from resources.http import safe_url
from resources.postgres import PostgresResource
from resources.sql_files import statements

DISPATCHES = AssetKey(["ops", "dr_dispatches"])


@asset(
    key=DISPATCHES,
    deps=[PLAN],
    **DR_ASSET,
)
def dr_dispatch(context: AssetExecutionContext, postgres: PostgresResource, bms: BmsResource):
    """Sends each facility's reduction plan to its building-management system, one JSON
    POST per facility (`dispatch_id` `<event>@<version>/<facility>`, also the
    Idempotency-Key, so a retry changes nothing): every action's interval, end use and
    kW, with the pre-cooling before the event and the rebound the plan expects after it.
    Requested by `dr_lifecycle_sensor` when the plan's first interval (pre-cooling
    included) is about to begin; an event that ends before then fails there instead.
    Every attempt is recorded in `ops.dr_dispatches`; once every facility has accepted,
    the event is `active`. Only the event's latest version is dispatched. With no BMS configured
    (`WATTLINE_BMS_URL`), the event goes `active` for the operator to carry out by hand.
    """
    sql = statements(SQL)
    event_id, version = dr_event_version(context.partition_key)
    url = bms.resolved_url()
    shown_url = safe_url(url) if url else None  # what rows and metadata may show: no credentials
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        event = fetch_event(cur, sql, event_id, version)
        cur.execute(sql["latest_version"], {"event_id": event_id})
        latest, _ = cur.fetchone()
        cur.execute(sql["plan_commands"], {"event_id": event_id, "version": version})
        steps = cur.fetchall()

    if latest != version:
        raise Failure(f"DR event {event_id} version {version} was revised (version {latest}): only the latest version is dispatched")
    if event["status"] not in ("planned", "active"):
        raise Failure(f"DR event {event_id} version {version} is {event['status']}, not planned: nothing to dispatch")
    by_facility: dict[str, list[dict]] = defaultdict(list)
    for facility_id, action_id, end_use, phase, start, end, kw in steps:
        by_facility[facility_id].append({
            "action_id": action_id, "end_use": end_use, "phase": phase,
            "start": start.isoformat(), "end": end.isoformat(), "kw": round(kw, 3),
        })
    outcomes, failures = [], []
    for facility_id in event["facility_ids"]:
        commands = by_facility.get(facility_id, [])
        dispatch_id = f"{event_id}@{version}/{facility_id}"
        shed_kwh = sum(max(c["kw"], 0.0) for c in commands if c["phase"] == "event") * 0.25
        if url is None:
            status, answer = "not_configured", "no BMS configured (WATTLINE_BMS_URL): the operator carries the plan out"
        else:
            try:
                answer = str(bms.dispatch({
                    "dispatch_id": dispatch_id, "event_id": event_id, "version": version,
                    "facility_id": facility_id, "commands": commands,
                }))[:1000]
                status = "accepted"
            except DispatchError as error:
                status, answer = "failed", str(error)[:1000]
                failures.append(f"{facility_id}: {error}")
        with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
            cur.execute(sql["record_dispatch"], {
                "dispatch_id": dispatch_id, "event_id": event_id, "version": version, "facility_id": facility_id,
                "bms_url": shown_url, "commands": len(commands), "shed_kwh": round(shed_kwh, 3), "status": status, "answer": answer,
            })
        outcomes.append((facility_id, len(commands), shed_kwh, status))
        context.log.info(f"{dispatch_id}: {status}, {len(commands)} commands, {shed_kwh:.1f} kWh to shed")

    if failures:
        raise Failure(
            f"DR event {event_id} version {version}: the BMS did not accept {len(failures)} of "
            f"{len(outcomes)} dispatches; re-execute this run to send them again (accepted ones change nothing)",
            metadata={"failures": MetadataValue.md("\n".join(f"- {f}" for f in failures))},
        )
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql["set_status"], {
            "event_id": event_id, "version": version, "status": "active", "from_states": ["planned"],
            "reason": None if url else "no BMS configured: the plan is the operator's to carry out",
        })
    return MaterializeResult(
        metadata={
            "event_id": event_id,
            "version": version,
            "bms_url": shown_url or "not configured",
            "dispatches": MetadataValue.md(
                "| facility | commands | kWh to shed | status |\n| --- | ---: | ---: | --- |\n"
                + "\n".join(f"| {f} | {n} | {kwh:.1f} | {s} |" for f, n, kwh, s in outcomes)
            ),
        }
    )
