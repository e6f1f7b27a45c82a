-- Staging model of raw.devices: renames and unit conversions only.
with source as (
    select * from {{ source('app', 'devices') }}
),

renamed as (
    select
        device_id,
        location_id,
        account_id,
        serial_number,
        model,
        firmware_version,
        status,
        installed_at,
        last_seen_at
    from source
)

select * from renamed
