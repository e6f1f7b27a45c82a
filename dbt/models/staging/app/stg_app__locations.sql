-- Staging model of raw.locations: renames and unit conversions only.
with source as (
    select * from {{ source('app', 'locations') }}
),

renamed as (
    select
        location_id,
        account_id,
        location_name,
        location_type,
        state,
        city,
        zip_code,
        address,
        opened_at
    from source
)

select * from renamed
