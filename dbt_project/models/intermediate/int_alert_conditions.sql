{#- How long a facility's load may be missing from the marts before it is stale. -#}
{%- set stale_after = var('alert_stale_after_hours', 2) -%}

-- The current period of each facility's budget: the latest one with data. When the next
-- period begins, the last one drops out here, and its alert is resolved.
with current_budgets as (

    select
        *,
        row_number() over (partition by budget_id, facility_id order by period_start desc) as recency

    from {{ ref('fct_carbon_budget_status') }}

),

budget_conditions as (

    select
        'carbon_budget:' || budget_id || ':' || facility_id || ':' || period_start as alert_key,
        'carbon_budget' as kind,
        facility_id || ' budget ' || budget_id as subject,
        case status when 'warning' then 1 when 'critical' then 2 else 3 end as level,
        status as level_name,
        facility_id || ' has used ' || round(pct_used::numeric, 1) || ' % of carbon budget ' || budget_id
            || ' for ' || period_start || ' – ' || period_end
            || coalesce(', projected ' || round(projected_pct_used::numeric, 1) || ' % by its end ('
                || round((100 * measured_share)::numeric, 1) || ' % of the period measured)', '')
            || ' (' || status || ')' as message

    from current_budgets
    where recency = 1 and status in ('warning', 'critical', 'exceeded')

),

latest_utilization as (

    select distinct on (facility_id) *
    from {{ ref('fct_facility_utilization_15min') }}
    order by facility_id, interval_start desc

),

utilization_conditions as (

    select
        'utilization:' || facility_id as alert_key,
        'utilization' as kind,
        facility_id as subject,
        2 as level,
        band as level_name,
        facility_id || ' draws ' || round(utilization_pct::numeric, 1) || ' % of its contract demand ('
            || round(demand_kw::numeric, 1) || ' of ' || round(contract_demand_kw::numeric, 1) || ' kW at '
            || to_char(interval_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC): ' || action_description as message

    from latest_utilization
    where band = 'scale_up'

),

latest_load as (

    select facility_id, max(interval_end) as latest_end
    from {{ ref('fct_load_15min') }}
    group by facility_id

),

-- A high-severity anomaly counts while it is still going on: it reaches the facility's
-- latest quarter hour in the marts.
anomaly_conditions as (

    select
        'anomaly:' || anomalies.anomaly_id as alert_key,
        'anomaly' as kind,
        anomalies.meter_id as subject,
        3 as level,
        anomalies.severity as level_name,
        anomalies.meter_id || ' (' || anomalies.facility_id || '): ' || anomalies.description as message

    from {{ ref('fct_meter_anomalies') }} as anomalies
    inner join latest_load
        on anomalies.facility_id = latest_load.facility_id
    where anomalies.severity = 'high'
        and anomalies.ended_at >= latest_load.latest_end

),

stale_conditions as (

    select
        'stale_data:' || facility_id as alert_key,
        'stale_data' as kind,
        facility_id as subject,
        2 as level,
        'stale' as level_name,
        facility_id || ' has no load in the marts after '
            || to_char(latest_end at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC' as message

    from latest_load
    where latest_end < now() - interval '{{ stale_after }} hours'

)

select * from budget_conditions
union all
select * from utilization_conditions
union all
select * from anomaly_conditions
union all
select * from stale_conditions
