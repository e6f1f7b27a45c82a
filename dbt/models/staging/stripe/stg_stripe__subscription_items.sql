-- Staging model of raw.stripe_subscription_items: renames and unit conversions only.
with source as (
    select * from {{ source('stripe', 'subscription_items') }}
),

renamed as (
    select
        subscription_item_id,
        stripe_subscription_id,
        price_id,
        quantity,
        created as created_at
    from source
)

select * from renamed
