-- Staging model of raw.stripe_prices: renames and unit conversions only.
with source as (
    select * from {{ source('stripe', 'prices') }}
),

renamed as (
    select
        price_id,
        product_id,
        nickname,
        plan,
        recurring_interval,
        unit_amount as unit_amount_cents,
        {{ cents_to_dollars('unit_amount') }} as unit_amount_usd,
        currency,
        active,
        created as created_at
    from source
)

select * from renamed
