-- Staging model of raw.tap_events: renames and unit conversions only.
with source as (
    select * from {{ source('iot', 'tap_events') }}
),

renamed as (
    select
        tap_event_id,
        device_id,
        location_id,
        account_id,
        poured_at,
        product_type,
        volume_ml,
        temperature_c,
        duration_ms
    from source
)

select * from renamed
