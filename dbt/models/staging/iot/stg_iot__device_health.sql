-- Staging model of raw.device_health: renames and unit conversions only.
with source as (
    select * from {{ source('iot', 'device_health') }}
),

renamed as (
    select
        health_id,
        device_id,
        recorded_at,
        uptime_pct,
        error_count,
        avg_temperature_c,
        needs_maintenance
    from source
)

select * from renamed
