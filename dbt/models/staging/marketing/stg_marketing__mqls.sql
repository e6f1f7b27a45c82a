-- Staging model of raw.marketing_qualified_leads: renames and unit conversions only.
with source as (
    select * from {{ source('marketing', 'mqls') }}
),

renamed as (
    select
        mql_id,
        contact_id,
        campaign_id,
        source_channel,
        lead_score,
        mql_at,
        converted_to_sql,
        sql_at
    from source
)

select * from renamed
