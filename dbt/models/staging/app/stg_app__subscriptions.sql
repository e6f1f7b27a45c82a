-- Staging model of raw.subscriptions: renames and unit conversions only.
with source as (
    select * from {{ source('app', 'subscriptions') }}
),

renamed as (
    select
        subscription_id,
        account_id,
        plan_tier,
        billing_interval,
        status,
        mrr_usd,
        change_reason,
        started_with_trial,
        trial_start,
        trial_end,
        started_at,
        ended_at
    from source
)

select * from renamed
