{{
    config(
        materialized='incremental',
        window_column='hour_start',
        indexes=window_indexes(['facility_id', 'hour_start', 'energy_source'], 'hour_start'),
    )
}}

with energy as (

    select * from {{ ref('int_facility_energy_hourly') }}
    {{ partition_window_filter('hour_start') }}

),

facilities as (

    select facility_id, timezone, grid_zone from {{ ref('stg_facilities') }}

),

grid_intensity as (

    select * from {{ ref('int_grid_intensity_hourly') }}

),

factors as (

    select * from {{ ref('emission_factors') }}

),

instruments as (

    select * from {{ ref('contractual_instruments') }}

),

located as (

    select
        energy.facility_id,
        energy.hour_start,
        energy.energy_source,
        energy.energy_kwh,
        facilities.grid_zone,
        -- Instruments are dated in the facility's own calendar.
        (energy.hour_start at time zone coalesce(facilities.timezone, 'UTC'))::date as local_date

    from energy
    left join facilities
        on energy.facility_id = facilities.facility_id

),

joined as (

    select
        located.*,
        grid_intensity.carbon_intensity_kg_per_kwh as grid_hourly_factor,
        grid_intensity.is_estimated as grid_intensity_is_estimated,
        factors.kg_co2e_per_kwh as static_factor,
        instruments.instrument,
        instruments.kg_co2e_per_kwh as instrument_factor

    from located
    left join grid_intensity
        on located.energy_source = 'grid'
        and located.grid_zone = grid_intensity.grid_zone
        and located.hour_start = grid_intensity.hour_start
    left join factors
        on located.energy_source = factors.energy_source
    left join instruments
        on located.facility_id = instruments.facility_id
        and located.energy_source = instruments.energy_source
        and located.local_date between instruments.valid_from and instruments.valid_to

),

factored as (

    select
        *,
        coalesce(grid_hourly_factor, static_factor) as location_factor_kg_per_kwh,
        case
            when grid_hourly_factor is not null then 'grid_hourly'
            when static_factor is not null then 'static'
        end as location_factor_basis

    from joined

),

final as (

    select
        facility_id,
        hour_start,
        hour_start + interval '1 hour' as hour_end,
        energy_source,
        energy_kwh,
        grid_zone,
        location_factor_kg_per_kwh,
        location_factor_basis,
        grid_intensity_is_estimated,
        energy_kwh * location_factor_kg_per_kwh as location_kg_co2e,
        coalesce(instrument_factor, location_factor_kg_per_kwh) as market_factor_kg_per_kwh,
        coalesce(instrument, 'location') as market_factor_basis,
        energy_kwh * coalesce(instrument_factor, location_factor_kg_per_kwh) as market_kg_co2e

    from factored

)

select * from final
