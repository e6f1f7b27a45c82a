-- Staging model of raw.hubspot_engagements: renames and the cleaning of the opt-in dirt profile. Engagements
-- imported from a CSV carry occurred_at as the portal's wall-clock time without an offset: converted to UTC.
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
        case
            when engagement_source = 'IMPORT'
                then (occurred_at at time zone '{{ var("hubspot_import_timezone") }}') at time zone 'UTC'
            else occurred_at
        end as occurred_at,
        duration_minutes,
        engagement_source
    from source
)

select * from renamed
