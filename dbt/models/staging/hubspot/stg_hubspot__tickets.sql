-- Staging model of raw.hubspot_tickets: renames, unit conversions and the cleaning of the opt-in dirt profile.
with source as (
    select * from {{ source('hubspot', 'tickets') }}
),

renamed as (
    select
        ticket_id,
        company_id,
        account_id,
        subject,
        category,
        priority,
        pipeline_stage,
        created_at,
        first_reply_at,
        closed_at
    from source
    where not archived  -- soft-deleted in HubSpot, still in the export
)

select * from renamed
