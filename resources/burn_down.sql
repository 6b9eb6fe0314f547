-- The carbon-budget burn-down plot (assets/budget_burndown.py): reads of the two budget marts.

-- name: latest_periods
-- The started periods projected to use the most of their budget.
select budget_id, facility_id, period_start, period_end, budget_kg_co2e, used_kg_co2e, as_of,
       projected_end_kg_co2e, warning_pct, critical_pct
from marts.fct_carbon_budget_status
where period_start <= current_date
order by projected_pct_used desc nulls last, budget_id
limit %(limit)s;

-- name: days
select budget_id, day, cumulative_kg_co2e, projected_cumulative_kg_co2e
from marts.fct_carbon_budget_daily
where budget_id = any(%(budget_ids)s)
order by budget_id, day;
