-- Staging model of raw.stripe_customers: renames and unit conversions only.
with source as (
    select * from {{ source('stripe', 'customers') }}
),

renamed as (
    select
        customer_id,
        account_id,
        email,
        name,
        currency,
        delinquent,
        metadata,
        created as created_at
    from source
)

select * from renamed
