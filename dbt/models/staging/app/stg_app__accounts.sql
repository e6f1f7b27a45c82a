-- Staging model of raw.accounts: renames and unit conversions only.
with source as (
    select * from {{ source('app', 'accounts') }}
),

renamed as (
    select
        account_id,
        account_name,
        industry,
        tier,
        mrr_usd,
        employee_count,
        domain,
        billing_state,
        billing_city,
        status,
        created_at,
        churned_at
    from source
)

select * from renamed
