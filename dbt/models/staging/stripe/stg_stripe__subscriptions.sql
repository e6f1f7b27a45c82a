-- Staging model of raw.stripe_subscriptions: renames and unit conversions only.
with source as (
    select * from {{ source('stripe', 'subscriptions') }}
),

renamed as (
    select
        stripe_subscription_id,
        customer_id,
        subscription_id,
        status,
        billing_interval,
        created as created_at,
        start_date,
        trial_start,
        trial_end,
        current_period_start,
        current_period_end,
        canceled_at,
        ended_at
    from source
)

select * from renamed
