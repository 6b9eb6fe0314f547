{#-
    Status is measured over the data: from the first hour with emissions in the period
    (`data_from`, later than the period's start when history was not loaded that far
    back) to the end of the last one (`as_of`, or var budget_as_of), so a backfilled
    past period and a live one read the same way and a short history does not dilute
    the burn rate. The projection fills every unmeasured day of the period (before
    data_from and after as_of) at that burn rate, and status rates the projection too:
    15 days of a year at 5 % used is on course for 120 %, not "ok".
-#}
{{
    config(
        indexes=[
            {'columns': ['budget_id'], 'unique': True},
            {'columns': ['facility_id']},
        ],
    )
}}

{%- set basis = carbon_budget_basis() %}

with periods as (

    select * from {{ ref('int_carbon_budget_periods') }}

),

hourly_emissions as (

    select
        facility_id,
        hour_start,
        hour_end,
        sum({{ basis }}_kg_co2e) as kg_co2e

    from {{ ref('fct_emissions_hourly') }}
    group by facility_id, hour_start, hour_end

),

period_hours as (

    select
        periods.budget_id,
        hourly_emissions.hour_end,
        hourly_emissions.kg_co2e,
        sum(hourly_emissions.kg_co2e) over (
            partition by periods.budget_id order by hourly_emissions.hour_start
        ) as cumulative_kg_co2e

    from periods
    inner join hourly_emissions
        on periods.facility_id = hourly_emissions.facility_id
        and hourly_emissions.hour_start >= periods.period_start_at
        and hourly_emissions.hour_start < periods.period_end_at

),

used as (

    select
        period_hours.budget_id,
        sum(period_hours.kg_co2e) as used_kg_co2e,
        min(period_hours.hour_end) - interval '1 hour' as data_from,
        max(period_hours.hour_end) as data_through,
        -- The hour the budget ran out in, when it has.
        min(period_hours.hour_end) filter (where period_hours.cumulative_kg_co2e >= periods.budget_kg_co2e)
            as exhausted_at

    from period_hours
    inner join periods
        on period_hours.budget_id = periods.budget_id
    group by period_hours.budget_id

),

measured as (

    select
        periods.budget_id,
        periods.facility_id,
        periods.timezone,
        periods.period_start,
        periods.period_end,
        periods.period_start_at,
        periods.period_end_at,
        periods.budget_kg_co2e,
        coalesce(used.used_kg_co2e, 0) as used_kg_co2e,
        used.exhausted_at,
        coalesce(used.data_from, periods.period_start_at) as data_from,
        least(
            periods.period_end_at,
            greatest(periods.period_start_at,
                {%- if var('budget_as_of', none) %} '{{ var("budget_as_of") }}'::timestamptz
                {%- else %} coalesce(used.data_through, periods.period_start_at)
                {%- endif %})
        ) as as_of,
        (extract(epoch from periods.period_end_at - periods.period_start_at) / 86400.0)::double precision as period_days

    from periods
    left join used
        on periods.budget_id = used.budget_id

),

rated as (

    select
        *,
        greatest(0, extract(epoch from as_of - data_from) / 86400.0)::double precision as measured_days,
        (extract(epoch from period_end_at - as_of) / 86400.0)::double precision as remaining_days,
        100.0 * used_kg_co2e / nullif(budget_kg_co2e, 0) as pct_used

    from measured

),

projected as (

    select
        *,
        used_kg_co2e / nullif(measured_days, 0) as burn_rate_kg_per_day,
        greatest(0, period_days - measured_days) as unmeasured_days

    from rated

),

rated_projection as (

    select
        *,
        used_kg_co2e + coalesce(burn_rate_kg_per_day, 0) * unmeasured_days as projected_end_kg_co2e,
        100.0 * (used_kg_co2e + coalesce(burn_rate_kg_per_day, 0) * unmeasured_days)
            / nullif(budget_kg_co2e, 0) as projected_pct_used

    from projected

),

-- A burn rate from a few hours (a night, a weekend) says little about a year: the
-- projection rates the status once var budget_projection_min_days are measured.
rating as (

    select
        *,
        case
            when measured_days >= {{ var('budget_projection_min_days') }} then projected_pct_used
        end as projected_rating_pct

    from rated_projection

),

final as (

    select
        budget_id,
        facility_id,
        period_start,
        period_end,
        budget_kg_co2e,
        used_kg_co2e,
        budget_kg_co2e - used_kg_co2e as remaining_kg_co2e,
        pct_used,
        -- Exceeded is a fact; critical and warning also rate where the period is headed,
        -- once enough of it is measured for a burn rate to mean something.
        case
            when pct_used >= {{ var('budget_exceeded_pct') }} then 'exceeded'
            when greatest(pct_used, projected_rating_pct) >= {{ var('budget_critical_pct') }} then 'critical'
            when greatest(pct_used, projected_rating_pct) >= {{ var('budget_warning_pct') }} then 'warning'
            else 'ok'
        end as status,
        {{ var('budget_warning_pct') }}::double precision as warning_pct,
        {{ var('budget_critical_pct') }}::double precision as critical_pct,
        data_from,
        as_of,
        measured_days,
        remaining_days,
        period_days,
        unmeasured_days,
        measured_days / nullif(period_days, 0) as measured_share,
        burn_rate_kg_per_day,
        projected_end_kg_co2e,
        projected_pct_used,
        case
            when exhausted_at is not null then (exhausted_at at time zone timezone)::date
            when burn_rate_kg_per_day > 0
                and as_of + make_interval(secs => 86400.0 * (budget_kg_co2e - used_kg_co2e) / burn_rate_kg_per_day) < period_end_at
                then ((as_of + make_interval(secs => 86400.0 * (budget_kg_co2e - used_kg_co2e) / burn_rate_kg_per_day))
                    at time zone timezone)::date
        end as projected_exhaustion_date,
        exhausted_at is not null as is_exhausted

    from rating

)

select * from final
