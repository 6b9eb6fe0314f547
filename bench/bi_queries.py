"""Dashboard queries on the marts, run as the read-only `wattline_bi` role.

Fills a fresh database the real way: the simulator (a separate process on loopback,
meters reporting every --interval-s) and the code location's jobs, as `wattline demo`
runs them: the registry, telemetry one run per day, weather, prices and carbon one run
per day, then the dbt models. The role is bootstrapped before dbt runs, so the marts it
reads are tables dbt created after the grants (the default privileges at work).

Then times what a BI dashboard asks, each --repeats times with random facilities and
days, over one connection as `wattline_bi` (as a BI tool's pool holds one), after
--warmup untimed runs: (a) one facility-day at 15 minutes, (b) a month of daily totals
for every facility, (c) the carbon budgets' status on a day, (d) one facility's last 7
days of hourly emissions and cost. The limit measured in the same run is `select 1` on
the same connection: the round trip no query can beat. The goal is p95 ≤ 50 ms.

The dbt manifest is parsed for the benchmark's database into dbt_project/target/bench,
away from the platform's own.
"""

import argparse
import random
import secrets
import statistics
import sys
import time
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

from _report import report
from bench_support import fill, fleet_arguments, fresh_database, isolate, p95, simulator

GOAL_P95_MS = 50.0

QUERIES = {
    "facility_day_15min": """
        select facility_id, interval_start, energy_kwh, avg_kw, min_kw, max_kw, data_completeness
        from marts.fct_load_15min
        where facility_id = %(facility)s
          and interval_start >= %(day)s and interval_start < %(day)s + interval '1 day'
        order by interval_start
    """,
    "month_daily_totals": """
        select facility_id, local_date, energy_kwh, peak_15min_kw
        from marts.fct_load_daily
        where local_date >= %(first)s and local_date < %(first)s + %(days)s
        order by facility_id, local_date
    """,
    "carbon_budget_status": """
        select facility_id, budget_id, period_start, period_end, used_kg_co2e, budget_kg_co2e,
               pct_used, status, projected_end_kg_co2e
        from marts.fct_carbon_budget_status
        where %(day)s::date between period_start and period_end
        order by pct_used desc nulls last
    """,
    "facility_week_emissions_cost": """
        with emissions as (
            select hour_start, sum(location_kg_co2e) as location_kg_co2e
            from marts.fct_emissions_hourly
            where facility_id = %(facility)s
              and hour_start >= %(end)s - interval '7 days' and hour_start < %(end)s
            group by hour_start
        )
        select emissions.hour_start, emissions.location_kg_co2e, cost.energy_cost, cost.currency
        from emissions
        left join marts.fct_energy_cost_hourly cost
            on cost.facility_id = %(facility)s and cost.hour_start = emissions.hour_start
        order by emissions.hour_start
    """,
}
LABELS = {
    "facility_day_15min": "(a) one facility-day at 15 min",
    "month_daily_totals": "(b) a month of daily totals, all facilities",
    "carbon_budget_status": "(c) carbon budget status on a day",
    "facility_week_emissions_cost": "(d) one facility, 7 days of hourly emissions + cost",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fleet_arguments(parser, facilities=50, days=90)
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per query (at least 50 for the figures)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per query first")
    parser.add_argument("--seed", type=int, default=7, help="of the random facilities and days")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.days < 3:
        parser.error("--days must be at least 3: the queries read whole days inside the data")

    isolate()

    with simulator(args.facilities, args.interval_s) as url, fresh_database() as database:
        password = secrets.token_urlsafe(16)
        fill_figures = fill(database, url, args.days, "bi", bi_password=password)
        print(
            f"filled {args.facilities} facilities × {args.days} days ({args.interval_s} s readings): "
            f"{fill_figures['readings']:,} readings in {fill_figures['seconds']['total']:.0f} s "
            f"({', '.join(f'{k} {v:.0f} s' for k, v in fill_figures['seconds'].items() if k not in ('total', 'one hour of marts'))}); "
            f"rebuilding one hour of marts afterwards: {fill_figures['seconds']['one hour of marts']:.1f} s"
        )
        timings, rows = time_queries(database.with_user("wattline_bi", password), args)

    def percentiles(ms: list[float]) -> dict:
        return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(p95(ms), 2)}

    limit = percentiles(timings.pop("select_1"))
    figures = {
        "facilities": args.facilities,
        "days": args.days,
        "interval_s": args.interval_s,
        "readings": fill_figures["readings"],
        "fill_seconds": {k: round(v, 1) for k, v in fill_figures["seconds"].items()},
        "repeats": args.repeats,
        "goal_p95_ms": GOAL_P95_MS,
        "queries": {name: {**percentiles(ms), "rows": rows[name]} for name, ms in timings.items()},
        "select_1": limit,
    }
    figures["within_goal"] = all(q["p95_ms"] <= GOAL_P95_MS for q in figures["queries"].values())
    print(f"as wattline_bi, {args.repeats} runs per query after {args.warmup} warm-up runs; goal p95 ≤ {GOAL_P95_MS:.0f} ms")
    table = [
        (f"{LABELS[name]} [{q['rows']:,} rows]", f"{q['p50_ms']:.1f} / {q['p95_ms']:.1f}  {'ok' if q['p95_ms'] <= GOAL_P95_MS else 'OVER'}")
        for name, q in figures["queries"].items()
    ]
    table.append(("select 1 on the same connection, the limit", f"{limit['p50_ms']:.1f} / {limit['p95_ms']:.1f}    "))
    report(table, figures, args.json, heading=("query", "p50 / p95 ms"))


def time_queries(bi, args) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Milliseconds per run (execute + fetch) and the rows of the last run, per query."""
    import psycopg2

    connection = psycopg2.connect(bi.url)
    connection.autocommit = True
    rng = random.Random(args.seed)
    try:
        with connection.cursor() as cur:
            cur.execute("select current_user")
            assert cur.fetchone()[0] == "wattline_bi"
            cur.execute("select array_agg(distinct facility_id order by facility_id) from marts.fct_load_15min")
            facilities = cur.fetchone()[0]
            cur.execute("select min(local_date), max(local_date) from marts.fct_load_daily")
            first_date, last_date = cur.fetchone()
            cur.execute("select max(hour_start) + interval '1 hour' from marts.fct_emissions_hourly")
            data_end = cur.fetchone()[0]

        def utc_day() -> datetime:
            # Whole UTC days inside the data (its first and last are partial).
            offset = rng.randrange(1, (last_date - first_date).days - 1)
            return datetime.combine(first_date + timedelta(days=offset), datetime.min.time(), tzinfo=UTC)

        # A month of whole local days (fewer when a quick run loaded fewer).
        month_days = min(30, (last_date - first_date).days - 1)

        def first_of_month() -> date:
            return first_date + timedelta(days=rng.randrange(1, (last_date - first_date).days - month_days + 1))

        params = {
            "select_1": dict,
            "facility_day_15min": lambda: {"facility": rng.choice(facilities), "day": utc_day()},
            "month_daily_totals": lambda: {"first": first_of_month(), "days": month_days},
            "carbon_budget_status": lambda: {"day": utc_day().date()},
            "facility_week_emissions_cost": lambda: {"facility": rng.choice(facilities), "end": data_end},
        }
        statements = {"select_1": "select 1", **QUERIES}
        timings, rows = {}, {}
        with connection.cursor() as cur:
            for name, statement in statements.items():
                for _ in range(args.warmup):
                    cur.execute(statement, params[name]())
                    cur.fetchall()
                timings[name] = []
                for _ in range(args.repeats):
                    bound = params[name]()
                    started = time.perf_counter()
                    cur.execute(statement, bound)
                    result = cur.fetchall()
                    timings[name].append((time.perf_counter() - started) * 1000)
                rows[name] = len(result)
    finally:
        connection.close()
    return timings, rows


if __name__ == "__main__":
    main()
