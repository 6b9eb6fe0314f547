with source as (

    select * from {{ source('raw', 'weather_hourly') }}

),

renamed as (

    select
        facility_id,
        time as hour_start,
        temperature_c,
        relative_humidity_pct,
        cloud_cover_pct,
        shortwave_radiation_w_m2,
        wind_speed_kmh,
        is_forecast,
        issued_at,
        source as weather_source

    from source

)

select * from renamed
