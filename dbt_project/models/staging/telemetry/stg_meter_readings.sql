with source as (

    select * from {{ source('raw', 'meter_readings') }}

),

renamed as (

    select
        meter_id,
        facility_id,
        ts as reading_at,
        interval_s,
        energy_kwh,
        active_power_kw,
        reactive_power_kvar,
        voltage_v,
        current_a,
        power_factor,
        frequency_hz,
        energy_source,
        _loaded_at as loaded_at

    from source

)

select * from renamed
