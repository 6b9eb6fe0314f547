{#-
    The burn-down of each carbon budget: emissions per facility-local day of the period
    and their running total against the budget, on the same basis as
    fct_carbon_budget_status. Days without emissions data have no row. The projected
    running total counts the period's days before the first measured hour at the status
    mart's burn rate, as its projection does: a chart drawn from it meets
    projected_end_kg_co2e at the period's end.
-#}
{{
    config(
        indexes=[
            {'columns': ['budget_id', 'day'], 'unique': True},
        ],
    )
}}

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

status as (

    select
        budget_id,
        coalesce(burn_rate_kg_per_day, 0)
            * greatest(0, extract(epoch from data_from - period_start_at) / 86400.0)::double precision
            as before_data_kg_co2e,
        projected_end_kg_co2e,
        measured_share

    from {{ ref('fct_carbon_budget_status') }} as budget_status
    inner join periods using (budget_id)

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
        periods.period_end,
        status.before_data_kg_co2e,
        status.projected_end_kg_co2e,
        status.measured_share

    from days
    inner join periods
        on days.budget_id = periods.budget_id
    left join status
        on days.budget_id = status.budget_id

)

select
    budget_id,
    facility_id,
    day,
    kg_co2e,
    cumulative_kg_co2e,
    budget_kg_co2e,
    period_start,
    period_end,
    100.0 * cumulative_kg_co2e / nullif(budget_kg_co2e, 0) as cumulative_pct_used,
    cumulative_kg_co2e + coalesce(before_data_kg_co2e, 0) as projected_cumulative_kg_co2e,
    projected_end_kg_co2e,
    measured_share
from final
