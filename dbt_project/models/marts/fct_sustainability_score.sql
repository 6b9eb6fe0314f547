{#-
    A 0–100 sustainability score per facility over the trailing window that ends with its
    data: renewable share (30 points), carbon-intensity trend (25), carbon budget
    adherence (25), power quality (20). The formula is in the yml.
-#}

{%- set window_days = var('insight_window_days', 30) -%}
{%- set recent_days = var('score_trend_recent_days', 7) -%}
{%- set pf_min = var('score_power_factor_min', 0.9) -%}
{%- set voltage_tolerance_pct = var('score_voltage_tolerance_pct', 10) %}

with windows as (

    select * from {{ ref('int_facility_insight_windows') }}

),

facilities as (

    select facility_id, coalesce(timezone, 'UTC') as timezone from {{ ref('stg_facilities') }}

),

factors as (

    select energy_source, is_renewable from {{ ref('emission_factors') }}

),

-- Renewable share ---------------------------------------------------------------------

supply as (

    select
        energy.facility_id,
        sum(energy.energy_kwh) as total_kwh,
        coalesce(sum(energy.energy_kwh) filter (
            where energy.energy_source <> 'grid' and factors.is_renewable
        ), 0) as onsite_renewable_kwh

    from {{ ref('int_facility_energy_hourly') }} as energy
    inner join windows
        on energy.facility_id = windows.facility_id
        and energy.hour_start >= windows.window_start
        and energy.hour_start < windows.window_end
    left join factors
        on energy.energy_source = factors.energy_source
    group by energy.facility_id

),

-- Carbon-intensity trend ----------------------------------------------------------------

emissions as (

    select
        emissions.facility_id,
        emissions.hour_start >= windows.window_end - make_interval(hours => 24 * {{ recent_days }}) as is_recent,
        emissions.energy_kwh,
        emissions.location_kg_co2e

    from {{ ref('fct_emissions_hourly') }} as emissions
    inner join windows
        on emissions.facility_id = windows.facility_id
        and emissions.hour_start >= windows.window_start
        and emissions.hour_start < windows.window_end
    where emissions.location_kg_co2e is not null

),

intensity as (

    select
        facility_id,
        sum(location_kg_co2e) filter (where is_recent)
            / nullif(sum(energy_kwh) filter (where is_recent), 0) as recent_kg_co2e_per_kwh,
        sum(location_kg_co2e) filter (where not is_recent)
            / nullif(sum(energy_kwh) filter (where not is_recent), 0) as previous_kg_co2e_per_kwh

    from emissions
    group by facility_id

),

-- Budget adherence ----------------------------------------------------------------------

-- Budgets in progress at the end of the data (the facility-local date of its last hour).
budgets as (

    select
        windows.facility_id,
        count(budgets.budget_id) as budgets_in_progress,
        max(case budgets.status
            when 'ok' then 0 when 'warning' then 1 when 'critical' then 2 when 'exceeded' then 3
        end) as worst_severity

    from windows
    left join facilities
        on windows.facility_id = facilities.facility_id
    inner join {{ ref('fct_carbon_budget_status') }} as budgets
        on windows.facility_id = budgets.facility_id
        and ((windows.window_end - interval '1 hour') at time zone coalesce(facilities.timezone, 'UTC'))::date
            between budgets.period_start and budgets.period_end
    group by windows.facility_id

),

-- Power quality -------------------------------------------------------------------------

meter_quarters as (

    select
        meter_quarters.facility_id,
        meter_quarters.meter_id,
        meter_quarters.avg_power_factor,
        meter_quarters.avg_voltage_v,
        meter_quarters.min_voltage_v,
        meter_quarters.max_voltage_v

    from {{ ref('int_meter_load_15min') }} as meter_quarters
    inner join windows
        on meter_quarters.facility_id = windows.facility_id
        and meter_quarters.interval_start >= windows.window_start
        and meter_quarters.interval_start < windows.window_end

),

meter_voltage as (

    select
        meter_id,
        percentile_cont(0.5) within group (order by avg_voltage_v) as median_voltage_v

    from meter_quarters
    where avg_voltage_v is not null
    group by meter_id

),

power_quality as (

    select
        meter_quarters.facility_id,
        count(*) as rated_intervals,
        count(*) filter (
            where meter_quarters.avg_power_factor >= {{ pf_min }}
                and not coalesce(
                    meter_quarters.min_voltage_v < meter_voltage.median_voltage_v * (1 - {{ voltage_tolerance_pct }} / 100.0)
                    or meter_quarters.max_voltage_v > meter_voltage.median_voltage_v * (1 + {{ voltage_tolerance_pct }} / 100.0),
                    false
                )
        ) as good_intervals

    from meter_quarters
    left join meter_voltage
        on meter_quarters.meter_id = meter_voltage.meter_id
    where meter_quarters.avg_power_factor is not null
    group by meter_quarters.facility_id

),

-- Points --------------------------------------------------------------------------------

inputs as (

    select
        windows.facility_id,
        windows.window_start,
        windows.window_end,
        supply.total_kwh,
        supply.onsite_renewable_kwh,
        -- least/greatest skip nulls: keep "no energy" empty rather than 0 or 1.
        case when supply.total_kwh > 0
            then greatest(0.0, least(1.0, supply.onsite_renewable_kwh / supply.total_kwh))
        end as renewable_share,
        intensity.previous_kg_co2e_per_kwh,
        intensity.recent_kg_co2e_per_kwh,
        100.0 * (intensity.recent_kg_co2e_per_kwh / nullif(intensity.previous_kg_co2e_per_kwh, 0) - 1)
            as carbon_intensity_trend_pct,
        coalesce(budgets.budgets_in_progress, 0) as budgets_in_progress,
        case budgets.worst_severity
            when 0 then 'ok' when 1 then 'warning' when 2 then 'critical' when 3 then 'exceeded'
        end as worst_budget_status,
        coalesce(power_quality.rated_intervals, 0) as power_quality_intervals,
        coalesce(power_quality.good_intervals, 0) as good_power_quality_intervals,
        power_quality.good_intervals::double precision / nullif(power_quality.rated_intervals, 0)
            as power_quality_share

    from windows
    left join supply
        on windows.facility_id = supply.facility_id
    left join intensity
        on windows.facility_id = intensity.facility_id
    left join budgets
        on windows.facility_id = budgets.facility_id
    left join power_quality
        on windows.facility_id = power_quality.facility_id

),

points as (

    select
        *,
        30.0 * coalesce(renewable_share, 0) as renewable_points,
        (case
            when carbon_intensity_trend_pct is null then 12.5
            when carbon_intensity_trend_pct <= -10 then 25.0
            when carbon_intensity_trend_pct >= 10 then 0.0
            else 25.0 * (10 - carbon_intensity_trend_pct) / 20.0
        end)::double precision as carbon_trend_points,
        (case worst_budget_status
            when 'ok' then 25.0 when 'warning' then 15.0 when 'critical' then 5.0 when 'exceeded' then 0.0
            else 12.5
        end)::double precision as budget_points,
        (case
            when power_quality_share is null then 10.0
            else 20.0 * power_quality_share
        end)::double precision as power_quality_points

    from inputs

),

scored as (

    select
        *,
        round((renewable_points + carbon_trend_points + budget_points + power_quality_points)::numeric, 1)
            ::double precision as score

    from points

),

final as (

    select
        facility_id,
        window_start,
        window_end,
        score,
        case
            when score >= 80 then 'A'
            when score >= 65 then 'B'
            when score >= 50 then 'C'
            when score >= 35 then 'D'
            else 'E'
        end as grade,
        total_kwh,
        onsite_renewable_kwh,
        renewable_share,
        renewable_points,
        previous_kg_co2e_per_kwh,
        recent_kg_co2e_per_kwh,
        carbon_intensity_trend_pct,
        carbon_trend_points,
        budgets_in_progress,
        worst_budget_status,
        budget_points,
        power_quality_intervals,
        good_power_quality_intervals,
        power_quality_share,
        power_quality_points,
        nullif(concat_ws('; ',
            case when renewable_share is null
                then 'no energy in the window: renewable share counts 0 of 30 points' end,
            case when carbon_intensity_trend_pct is null
                then 'carbon-intensity trend unavailable (needs location-based emissions in the last '
                    || '{{ recent_days }} days and in the {{ window_days - recent_days }} before): 12.5 of 25 points' end,
            case when worst_budget_status is null
                then 'no carbon budget in progress: 12.5 of 25 points' end,
            case when power_quality_share is null
                then 'no power-factor readings: 10 of 20 points' end
        ), '') as notes

    from scored

)

select * from final
