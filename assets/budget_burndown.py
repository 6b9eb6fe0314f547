"""The carbon-budget burn-down plot on `marts/fct_carbon_budget_daily`'s materialisation.

dbt builds the table; this draws it: for the budgets closest to running out, emissions
to date against the budget and the warning/critical thresholds, with the straight-line
projection to the period's end. The plot is redrawn at most once an hour (the table is
rebuilt every few minutes and every plot rides in the event log); the materialisations
in between say when it was drawn. The table depends on the status mart in dbt, so a
build has made both before the plot reads them; a plot that still cannot be drawn (a
run that rebuilt the table alone beside a status mart of an older version) is a warning,
never a failed materialisation.
"""

from datetime import UTC, date, datetime, timedelta

from dagster import AssetExecutionContext, AssetKey, MetadataValue, Output

from assets.plots import figure, markdown_image, palette_png
from resources.postgres import PostgresResource
from resources.sql_files import statements

BURN_DOWN = AssetKey(["marts", "fct_carbon_budget_daily"])
PLOTTED_HOUR = "burn_down_plotted_hour"
MAX_BUDGETS = 6
SQL = "burn_down.sql"


def with_burn_down(event, context: AssetExecutionContext, postgres: PostgresResource):
    """`event`, with the burn-down plot added when it is the daily budget table's output
    and no plot was drawn this hour."""
    if not isinstance(event, Output) or context.asset_key_for_output(event.output_name) != BURN_DOWN:
        return event
    hour = datetime.now(UTC).strftime("%Y-%m-%d %H:00 UTC")
    last = context.instance.get_latest_materialization_event(BURN_DOWN)
    last_hour = last.asset_materialization.metadata.get(PLOTTED_HOUR) if last and last.asset_materialization else None
    if last_hour is not None and last_hour.value == hour:
        # The hour travels on, so the next materialisation of this hour skips too.
        return event.with_metadata(
            {**event.metadata, "burn_down": MetadataValue.md(f"Plotted at {hour}: see that materialisation."), PLOTTED_HOUR: hour}
        )
    try:
        markdown = burn_down_markdown(postgres)
    except Exception as error:  # noqa: BLE001 - the table is built; only its picture is missing
        # psycopg2 adds the statement's LINE and a caret on lines of their own.
        reason = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
        context.log.warning(f"the carbon-budget burn-down plot was not drawn: {reason}")
        # No plotted hour: the next materialisation tries again.
        return event.with_metadata({**event.metadata, "burn_down": MetadataValue.md(f"Not drawn: {reason}")})
    return event.with_metadata({**event.metadata, "burn_down": MetadataValue.md(markdown), PLOTTED_HOUR: hour})


def burn_down_markdown(postgres: PostgresResource, limit: int = MAX_BUDGETS) -> str:
    with postgres.connection() as conn, conn.connection.driver_connection.cursor() as cur:
        sql = statements(SQL)
        cur.execute(sql["latest_periods"], {"limit": limit})
        budgets = cur.fetchall()
        cur.execute(sql["days"], {"budget_ids": [b[0] for b in budgets]})
        days = cur.fetchall()
    if not budgets:
        return "No carbon budget period has started (seed `carbon_budgets`)."
    series: dict[str, list[tuple[date, float, float]]] = {}
    for budget_id, day, cumulative, projected_cumulative in days:
        series.setdefault(budget_id, []).append((day, float(cumulative), float(projected_cumulative)))
    return markdown_image("Carbon budget burn-down (the budgets projected to use the most)", palette_png(_plot(budgets, series)))


def _plot(budgets, series):
    columns = min(3, len(budgets))
    rows = -(-len(budgets) // columns)
    fig = figure(width=4.2 * columns, height=2.6 * rows)
    for index, (budget_id, facility_id, start, end, budget, used, as_of, projected, warning, critical) in enumerate(budgets, start=1):
        ax = fig.add_subplot(rows, columns, index)
        budget = float(budget)
        points = series.get(budget_id, [])
        # The status mart's own thresholds (dbt vars), so the lines match its status.
        for pct, label in ((float(warning), "warning"), (float(critical), "critical")):
            ax.axhline(budget * pct / 100, color="#bbbbbb", linewidth=0.8, linestyle=":")
            ax.text(start, budget * pct / 100, f" {label}", fontsize=6, color="#888888", va="bottom")
        ax.axhline(budget, color="#c0392b", linewidth=1.2, label="budget")
        if points:
            xs, ys, _ = zip(*points, strict=True)
            ax.plot(xs, ys, color="#2c3e50", linewidth=1.5, label="emitted")
        if projected is not None and as_of is not None:
            # fct_carbon_budget_status's projection: the unmeasured days before the data and
            # after it at the burn rate so far, so the line ends where the status is rated.
            start_kg = points[-1][2] if points else float(used)
            ax.plot([as_of.date(), end + timedelta(days=1)], [start_kg, float(projected)], color="#2c3e50", linestyle="--", linewidth=1)
        ax.set_xlim(start, end + timedelta(days=1))
        ax.set_ylim(0, max(budget, float(projected or 0), float(used or 0)) * 1.1)
        ax.set_title(f"{facility_id} · {budget_id}", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_ylabel("kg CO2e", fontsize=6)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
