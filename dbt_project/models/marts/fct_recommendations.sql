{#-
    What each facility could do next, with a rough figure for what it is worth, ranked.
    Every estimate reads the trailing window that ends with the facility's data; the
    formulas are in the yml. One row per facility and kind.
-#}

{%- set window_days = var('insight_window_days', 30) -%}
{%- set flexible_priority = var('load_shift_max_priority', 2) -%}
{%- set scale_up_pct = var('utilization_scale_up_above_pct', 85) -%}
{%- set demand_charge = var('demand_charge_per_kw_month', 15.0) -%}
{%- set pf_target = var('power_factor_target', 0.95) -%}
{%- set loss_share = var('distribution_loss_share', 0.02) -%}
{%- set exceeded_pct = var('budget_exceeded_pct', 100) %}

with windows as (

    select * from {{ ref('int_facility_insight_windows') }}

),

facilities as (

    select
        facility_id,
        coalesce(timezone, 'UTC') as timezone,
        price_zone,
        grid_zone,
        contract_demand_kw

    from {{ ref('stg_facilities') }}

),

-- What a kWh of this facility costs and emits on average over the window.
window_costs as (

    select costs.*
    from {{ ref('fct_energy_cost_hourly') }} as costs
    inner join windows
        on costs.facility_id = windows.facility_id
        and costs.hour_start >= windows.window_start
        and costs.hour_start < windows.window_end

),

-- The currency of the facility's latest priced hour: money in another currency (or none)
-- is never added to it.
facility_currencies as (

    select distinct on (facility_id)
        facility_id,
        currency

    from window_costs
    where currency is not null
    order by facility_id, hour_start desc

),

facility_prices as (

    select
        window_costs.facility_id,
        sum(window_costs.energy_cost)
            / nullif(sum(window_costs.grid_energy_kwh) filter (where window_costs.energy_cost is not null), 0)
            as avg_price_per_kwh,
        min(facility_currencies.currency) as currency

    from window_costs
    inner join facility_currencies
        on window_costs.facility_id = facility_currencies.facility_id
        and window_costs.currency = facility_currencies.currency
    group by window_costs.facility_id

),

facility_factors as (

    select
        emissions.facility_id,
        sum(emissions.location_kg_co2e)
            / nullif(sum(emissions.energy_kwh) filter (where emissions.location_kg_co2e is not null), 0)
            as avg_location_factor_kg_per_kwh

    from {{ ref('fct_emissions_hourly') }} as emissions
    inner join windows
        on emissions.facility_id = windows.facility_id
        and emissions.hour_start >= windows.window_start
        and emissions.hour_start < windows.window_end
    group by emissions.facility_id

),

meter_quarters as (

    select meter_quarters.*
    from {{ ref('int_meter_load_15min') }} as meter_quarters
    inner join windows
        on meter_quarters.facility_id = windows.facility_id
        and meter_quarters.interval_start >= windows.window_start
        and meter_quarters.interval_start < windows.window_end

),

-- load_shift ------------------------------------------------------------------------

flexible_end_uses as (

    select distinct facility_id, end_use
    from {{ ref('curtailment_catalogue') }}
    where priority <= {{ flexible_priority }}

),

flexible_hours as (

    select
        meter_quarters.facility_id,
        date_trunc('hour', meter_quarters.interval_start) as hour_start,
        sum(meter_quarters.energy_kwh) as flexible_kwh

    from meter_quarters
    left join flexible_end_uses
        on meter_quarters.facility_id = flexible_end_uses.facility_id
        and meter_quarters.end_use = flexible_end_uses.end_use
    where meter_quarters.energy_source = 'grid'
        -- EV charging can always wait an hour or two.
        and (meter_quarters.end_use = 'ev' or flexible_end_uses.end_use is not null)
    group by 1, 2

),

-- The zone's hourly price as the cost mart bills it: real-time where the zone has one, else day-ahead.
zone_prices as (

    select price_zone, hour_start, price_per_mwh, currency from {{ ref('int_zone_prices_hourly') }}

),

zone_intensity as (

    select grid_zone, hour_start, carbon_intensity_kg_per_kwh from {{ ref('int_grid_intensity_hourly') }}

),

zone_hours as (

    select
        windows.facility_id,
        zone_prices.hour_start,
        (zone_prices.hour_start at time zone facilities.timezone)::date as local_date,
        zone_prices.price_per_mwh,
        zone_intensity.carbon_intensity_kg_per_kwh as intensity_kg_per_kwh

    from windows
    inner join facilities
        on windows.facility_id = facilities.facility_id
    inner join facility_currencies
        on windows.facility_id = facility_currencies.facility_id
    inner join zone_prices
        on facilities.price_zone = zone_prices.price_zone
        and zone_prices.currency = facility_currencies.currency
        and zone_prices.hour_start >= windows.window_start
        and zone_prices.hour_start < windows.window_end
    left join zone_intensity
        on facilities.grid_zone = zone_intensity.grid_zone
        and zone_prices.hour_start = zone_intensity.hour_start

),

price_quartiles as (

    select
        facility_id,
        percentile_cont(0.75) within group (order by price_per_mwh) as top_quartile_from_per_mwh,
        percentile_cont(0.25) within group (order by price_per_mwh) as bottom_quartile_to_per_mwh

    from zone_hours
    group by facility_id

),

cheap_days as (

    select
        zone_hours.facility_id,
        zone_hours.local_date,
        avg(zone_hours.price_per_mwh) as bottom_price_per_mwh,
        avg(zone_hours.intensity_kg_per_kwh) as bottom_intensity_kg_per_kwh

    from zone_hours
    inner join price_quartiles
        on zone_hours.facility_id = price_quartiles.facility_id
    where zone_hours.price_per_mwh <= price_quartiles.bottom_quartile_to_per_mwh
    group by 1, 2

),

expensive_days as (

    select
        zone_hours.facility_id,
        zone_hours.local_date,
        sum(flexible_hours.flexible_kwh) as flexible_kwh,
        sum(flexible_hours.flexible_kwh * zone_hours.price_per_mwh)
            / nullif(sum(flexible_hours.flexible_kwh), 0) as top_price_per_mwh,
        sum(flexible_hours.flexible_kwh * zone_hours.intensity_kg_per_kwh)
            / nullif(sum(flexible_hours.flexible_kwh) filter (where zone_hours.intensity_kg_per_kwh is not null), 0)
            as top_intensity_kg_per_kwh

    from zone_hours
    inner join price_quartiles
        on zone_hours.facility_id = price_quartiles.facility_id
    inner join flexible_hours
        on zone_hours.facility_id = flexible_hours.facility_id
        and zone_hours.hour_start = flexible_hours.hour_start
    where zone_hours.price_per_mwh >= price_quartiles.top_quartile_from_per_mwh
    group by 1, 2

),

-- A day's expensive flexible energy moves to the cheap hours of the same day, if it has any.
shifted as (

    select
        expensive_days.facility_id,
        count(*) as days,
        sum(expensive_days.flexible_kwh) as kwh_shifted,
        sum(expensive_days.flexible_kwh * expensive_days.top_price_per_mwh)
            / nullif(sum(expensive_days.flexible_kwh), 0) as top_price_per_mwh,
        sum(expensive_days.flexible_kwh * cheap_days.bottom_price_per_mwh)
            / nullif(sum(expensive_days.flexible_kwh), 0) as bottom_price_per_mwh,
        sum(expensive_days.flexible_kwh
            * (expensive_days.top_price_per_mwh - cheap_days.bottom_price_per_mwh) / 1000.0) as cost_saved,
        sum(expensive_days.flexible_kwh
            * (expensive_days.top_intensity_kg_per_kwh - cheap_days.bottom_intensity_kg_per_kwh)) as kg_saved

    from expensive_days
    inner join cheap_days
        on expensive_days.facility_id = cheap_days.facility_id
        and expensive_days.local_date = cheap_days.local_date
    where expensive_days.flexible_kwh > 0
    group by expensive_days.facility_id

),

load_shift as (

    select
        shifted.facility_id,
        'load_shift' as kind,
        'Shift flexible load out of peak-price hours' as title,
        format(
            '%s kWh of flexible grid load (EV charging and curtailable end uses) ran in the zone''s '
            'most expensive quarter of hours on %s days of the last %s, at %s %s/MWh on average. '
            'Moved to the cheapest hours of the same days (%s %s/MWh on average) it would cost about '
            '%s %s less; %s.',
            round(shifted.kwh_shifted::numeric, 1), shifted.days, {{ window_days }},
            round(shifted.top_price_per_mwh::numeric, 2), facility_prices.currency,
            round(shifted.bottom_price_per_mwh::numeric, 2), facility_prices.currency,
            round(shifted.cost_saved::numeric, 2), facility_prices.currency,
            case
                when shifted.kg_saved is null then 'the carbon effect is unknown (no grid carbon intensity)'
                when round(shifted.kg_saved::numeric, 1) = 0 then 'emissions would hardly change'
                when shifted.kg_saved >= 0
                    then format('emissions would fall by %s kg CO2e', round(shifted.kg_saved::numeric, 1))
                else format('emissions would rise by %s kg CO2e, because the cheap hours have a dirtier grid',
                    round(-shifted.kg_saved::numeric, 1))
            end
        ) as rationale,
        0.0::double precision as est_kwh_saved,
        shifted.kwh_shifted as est_kwh_shifted,
        shifted.cost_saved as est_cost_saved,
        shifted.kg_saved as est_kg_co2e_saved

    from shifted
    left join facility_prices
        on shifted.facility_id = facility_prices.facility_id
    where shifted.cost_saved > 0

),

-- peak_shaving ----------------------------------------------------------------------

peaks as (

    select
        utilization.facility_id,
        count(*) as intervals,
        max(utilization.demand_kw) as max_demand_kw,
        max(utilization.contract_demand_kw) * {{ scale_up_pct }} / 100.0 as threshold_kw,
        sum(utilization.demand_kw - utilization.contract_demand_kw * {{ scale_up_pct }} / 100.0) * 0.25
            as kwh_above_threshold

    from {{ ref('fct_facility_utilization_15min') }} as utilization
    inner join windows
        on utilization.facility_id = windows.facility_id
        and utilization.interval_start >= windows.window_start
        and utilization.interval_start < windows.window_end
    where utilization.band = 'scale_up'
    group by utilization.facility_id

),

peak_shaving as (

    select
        peaks.facility_id,
        'peak_shaving' as kind,
        format('Shave demand peaks above %s %% of contract demand', {{ scale_up_pct }}) as title,
        format(
            'Grid demand was above %s %% of contract demand (%s kW) in %s quarter-hours of the last %s days, '
            'peaking at %s kW. Holding it to %s kW (shedding or deferring flexible load, discharging '
            'storage) moves %s kWh out of the peaks and cuts the demand charge by about %s %s a month '
            '(%s kW at %s %s per kW-month).',
            {{ scale_up_pct }}, round(peaks.threshold_kw::numeric, 1), peaks.intervals, {{ window_days }},
            round(peaks.max_demand_kw::numeric, 1), round(peaks.threshold_kw::numeric, 1),
            round(peaks.kwh_above_threshold::numeric, 1),
            round(((peaks.max_demand_kw - peaks.threshold_kw) * {{ demand_charge }})::numeric, 2),
            facility_prices.currency,
            round((peaks.max_demand_kw - peaks.threshold_kw)::numeric, 1), {{ demand_charge }},
            facility_prices.currency
        ) as rationale,
        0.0::double precision as est_kwh_saved,
        peaks.kwh_above_threshold as est_kwh_shifted,
        (peaks.max_demand_kw - peaks.threshold_kw) * {{ demand_charge }} as est_cost_saved,
        0.0::double precision as est_kg_co2e_saved

    from peaks
    left join facility_prices
        on peaks.facility_id = facility_prices.facility_id

),

-- power_factor_correction -----------------------------------------------------------

meter_power_factors as (

    select
        facility_id,
        meter_id,
        sum(energy_kwh) as energy_kwh,
        sum(energy_kwh * avg_power_factor) / nullif(sum(energy_kwh), 0) as avg_power_factor

    from meter_quarters
    where avg_power_factor is not null
        and energy_kwh > 0
    group by facility_id, meter_id

),

low_power_factor as (

    select
        facility_id,
        count(*) as meters,
        min(avg_power_factor) as worst_power_factor,
        sum(energy_kwh) as energy_kwh,
        -- Distribution losses scale with 1/pf²: raising pf to the target leaves (pf/target)² of them.
        sum(energy_kwh * {{ loss_share }} * (1 - power(avg_power_factor / {{ pf_target }}, 2))) as kwh_saved,
        string_agg(meter_id || ' (' || round(avg_power_factor::numeric, 3) || ')', ', '
            order by avg_power_factor, meter_id) as meter_list

    from meter_power_factors
    where avg_power_factor < {{ pf_target }}
    group by facility_id

),

power_factor_correction as (

    select
        low_power_factor.facility_id,
        'power_factor_correction' as kind,
        format('Correct the power factor of %s', case when low_power_factor.meters = 1 then 'one meter'
            else low_power_factor.meters || ' meters' end) as title,
        format(
            '%s metered %s kWh in the last %s days at an energy-weighted power factor below %s: %s. '
            'Distribution losses (taken as %s %% of the energy) scale with 1/pf²; capacitor banks or '
            'active compensation to %s save about %s kWh, %s %s and %s kg CO2e over that period.',
            case when low_power_factor.meters = 1 then 'One meter' else low_power_factor.meters || ' meters' end,
            round(low_power_factor.energy_kwh::numeric, 1), {{ window_days }}, {{ pf_target }},
            low_power_factor.meter_list, {{ loss_share * 100 }}, {{ pf_target }},
            round(low_power_factor.kwh_saved::numeric, 1),
            round((low_power_factor.kwh_saved * facility_prices.avg_price_per_kwh)::numeric, 2),
            facility_prices.currency,
            round((low_power_factor.kwh_saved * facility_factors.avg_location_factor_kg_per_kwh)::numeric, 1)
        ) as rationale,
        low_power_factor.kwh_saved as est_kwh_saved,
        0.0::double precision as est_kwh_shifted,
        low_power_factor.kwh_saved * facility_prices.avg_price_per_kwh as est_cost_saved,
        low_power_factor.kwh_saved * facility_factors.avg_location_factor_kg_per_kwh as est_kg_co2e_saved

    from low_power_factor
    left join facility_prices
        on low_power_factor.facility_id = facility_prices.facility_id
    left join facility_factors
        on low_power_factor.facility_id = facility_factors.facility_id
    where low_power_factor.kwh_saved > 0

),

-- budget_at_risk --------------------------------------------------------------------

-- Budgets in progress at the end of the data that are over, or on course to be.
budgets_at_risk as (

    select
        budgets.facility_id,
        budgets.budget_id,
        budgets.status,
        budgets.period_end,
        budgets.budget_kg_co2e,
        budgets.used_kg_co2e,
        budgets.projected_end_kg_co2e,
        budgets.projected_pct_used,
        budgets.projected_end_kg_co2e - budgets.budget_kg_co2e as kg_to_avoid,
        -- Nested periods (a year and its months) overlap: the one furthest over speaks for them.
        row_number() over (
            partition by budgets.facility_id
            order by budgets.projected_end_kg_co2e - budgets.budget_kg_co2e desc, budgets.budget_id
        ) as budget_rank

    from {{ ref('fct_carbon_budget_status') }} as budgets
    inner join windows
        on budgets.facility_id = windows.facility_id
    left join facilities
        on budgets.facility_id = facilities.facility_id
    where ((windows.window_end - interval '1 hour') at time zone coalesce(facilities.timezone, 'UTC'))::date
            between budgets.period_start and budgets.period_end
        and (budgets.projected_pct_used >= {{ exceeded_pct }} or budgets.status in ('critical', 'exceeded'))
        and budgets.projected_end_kg_co2e - budgets.budget_kg_co2e > 0

),

budget_at_risk as (

    select
        budgets_at_risk.facility_id,
        'budget_at_risk' as kind,
        format('Carbon budget %s at risk', budgets_at_risk.budget_id) as title,
        format(
            'Budget %s (%s kg CO2e to %s) is %s: %s kg CO2e used, %s kg CO2e (%s %%) projected at the current '
            'burn rate. Staying within it means avoiding %s kg CO2e, about %s kWh at this facility''s '
            'average %s kg CO2e/kWh (%s %s).',
            budgets_at_risk.budget_id, round(budgets_at_risk.budget_kg_co2e::numeric, 0),
            budgets_at_risk.period_end, budgets_at_risk.status,
            round(budgets_at_risk.used_kg_co2e::numeric, 0),
            round(budgets_at_risk.projected_end_kg_co2e::numeric, 0),
            round(budgets_at_risk.projected_pct_used::numeric, 1),
            round(budgets_at_risk.kg_to_avoid::numeric, 0),
            round((budgets_at_risk.kg_to_avoid / facility_factors.avg_location_factor_kg_per_kwh)::numeric, 0),
            round(facility_factors.avg_location_factor_kg_per_kwh::numeric, 3),
            round((budgets_at_risk.kg_to_avoid / facility_factors.avg_location_factor_kg_per_kwh
                * facility_prices.avg_price_per_kwh)::numeric, 2),
            facility_prices.currency
        ) as rationale,
        budgets_at_risk.kg_to_avoid / nullif(facility_factors.avg_location_factor_kg_per_kwh, 0) as est_kwh_saved,
        0.0::double precision as est_kwh_shifted,
        budgets_at_risk.kg_to_avoid / nullif(facility_factors.avg_location_factor_kg_per_kwh, 0)
            * facility_prices.avg_price_per_kwh as est_cost_saved,
        budgets_at_risk.kg_to_avoid as est_kg_co2e_saved

    from budgets_at_risk
    left join facility_prices
        on budgets_at_risk.facility_id = facility_prices.facility_id
    left join facility_factors
        on budgets_at_risk.facility_id = facility_factors.facility_id
    where budgets_at_risk.budget_rank = 1

),

recommendations as (

    select * from load_shift
    union all
    select * from peak_shaving
    union all
    select * from power_factor_correction
    union all
    select * from budget_at_risk

),

final as (

    select
        md5(recommendations.facility_id || '|' || recommendations.kind) as recommendation_id,
        recommendations.facility_id,
        row_number() over (
            partition by recommendations.facility_id
            order by recommendations.est_cost_saved desc nulls last,
                recommendations.est_kg_co2e_saved desc nulls last,
                recommendations.kind
        ) as rank,
        recommendations.kind,
        recommendations.title,
        recommendations.rationale,
        round(recommendations.est_kwh_saved::numeric, 3)::double precision as est_kwh_saved,
        round(recommendations.est_kwh_shifted::numeric, 3)::double precision as est_kwh_shifted,
        round(recommendations.est_cost_saved::numeric, 2)::double precision as est_cost_saved,
        facility_prices.currency,
        round(recommendations.est_kg_co2e_saved::numeric, 3)::double precision as est_kg_co2e_saved,
        windows.window_start,
        windows.window_end

    from recommendations
    inner join windows
        on recommendations.facility_id = windows.facility_id
    left join facility_prices
        on recommendations.facility_id = facility_prices.facility_id

)

select * from final
