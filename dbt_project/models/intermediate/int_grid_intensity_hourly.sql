{#- The grid carbon intensity location-based emissions use: var grid_intensity_factor_type. -#}

with intensity as (

    select * from {{ ref('stg_grid_carbon_intensity') }}
    where factor_type = '{{ var("grid_intensity_factor_type", "lifecycle") }}'

),

final as (

    select
        grid_zone,
        hour_start,
        carbon_intensity_kg_per_kwh,
        is_estimated

    from intensity

)

select * from final
