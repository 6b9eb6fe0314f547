{#- Each carbon budget period (seed carbon_budgets) as the UTC instants its facility-local dates span. -#}

with budgets as (

    select * from {{ ref('carbon_budgets') }}

),

facilities as (

    select facility_id, timezone from {{ ref('stg_facilities') }}

)

select
    budgets.*,
    coalesce(facilities.timezone, 'UTC') as timezone,
    (budgets.period_start::timestamp at time zone coalesce(facilities.timezone, 'UTC')) as period_start_at,
    ((budgets.period_end + 1)::timestamp at time zone coalesce(facilities.timezone, 'UTC')) as period_end_at

from budgets
left join facilities
    on budgets.facility_id = facilities.facility_id
