-- Staging model of raw.stripe_invoices: renames and unit conversions only.
with source as (
    select * from {{ source('stripe', 'invoices') }}
),

renamed as (
    select
        invoice_id,
        customer_id,
        stripe_subscription_id,
        number,
        status,
        billing_reason,
        amount_due as amount_due_cents,
        {{ cents_to_dollars('amount_due') }} as amount_due_usd,
        amount_paid as amount_paid_cents,
        {{ cents_to_dollars('amount_paid') }} as amount_paid_usd,
        amount_remaining as amount_remaining_cents,
        {{ cents_to_dollars('amount_remaining') }} as amount_remaining_usd,
        currency,
        attempt_count,
        period_start,
        period_end,
        created as created_at,
        due_date,
        paid_at
    from source
)

select * from renamed
