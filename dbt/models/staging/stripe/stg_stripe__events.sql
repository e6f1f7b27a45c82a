-- Staging model of raw.stripe_events: renames and unit conversions only.
with source as (
    select * from {{ source('stripe', 'events') }}
),

renamed as (
    select
        event_id,
        type,
        object_type,
        object_id,
        customer_id,
        created as created_at,
        api_version,
        livemode
    from source
)

select * from renamed
