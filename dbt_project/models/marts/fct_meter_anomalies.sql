{{
    config(
        materialized='table',
        indexes=[
            {'columns': ['facility_id', 'started_at']},
            {'columns': ['meter_id', 'started_at']},
        ],
    )
}}

{#- Thresholds (dbt vars; the defaults are the values below). -#}
{%- set min_baseline_weeks = var('anomaly_min_baseline_weeks', 3) -%}
{%- set mad_floor_kw = var('anomaly_mad_floor_kw', 0.01) -%}
{%- set mad_floor_pct = var('anomaly_mad_floor_pct', 5) -%}
{%- set min_deviation_pct = var('anomaly_min_deviation_pct', 20) -%}
{%- set min_deviation_kw = var('anomaly_min_deviation_kw', 0.1) -%}
{%- set z_threshold = var('anomaly_z_threshold', 3.5) -%}
{%- set z_medium = var('anomaly_z_medium', 5) -%}
{%- set z_high = var('anomaly_z_high', 8) -%}
{%- set flatline_min_intervals = var('flatline_min_intervals', 4) -%}
{%- set flatline_medium_intervals = var('flatline_medium_intervals', 8) -%}
{%- set flatline_high_intervals = var('flatline_high_intervals', 24) -%}
{%- set gap_completeness_below = var('gap_completeness_below', 0.5) -%}
{%- set gap_medium_intervals = var('gap_medium_intervals', 2) -%}
{%- set gap_high_intervals = var('gap_high_intervals', 8) -%}
{%- set voltage_tolerance_pct = var('voltage_tolerance_pct', 10) -%}
{%- set voltage_medium_pct = var('voltage_medium_pct', 12.5) -%}
{%- set voltage_high_pct = var('voltage_high_pct', 15) -%}
{%- set power_factor_min = var('power_factor_min', 0.85) -%}
{%- set power_factor_medium_below = var('power_factor_medium_below', 0.8) -%}
{%- set power_factor_high_below = var('power_factor_high_below', 0.7) -%}

{#- A run of `intervals` quarter hours in words: 45 min, 2 h, 1 h 15 min. -#}
{%- set duration_words -%}
    case
        when intervals * 15 < 60 then (intervals * 15)::text || ' min'
        when intervals * 15 % 60 = 0 then (intervals * 15 / 60)::text || ' h'
        else (intervals * 15 / 60)::text || ' h ' || (intervals * 15 % 60)::text || ' min'
    end
{%- endset %}

with loads as (

    select * from {{ ref('int_meter_load_15min') }}
    -- An interval still in progress is not judged: its readings are still arriving.
    where interval_start + interval '15 minutes' <= current_timestamp

),

-- The registry's facility of a meter, should an anomaly have none of its own.
meters as (

    select meter_id, facility_id from {{ ref('stg_meters') }}

),

facilities as (

    select facility_id, timezone from {{ ref('stg_facilities') }}

),

-- A time zone PostgreSQL does not know (or none) counts as UTC.
facility_timezones as (

    select
        facilities.facility_id,
        coalesce(known_zones.name, 'UTC') as timezone

    from facilities
    left join pg_catalog.pg_timezone_names as known_zones
        on facilities.timezone = known_zones.name

),

localized as (

    select
        loads.*,
        loads.interval_start at time zone coalesce(facility_timezones.timezone, 'UTC') as local_start,
        -- On-site supply: PV, wind, battery, CHP, or a meter registered as supply / pv / export.
        coalesce(loads.energy_source, 'grid') <> 'grid'
            or coalesce(lower(loads.end_use), '') in ('supply', 'pv', 'export', 'generation') as is_supply

    from loads
    left join facility_timezones
        on loads.facility_id = facility_timezones.facility_id

),

-- What each facility drew from its own supplies and from the grid per quarter hour.
facility_supply as (

    select
        facility_id,
        interval_start,
        sum(avg_kw) filter (where is_supply) as supply_kw,
        sum(avg_kw) filter (where not is_supply) as grid_kw

    from localized
    group by facility_id, interval_start

),

-- A supply meter's output is not load: PV is low at dawn, at dusk and under cloud, and its
-- slot of the week moves with sunrise, with nothing wrong at the site. A grid meter at a
-- site with supply draws less while the sun is up and more under cloud: it is judged on
-- the load it serves, its draw plus its share of the on-site supply (as the load marts
-- count a facility's consumption), so daylight does not read as the load changing.
consumption as (

    select
        localized.meter_id,
        localized.facility_id,
        localized.interval_start,
        localized.local_start,
        localized.data_completeness,
        case
            when coalesce(facility_supply.supply_kw, 0) > 0
                then localized.avg_kw * (facility_supply.grid_kw + facility_supply.supply_kw)
                    / nullif(facility_supply.grid_kw, 0)
            else localized.avg_kw
        end as avg_kw

    from localized
    left join facility_supply
        on localized.facility_id = facility_supply.facility_id
        and localized.interval_start = facility_supply.interval_start
    where not localized.is_supply

),

-- 1. load_deviation: each meter against its own median for the same quarter hour of
-- the local week. Intervals too incomplete to trust are gaps, not load.
load_slots as (

    select
        meter_id,
        facility_id,
        interval_start,
        local_start,
        avg_kw,
        extract(isodow from local_start)::integer as local_day_of_week,
        extract(hour from local_start)::integer as local_hour,
        extract(minute from local_start)::integer / 15 as local_quarter

    from consumption
    where avg_kw is not null
        and data_completeness >= {{ gap_completeness_below }}

),

slot_medians as (

    select
        meter_id,
        local_day_of_week,
        local_hour,
        local_quarter,
        percentile_cont(0.5) within group (order by avg_kw) as median_kw,
        count(*) as observations

    from load_slots
    group by meter_id, local_day_of_week, local_hour, local_quarter

),

slot_baselines as (

    select
        slot_medians.meter_id,
        slot_medians.local_day_of_week,
        slot_medians.local_hour,
        slot_medians.local_quarter,
        slot_medians.median_kw,
        slot_medians.observations,
        percentile_cont(0.5) within group (
            order by abs(load_slots.avg_kw - slot_medians.median_kw)
        ) as mad_kw

    from slot_medians
    inner join load_slots
        on slot_medians.meter_id = load_slots.meter_id
        and slot_medians.local_day_of_week = load_slots.local_day_of_week
        and slot_medians.local_hour = load_slots.local_hour
        and slot_medians.local_quarter = load_slots.local_quarter
    group by
        slot_medians.meter_id,
        slot_medians.local_day_of_week,
        slot_medians.local_hour,
        slot_medians.local_quarter,
        slot_medians.median_kw,
        slot_medians.observations

),

load_scores as (

    select
        load_slots.meter_id,
        load_slots.facility_id,
        load_slots.interval_start,
        load_slots.local_start,
        load_slots.avg_kw,
        slot_baselines.median_kw,
        -- A few weeks of a steady load give a MAD near 0, which would make any wobble an
        -- outlier: the spread is never taken as less than a share of the usual load.
        0.6745 * (load_slots.avg_kw - slot_baselines.median_kw) / greatest(
            slot_baselines.mad_kw, {{ mad_floor_kw }}, {{ mad_floor_pct }} / 100.0 * abs(slot_baselines.median_kw)
        ) as robust_z

    from load_slots
    inner join slot_baselines
        on load_slots.meter_id = slot_baselines.meter_id
        and load_slots.local_day_of_week = slot_baselines.local_day_of_week
        and load_slots.local_hour = slot_baselines.local_hour
        and load_slots.local_quarter = slot_baselines.local_quarter
    where slot_baselines.observations >= {{ min_baseline_weeks }}

),

load_outliers as (

    select
        *,
        sign(robust_z) as direction,
        -- Consecutive quarter hours share an island (macros/islands.sql).
        {{ quarter_hour_island('meter_id, sign(robust_z)') }} as island

    from load_scores
    where abs(robust_z) >= {{ z_threshold }}
        -- Statistically unusual is not enough: the change must be worth a look too.
        and abs(avg_kw - median_kw) >= greatest({{ min_deviation_kw }}, {{ min_deviation_pct }} / 100.0 * abs(median_kw))

),

-- One row per run, described by its most anomalous interval.
load_runs as (

    select
        meter_id,
        min(facility_id) as facility_id,
        min(interval_start) as started_at,
        max(interval_start) + interval '15 minutes' as ended_at,
        count(*) as intervals,
        (array_agg(avg_kw order by abs(robust_z) desc, interval_start))[1] as observed_value,
        (array_agg(median_kw order by abs(robust_z) desc, interval_start))[1] as expected_value,
        (array_agg(robust_z order by abs(robust_z) desc, interval_start))[1] as peak_z,
        (array_agg(local_start order by abs(robust_z) desc, interval_start))[1] as peak_local_start,
        max(abs(robust_z)) as score

    from load_outliers
    group by meter_id, direction, island

),

load_deviations as (

    select
        meter_id,
        facility_id,
        'load_deviation' as kind,
        {{ severity('score', z_medium, z_high) }} as severity,
        started_at,
        ended_at,
        intervals,
        observed_value,
        expected_value,
        'kW' as unit,
        score,
        case
            when expected_value <= 0
                then 'Load ' || round(observed_value::numeric, 1) || ' kW where '
                    || to_char(peak_local_start, 'FMDay HH24:MI') || ' usually has none'
            when observed_value >= 1.5 * expected_value
                then 'Load ' || round((observed_value / expected_value)::numeric, 1) || '× the usual for '
                    || to_char(peak_local_start, 'FMDay HH24:MI')
            when observed_value >= expected_value
                then 'Load ' || round((100 * (observed_value / expected_value - 1))::numeric) || ' % above the usual for '
                    || to_char(peak_local_start, 'FMDay HH24:MI')
            else 'Load ' || round((100 * (1 - observed_value / expected_value))::numeric) || ' % below the usual for '
                || to_char(peak_local_start, 'FMDay HH24:MI')
        end
        || ' (' || round(observed_value::numeric, 1) || ' kW against a usual ' || round(expected_value::numeric, 1)
        || ' kW, robust z ' || round(peak_z::numeric, 1) || ')'
        || case
            when intervals > 1 then '; ' || {{ duration_words }} || ' in a row off the usual'
            else ''
        end as description

    from load_runs

),

-- 2. flatline: active power that does not move, within and across intervals.
flat_intervals as (

    select
        meter_id,
        facility_id,
        interval_start,
        max_kw,
        {{ quarter_hour_island('meter_id, max_kw') }} as island

    from loads
    where reading_count >= 2
        and max_kw = min_kw
        and max_kw > 0

),

flatline_runs as (

    select
        meter_id,
        min(facility_id) as facility_id,
        min(interval_start) as started_at,
        max(interval_start) + interval '15 minutes' as ended_at,
        count(*) as intervals,
        max_kw as observed_value

    from flat_intervals
    group by meter_id, max_kw, island
    having count(*) >= {{ flatline_min_intervals }}

),

flatlines as (

    select
        meter_id,
        facility_id,
        'flatline' as kind,
        {{ severity('intervals', flatline_medium_intervals, flatline_high_intervals) }} as severity,
        started_at,
        ended_at,
        intervals,
        observed_value,
        null::double precision as expected_value,
        'kW' as unit,
        intervals * 0.25 as score,
        'Meter stuck at ' || round(observed_value::numeric, 1) || ' kW for ' || {{ duration_words }}
        || ': active power did not change from one reading to the next' as description

    from flatline_runs

),

-- 3. gap: intervals with too little data, and those with none at all between a
-- meter's first and last interval (each hole's missing quarter hours, generated).
sequenced as (

    select
        meter_id,
        facility_id,
        interval_start,
        data_completeness,
        lead(interval_start) over (partition by meter_id order by interval_start) as next_interval_start

    from loads

),

missing_intervals as (

    select
        sequenced.meter_id,
        -- The meter's facility as of its last interval before the hole.
        sequenced.facility_id,
        missing.interval_start,
        0.0::double precision as data_completeness

    from sequenced
    cross join lateral generate_series(
        sequenced.interval_start + interval '15 minutes',
        sequenced.next_interval_start - interval '15 minutes',
        interval '15 minutes'
    ) as missing (interval_start)
    where sequenced.next_interval_start > sequenced.interval_start + interval '15 minutes'

),

gap_intervals as (

    select
        *,
        {{ quarter_hour_island('meter_id') }} as island

    from (
        select meter_id, facility_id, interval_start, data_completeness from loads
        union all
        select meter_id, facility_id, interval_start, data_completeness from missing_intervals
    ) as calendar
    where coalesce(data_completeness, 0) < {{ gap_completeness_below }}

),

gap_runs as (

    select
        meter_id,
        (array_agg(facility_id order by interval_start))[1] as facility_id,
        min(interval_start) as started_at,
        max(interval_start) + interval '15 minutes' as ended_at,
        count(*) as intervals,
        avg(coalesce(data_completeness, 0)) as observed_value,
        sum(1 - coalesce(data_completeness, 0)) * 0.25 as missing_hours

    from gap_intervals
    group by meter_id, island

),

gaps as (

    select
        meter_id,
        facility_id,
        'gap' as kind,
        {{ severity('intervals', gap_medium_intervals, gap_high_intervals) }} as severity,
        started_at,
        ended_at,
        intervals,
        observed_value,
        1.0::double precision as expected_value,
        'fraction' as unit,
        missing_hours as score,
        case
            when observed_value = 0 then 'No data for ' || {{ duration_words }}
            else 'Only ' || round((100 * observed_value)::numeric) || ' % of the expected data arrived over '
                || {{ duration_words }}
        end as description

    from gap_runs

),

-- 4. voltage_excursion: against the meter's nominal voltage, the median of its history.
nominal_voltages as (

    select
        meter_id,
        percentile_cont(0.5) within group (order by avg_voltage_v) as nominal_voltage_v

    from loads
    where avg_voltage_v is not null
    group by meter_id

),

voltage_deviations as (

    select
        loads.meter_id,
        loads.facility_id,
        loads.interval_start,
        loads.min_voltage_v,
        loads.max_voltage_v,
        nominal_voltages.nominal_voltage_v,
        coalesce(100 * (nominal_voltages.nominal_voltage_v - loads.min_voltage_v) / nominal_voltages.nominal_voltage_v, 0)
            as below_pct,
        coalesce(100 * (loads.max_voltage_v - nominal_voltages.nominal_voltage_v) / nominal_voltages.nominal_voltage_v, 0)
            as above_pct

    from loads
    inner join nominal_voltages
        on loads.meter_id = nominal_voltages.meter_id
    where nominal_voltages.nominal_voltage_v > 0

),

voltage_sides as (

    select
        meter_id,
        facility_id,
        interval_start,
        nominal_voltage_v,
        -- The worse side of the interval: a sag (-1) or a swell (+1).
        case when below_pct >= above_pct then -1 else 1 end as direction,
        case when below_pct >= above_pct then min_voltage_v else max_voltage_v end as extreme_voltage_v,
        greatest(below_pct, above_pct) as deviation_pct

    from voltage_deviations
    where greatest(below_pct, above_pct) > {{ voltage_tolerance_pct }}

),

voltage_intervals as (

    select
        *,
        {{ quarter_hour_island('meter_id, direction') }} as island

    from voltage_sides

),

voltage_runs as (

    select
        meter_id,
        min(facility_id) as facility_id,
        direction,
        min(interval_start) as started_at,
        max(interval_start) + interval '15 minutes' as ended_at,
        count(*) as intervals,
        case when direction < 0 then min(extreme_voltage_v) else max(extreme_voltage_v) end as observed_value,
        min(nominal_voltage_v) as expected_value,
        max(deviation_pct) as score

    from voltage_intervals
    group by meter_id, direction, island

),

voltage_excursions as (

    select
        meter_id,
        facility_id,
        'voltage_excursion' as kind,
        {{ severity('score', voltage_medium_pct, voltage_high_pct) }} as severity,
        started_at,
        ended_at,
        intervals,
        observed_value,
        expected_value,
        'V' as unit,
        score,
        'Voltage ' || case when direction < 0 then 'down to ' else 'up to ' end
        || round(observed_value::numeric, 1) || ' V, ' || round(score::numeric, 1) || ' % '
        || case when direction < 0 then 'below' else 'above' end
        || ' the meter''s usual ' || round(expected_value::numeric, 1) || ' V, for '
        || {{ duration_words }} as description

    from voltage_runs

),

-- 5. power_factor_excursion: a poor power factor while the meter draws load.
power_factor_intervals as (

    select
        meter_id,
        facility_id,
        interval_start,
        avg_power_factor,
        {{ quarter_hour_island('meter_id') }} as island

    from loads
    where avg_power_factor < {{ power_factor_min }}
        and avg_kw > 0

),

power_factor_runs as (

    select
        meter_id,
        min(facility_id) as facility_id,
        min(interval_start) as started_at,
        max(interval_start) + interval '15 minutes' as ended_at,
        count(*) as intervals,
        min(avg_power_factor) as observed_value

    from power_factor_intervals
    group by meter_id, island

),

power_factor_excursions as (

    select
        meter_id,
        facility_id,
        'power_factor_excursion' as kind,
        {{ severity('observed_value', power_factor_medium_below, power_factor_high_below, below=true) }} as severity,
        started_at,
        ended_at,
        intervals,
        observed_value,
        {{ power_factor_min }}::double precision as expected_value,
        'power factor' as unit,
        {{ power_factor_min }} - observed_value as score,
        'Power factor down to ' || round(observed_value::numeric, 2) || ', below the '
        || round({{ power_factor_min }}::numeric, 2) || ' minimum, for ' || {{ duration_words }}
        || ' under load' as description

    from power_factor_runs

),

anomalies as (

    select * from load_deviations
    union all
    select * from flatlines
    union all
    select * from gaps
    union all
    select * from voltage_excursions
    union all
    select * from power_factor_excursions

),

final as (

    select
        md5(
            anomalies.meter_id || '|' || anomalies.kind || '|'
            || to_char(anomalies.started_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        ) as anomaly_id,
        anomalies.meter_id,
        coalesce(anomalies.facility_id, meters.facility_id) as facility_id,
        anomalies.kind,
        anomalies.severity,
        anomalies.started_at,
        anomalies.ended_at,
        anomalies.intervals::integer as intervals,
        anomalies.observed_value::double precision as observed_value,
        anomalies.expected_value::double precision as expected_value,
        anomalies.unit,
        anomalies.score::double precision as score,
        anomalies.description

    from anomalies
    left join meters
        on anomalies.meter_id = meters.meter_id

)

select * from final
