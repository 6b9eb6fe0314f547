with source as (

    select * from {{ source('ops', 'dr_events_current') }}

),

renamed as (

    select
        inbox_id,
        event_id,
        version,
        source as event_source,
        event_start,
        event_end,
        target_reduction_pct,
        target_reduction_kw,
        status,
        status_reason,
        received_at

    from source

)

select * from renamed
