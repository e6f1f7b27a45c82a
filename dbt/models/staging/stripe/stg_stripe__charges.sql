-- Staging model of raw.stripe_charges: renames and unit conversions only.
with source as (
    select * from {{ source('stripe', 'charges') }}
),

renamed as (
    select
        charge_id,
        invoice_id,
        customer_id,
        amount as amount_cents,
        {{ cents_to_dollars('amount') }} as amount_usd,
        amount_refunded as amount_refunded_cents,
        {{ cents_to_dollars('amount_refunded') }} as amount_refunded_usd,
        currency,
        status,
        paid,
        payment_method_type,
        outcome_type,
        created as created_at,
        billing_state,
        billing_city,
        ip_address
    from source
)

select * from renamed
