-- What the load forecast learns from and predicts with. Weather is the spine because
-- the model cannot use an hour without temperature.

with weather as (

    select facility_id, hour_start, temperature_c, shortwave_radiation_w_m2, is_forecast
    from {{ ref('stg_weather_hourly') }}

),

load as (

    select facility_id, hour_start, avg_kw, data_completeness
    from {{ ref('fct_load_hourly') }}

),

final as (

    select
        weather.facility_id,
        weather.hour_start,
        load.avg_kw,
        load.data_completeness,
        weather.temperature_c,
        weather.shortwave_radiation_w_m2,
        weather.is_forecast

    from weather
    left join load
        on weather.facility_id = load.facility_id
        and weather.hour_start = load.hour_start

)

select * from final
