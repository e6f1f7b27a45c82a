-- Staging model of raw.hubspot_deals: renames and unit conversions only.
with source as (
    select * from {{ source('hubspot', 'deals') }}
),

renamed as (
    select
        deal_id,
        company_id,
        contact_id,
        deal_name,
        pipeline,
        deal_stage,
        amount_usd,
        is_closed,
        is_won,
        created_at,
        close_date
    from source
)

select * from renamed
