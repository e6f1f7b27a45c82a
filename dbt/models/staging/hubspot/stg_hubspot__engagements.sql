-- Staging model of raw.hubspot_engagements: renames and unit conversions only.
with source as (
    select * from {{ source('hubspot', 'engagements') }}
),

renamed as (
    select
        engagement_id,
        deal_id,
        contact_id,
        company_id,
        engagement_type,
        owner_id,
        occurred_at,
        duration_minutes
    from source
)

select * from renamed
