-- Staging model of raw.marketing_campaigns: renames and unit conversions only.
with source as (
    select * from {{ source('marketing', 'campaigns') }}
),

renamed as (
    select
        campaign_id,
        campaign_name,
        channel,
        objective,
        start_date,
        end_date,
        daily_budget_usd,
        total_budget_usd
    from source
)

select * from renamed
