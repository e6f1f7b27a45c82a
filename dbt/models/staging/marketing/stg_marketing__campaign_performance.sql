-- Staging model of raw.campaign_performance: renames and unit conversions only.
with source as (
    select * from {{ source('marketing', 'campaign_performance') }}
),

renamed as (
    select
        performance_id,
        campaign_id,
        date,
        impressions,
        clicks,
        spend_usd,
        conversions
    from source
)

select * from renamed
