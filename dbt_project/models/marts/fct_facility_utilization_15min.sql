{{
    config(
        materialized='incremental',
        window_column='interval_start',
        indexes=window_indexes(['facility_id', 'interval_start'], 'interval_start'),
    )
}}

with load as (

    select * from {{ ref('fct_load_15min') }}
    {{ partition_window_filter('interval_start') }}

),

facilities as (

    select facility_id, contract_demand_kw from {{ ref('stg_facilities') }}

),

measured as (

    select
        load.facility_id,
        load.interval_start,
        load.interval_end,
        -- Contract demand limits what is drawn from the grid: on-site supply does not count.
        load.grid_avg_kw as demand_kw,
        facilities.contract_demand_kw,
        100.0 * load.grid_avg_kw / nullif(facilities.contract_demand_kw, 0) as utilization_pct

    from load
    left join facilities
        on load.facility_id = facilities.facility_id

),

banded as (

    select
        *,
        case
            when utilization_pct is null then 'no_contract'
            when utilization_pct < {{ var('utilization_scale_down_below_pct') }} then 'scale_down'
            when utilization_pct < {{ var('utilization_target_low_pct') }} then 'below_target'
            when utilization_pct <= {{ var('utilization_target_high_pct') }} then 'target'
            when utilization_pct <= {{ var('utilization_scale_up_above_pct') }} then 'above_target'
            else 'scale_up'
        end as band

    from measured

),

final as (

    select
        *,
        case band
            when 'scale_down' then 'consolidate_or_reduce_contract'
            when 'below_target' then 'absorb_flexible_load'
            when 'target' then 'hold'
            when 'above_target' then 'prepare_peak_shaving'
            when 'scale_up' then 'shave_peak'
            else 'set_contract_demand'
        end as balancing_action,
        case band
            when 'scale_down' then 'Well below contract demand: consolidate load here or lower the contract at renewal.'
            when 'below_target' then 'Below the target band: room to bring deferrable load (EV charging, batch processes) forward.'
            when 'target' then 'In the target band: no action.'
            when 'above_target' then 'Above the target band: line up flexible load and storage to shave the next peak.'
            when 'scale_up' then 'Above the peak-shaving threshold: shed or defer flexible load, discharge storage; review the contract if it recurs.'
            else 'No contract demand on record: add it to the registry to rate utilisation.'
        end as action_description

    from banded

)

select * from final
