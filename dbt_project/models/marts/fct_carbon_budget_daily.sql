{#-
    The burn-down of each carbon budget: emissions per facility-local day of the period
    and their running total against the budget, on the same basis as
    fct_carbon_budget_status. Days without emissions data have no row.
-#}
{{
    config(
        indexes=[
            {'columns': ['budget_id', 'day'], 'unique': True},
        ],
    )
}}

-- The materialisation carries the burn-down plot (assets/budget_burndown.py), which
-- reads the status mart's projections and thresholds: on a new warehouse, a build that
-- ran this model first failed on a status mart that did not exist yet.
-- depends_on: {{ ref('fct_carbon_budget_status') }}

{%- set basis = carbon_budget_basis() %}

with periods as (

    select * from {{ ref('int_carbon_budget_periods') }}

),

days as (

    select
        periods.budget_id,
        periods.facility_id,
        (emissions.hour_start at time zone periods.timezone)::date as day,
        sum(emissions.{{ basis }}_kg_co2e) as kg_co2e

    from periods
    inner join {{ ref('fct_emissions_hourly') }} as emissions
        on periods.facility_id = emissions.facility_id
        and emissions.hour_start >= periods.period_start_at
        and emissions.hour_start < periods.period_end_at
    group by periods.budget_id, periods.facility_id, (emissions.hour_start at time zone periods.timezone)::date

),

final as (

    select
        days.budget_id,
        days.facility_id,
        days.day,
        days.kg_co2e,
        sum(days.kg_co2e) over (partition by days.budget_id order by days.day) as cumulative_kg_co2e,
        periods.budget_kg_co2e,
        periods.period_start,
        periods.period_end

    from days
    inner join periods
        on days.budget_id = periods.budget_id

)

select
    *,
    100.0 * cumulative_kg_co2e / nullif(budget_kg_co2e, 0) as cumulative_pct_used
from final
